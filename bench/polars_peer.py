"""Peer baseline for the csvlake benchmark: the same CSV -> Parquet + Avro job with polars.

Usage: python polars_peer.py INPUT_DIR OUTPUT_DIR

Every ``*.csv`` in INPUT_DIR is read with ``polars.read_csv(try_parse_dates=True)``
and written to OUTPUT_DIR as ``<stem>.parquet`` and ``<stem>.avro``, both
snappy-compressed. Files are processed one after the other, like csvlake does
per file; polars itself uses all cores within each read and write.
"""

import sys
from pathlib import Path

import polars as pl


def convert(src: Path, out_dir: Path) -> None:
    """Convert one CSV file to Parquet and Avro."""
    df = pl.read_csv(src, try_parse_dates=True)
    df.write_parquet(out_dir / f"{src.stem}.parquet", compression="snappy")
    # polars cannot write zone-aware timestamps to Avro; Avro timestamp-micros
    # is UTC by definition, so dropping the (UTC) zone loses nothing.
    naive = df.with_columns(
        pl.col(pl.Datetime(time_zone="*")).dt.replace_time_zone(None)
    )
    naive.write_avro(out_dir / f"{src.stem}.avro", compression="snappy")


def main(argv: list[str]) -> int:
    """Entry point: convert every CSV of the input directory."""
    if len(argv) != 3:
        print(f"usage: {argv[0]} INPUT_DIR OUTPUT_DIR", file=sys.stderr)
        return 2
    in_dir, out_dir = Path(argv[1]), Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = sorted(in_dir.glob("*.csv"))
    if not inputs:
        print(f"no .csv files in {in_dir}", file=sys.stderr)
        return 1
    for src in inputs:
        convert(src, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
