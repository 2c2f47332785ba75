#!/usr/bin/env python3
"""Writes the fixtures whose bytes a text editor would not keep: byte-order marks, CRLF or bare
CR line ends, legacy encodings, UTF-16, compression. Plain Python 3; zstd through the `zstd` CLI
when it is installed. Run from anywhere: `python3 functions/engine/tests/data/make.py`.
The output is deterministic (gzip without a timestamp), so re-running changes nothing."""

import gzip
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALID = HERE / "valid"
INVALID = HERE / "invalid"


def write(path, data):
    path.write_bytes(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


# --- valid -----------------------------------------------------------------------------------

# Excel (German locale) "CSV UTF-8": a BOM, `;`, CRLF, decimal commas, dates as DD.MM.YYYY.
excel = (
    "Artikelnr;Bezeichnung;Menge;Preis;Datum\r\n"
    "1001;Schraube M4, verzinkt;250;\"0,15\";01.03.2024\r\n"
    "1002;Mutter M4;500;0,08;01.03.2024\r\n"
    "1003;\"Unterlegscheibe; 4,3 mm\";1000;0,02;04.03.2024\r\n"
    "1004;Gewindestange M4 x 1000;12;3,49;05.03.2024\r\n"
)
write(VALID / "excel_semicolon.csv", b"\xef\xbb\xbf" + excel.encode("utf-8"))

# An older Excel or SAP export in windows-1252 (latin-1 letters only).
latin1 = (
    "Name;Straße;Ort;Betrag\r\n"
    "Müller;Hauptstraße 5;München;12,50\r\n"
    "Dupré;Rue de l'Église 3;Besançon;7,00\r\n"
    "Weiß;Kärntner Straße 12;Wien;100,00\r\n"
    "Øster;Bahnhofstraße 1;Zürich;3,20\r\n"
)
write(VALID / "latin1_semicolon.csv", latin1.encode("cp1252"))

# Excel's "Unicode Text": UTF-16LE with a BOM, tabs, CRLF.
utf16le = (
    "Kundennr\tName\tStadt\tUmsatz\r\n"
    "1\tZoë Ångström\t東京\t1234.5\r\n"
    "2\tJürgen Groß\tKöln\t99.95\r\n"
    "3\tŁukasz\tKraków\t0.5\r\n"
)
write(VALID / "utf16le_bom.tsv", b"\xff\xfe" + utf16le.encode("utf-16-le"))

utf16be = (
    "id,name,amount\n"
    "1,\"Smith, John\",10\n"
    "2,Ελένη Παπαδοπούλου,20\n"
    "3,Ιωάννης,30\n"
)
write(VALID / "utf16be_bom.csv", b"\xfe\xff" + utf16be.encode("utf-16-be"))

# Classic Mac OS line ends: a bare CR, also inside a quoted field.
write(VALID / "bare_cr.csv", b'id,name,score\r1,Anna,88\r2,"Ben\rBrown",92\r3,Cleo,75\r')

orders = (
    b"order_id,customer,total,paid\n"
    b"10001,ACME Corp,1520.00,true\n"
    b"10002,Globex,89.90,false\n"
    b"10003,Initech,240.50,true\n"
)
write(VALID / "gzip_named_csv.csv", gz(orders))

# Two gzip members, as `cat part1.gz part2.gz` leaves them.
write(
    VALID / "gzip.csv.gz",
    gz(b"id,city,visits\n1,Lisboa,120\n2,Porto,75\n") + gz(b"3,Braga,31\n4,Faro,12\n"),
)

if shutil.which("zstd"):
    zst = subprocess.run(
        ["zstd", "-q", "-19", "-c"],
        input=b"id,city,visits\n1,Lisboa,120\n2,Porto,75\n3,Braga,31\n",
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    write(VALID / "zstd.csv.zst", zst)

# --- invalid ---------------------------------------------------------------------------------

# Old Mac line ends; line 161 lacks its last field.
lines = ["date,station,temp_c"]
for n in range(2, 171):
    day = date(2020, 1, 1) + timedelta(days=n - 2)
    temp = f"{(n * 37 % 300 - 100) / 10:.1f}"
    lines.append(f"{day},KSEA" if n == 161 else f"{day},KSEA,{temp}")
write(INVALID / "ragged_row_bare_cr.csv", ("\r".join(lines) + "\r").encode())

# Said to be UTF-8, but line 5 was written in latin-1.
write(
    INVALID / "explicit_utf8_invalid.csv",
    b"id,name,city\n1,Anna,Berlin\n2,Ben,Hamburg\n3,Clara,Bremen\n4,J\xfcrgen,M\xfcnchen\n5,Eva,Kiel\n",
)

# Shift_JIS whose line 4 ends in the lead byte of a cut double-byte character (京 is 8b 9e).
sjis = "社員番号,氏名,所属,勤務地\r\n1001,山田太郎,営業部,東京\r\n1002,鈴木花子,総務部,大阪\r\n".encode("shift_jis")
sjis += "1003,佐藤次郎,開発部,東".encode("shift_jis") + b"\x8b\r\n"
sjis += "1004,高橋美咲,人事部,名古屋\r\n".encode("shift_jis")
write(INVALID / "invalid_shift_jis.csv", sjis)

# An upload cut short: the first half of a gzip stream.
text = b"id,sensor,value\n" + b"".join(f"{i},s{i % 7},{i * 1.25}\n".encode() for i in range(1, 200))
whole = gz(text)
write(INVALID / "gzip_corrupt.csv.gz", whole[: len(whole) // 2])

# A plain CSV under a .gz name.
write(INVALID / "gz_suffix_not_gzip.csv.gz", b"id,name\n1,plain text\n2,not compressed\n")

# Line 2 holds one field of 16 MiB + 1 byte: beyond the 16 MiB field limit.
write(
    INVALID / "field_too_long.csv.gz",
    gz(b"id,payload\n1," + b"A" * ((16 << 20) + 1) + b"\n2,small\n"),
)
