"""Reads one table of csvlake's outputs with independent readers, and prints what they saw as
JSON: DuckDB over the Parquet files as one glob, pyarrow.dataset over the Parquet folder, and
fastavro over each Avro file.

    python read_table.py OUTPUT_DIR TABLE
"""

import glob
import json
import os
import sys

import duckdb
import fastavro
import pyarrow.dataset as ds


def main(out: str, table: str) -> None:
    parquet = os.path.join(out, "parquet", table)
    glob_path = os.path.join(parquet, "*.parquet")
    con = duckdb.connect()
    relation = con.sql(f"SELECT * FROM read_parquet('{glob_path}')")
    duck_columns = [[name, str(kind)] for name, kind in zip(relation.columns, relation.types)]
    duck_rows = sorted(json.loads(json.dumps(relation.fetchall(), default=str)), key=json.dumps)

    dataset = ds.dataset(parquet, format="parquet")
    file_schemas = {str(f.physical_schema) for f in dataset.get_fragments()}
    table_read = dataset.to_table()
    arrow_columns = [[f.name, str(f.type)] for f in table_read.schema]

    avro_schemas = set()
    avro_rows = []
    for path in sorted(glob.glob(os.path.join(out, "avro", table, "*.avro"))):
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            avro_schemas.add(json.dumps(reader.writer_schema, sort_keys=True))
            avro_rows.extend(json.loads(json.dumps(list(reader), default=str)))
    avro_rows.sort(key=lambda r: json.dumps(r, sort_keys=True))

    print(json.dumps({
        "duckdb": {"columns": duck_columns, "rows": duck_rows},
        "pyarrow": {"columns": arrow_columns, "rows": table_read.num_rows, "file_schemas": len(file_schemas)},
        "avro": {"schemas": len(avro_schemas), "rows": avro_rows},
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
