//! End-to-end conversions through the embedded S3 endpoint and the converter Lambda's handler.
//!
//! Each test writes CSV files into a served input directory, converts them over HTTP exactly as
//! in production, and then reads the output files from disk with readers independent of the
//! writers (`parquet`'s Arrow reader, `apache-avro`), comparing every cell with the CSV as the
//! `csv` crate parses it and as the test interprets it by hand.

use std::fmt::Write as _;

use csvlake_contract::payload::{FileRef, FileStatus};
use csvlake_engine::options::{AvroCodec, Format, ParquetCompression, parse_schema_json};
use csvlake_tests::{
    Cell, Expect, Harness, Rng, assert_avro_schema, assert_cells_eq, assert_parquet_schema, expected_rows, format_date,
    gzip, large_csv, output_keys, parse_csv, read_avro, read_parquet, result_for, statuses,
};
use parquet::basic::Compression;

const MIB: usize = 1 << 20;

/// The columns of the round-trip data and their expected types.
const NAMES: [&str; 7] = ["id", "amount", "flag", "note", "day", "at", "big"];
const TYPES: [Expect; 7] =
    [Expect::Int, Expect::Float, Expect::Bool, Expect::Text, Expect::Date, Expect::TimestampUtc, Expect::Int];

/// Formats UTC seconds (shifted by `offset_secs` for the wall clock) as an ISO 8601 date-time.
fn format_timestamp(utc_secs: i64, millis: Option<i64>, offset_secs: i64) -> String {
    let local = utc_secs + offset_secs;
    let (days, rem) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let mut s = format!("{}T{:02}:{:02}:{:02}", format_date(days), rem / 3600, rem / 60 % 60, rem % 60);
    if let Some(ms) = millis {
        write!(s, ".{ms:03}").unwrap();
    }
    if offset_secs == 0 {
        s.push('Z');
    } else {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let a = offset_secs.abs();
        write!(s, "{sign}{:02}:{:02}", a / 3600, a / 60 % 60).unwrap();
    }
    s
}

/// A CSV exercising every inferred type, quoting (commas, doubled quotes, newlines, CRLF inside
/// quotes), non-ASCII text, nulls in every column and integers at the limits of int64.
fn roundtrip_csv(rows: usize) -> String {
    let mut rng = Rng::new(0x5eed);
    let mut s = String::from("id,amount,flag,\"note\",day,at,big\n");
    for i in 0..rows {
        let r = rng.next_u64();
        let id = i as i64 - 1000;
        let amount = match i % 13 {
            3 => String::new(),
            5 => id.to_string(),
            7 => format!("{}e-3", r % 100_000),
            9 => format!("\"{}.5\"", r % 1000),
            _ => format!("{}{}.{:02}", if r.is_multiple_of(3) { "-" } else { "" }, r % 1_000_000, (r >> 20) % 100),
        };
        let flag = if i % 17 == 5 { "" } else { ["true", "false", "TRUE", "False"][(r >> 8) as usize % 4] };
        let note = match i % 9 {
            0 => format!("plain {i}"),
            1 => format!("\"a, b, c {i}\""),
            2 => format!("\"say \"\"hi\"\", {i}\""),
            3 => format!("\"first line\nsecond, line {i}\""),
            4 => format!("\"crlf\r\ninside {i}\""),
            5 => format!("héllo ✓ «{i}»"),
            6 if i % 2 == 0 => String::new(),
            6 => format!("\"\"\"{i}\"\"\""),
            7 => format!("\"{i}\""),
            _ => format!("\"  padded {i}  \""),
        };
        let day = if i % 23 == 0 { String::new() } else { format_date(((r >> 24) % 60_000) as i64 - 20_000) };
        let at = if i % 29 == 0 {
            String::new()
        } else {
            let secs = 1_500_000_000 + ((r >> 30) % 400_000_000) as i64;
            let millis = (i % 10 != 0).then_some(((r >> 10) % 1000) as i64);
            let offset = match i % 9 {
                4 => 5 * 3600 + 1800,
                7 => -8 * 3600,
                _ => 0,
            };
            format_timestamp(secs, millis, offset)
        };
        let big = match i {
            5 => i64::MIN.to_string(),
            6 => i64::MAX.to_string(),
            _ if i % 31 == 0 => String::new(),
            _ => (rng.next_u64() as i64).to_string(),
        };
        let id = if i % 37 == 11 { String::new() } else { id.to_string() };
        writeln!(s, "{id},{amount},{flag},{note},{day},{at},{big}").unwrap();
    }
    s
}

/// The same records as tab-separated values with CRLF line ends, written by the `csv` crate.
fn to_tsv(header: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().delimiter(b'\t').terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_cell_by_cell() {
    let h = Harness::start().await;
    let csv_text = roundtrip_csv(3_000);
    let (header, records) = parse_csv(csv_text.as_bytes(), &csv::ReaderBuilder::new());
    assert_eq!(header, NAMES);
    assert_eq!(records.len(), 3_000);
    let expected = expected_rows(&records, &TYPES, &[""]);
    // The data is what it claims to be: values at the edges, nulls and embedded line breaks.
    assert!(records.iter().any(|r| r[3].contains('\n') && r[3].contains(',')));
    assert!(records.iter().any(|r| r[3].contains("\"hi\"")));
    assert!(records.iter().any(|r| r[5].ends_with("+05:30")));
    assert!(expected.iter().any(|r| r[6] == Cell::Int(i64::MIN)));
    for c in 0..NAMES.len() {
        assert!(expected.iter().any(|r| r[c] == Cell::Null), "column {c} has a null");
    }

    let tsv = to_tsv(&header, &records);
    h.put("landing/data.csv", &csv_text);
    h.put("landing/nested/deeper/data.csv.gz", gzip(csv_text.as_bytes()));
    h.put("landing/table.tsv", &tsv);
    h.put("landing/readme.txt", "not an input");

    let job = h.job("landing/", "converted/");
    let result = h.run(&job).await;
    let keys: Vec<&str> = result.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["landing/data.csv", "landing/nested/deeper/data.csv.gz", "landing/table.tsv"]);

    for (key, rel) in [
        ("landing/data.csv", "data"),
        ("landing/nested/deeper/data.csv.gz", "nested/deeper/data"),
        ("landing/table.tsv", "table"),
    ] {
        let r = result_for(&result, key);
        assert_eq!(r.status, FileStatus::Converted, "{key}: {:?}", r.error);
        assert!(r.error.is_none());
        assert_eq!(r.rows, 3_000, "{key}: rows");
        let on_disk = std::fs::metadata(h.input.join(key)).unwrap().len();
        assert_eq!(r.bytes_in, on_disk, "{key}: bytes_in is the stored (compressed) size");

        let formats: Vec<Format> = r.outputs.iter().map(|o| o.format).collect();
        assert_eq!(formats, [Format::Parquet, Format::Avro], "{key}: outputs");
        let pq_key = format!("converted/parquet/{rel}.parquet");
        let avro_key = format!("converted/avro/{rel}.avro");
        assert_eq!(r.outputs[0].key, pq_key);
        assert_eq!(r.outputs[1].key, avro_key);
        for o in &r.outputs {
            assert_eq!(o.bytes, std::fs::metadata(h.output_path(&o.key)).unwrap().len(), "{}: size", o.key);
        }

        let pq = read_parquet(&h.output_path(&pq_key));
        assert_parquet_schema(&pq_key, &pq, &NAMES, &TYPES);
        assert_eq!(pq.metadata.file_metadata().num_rows(), 3_000);
        assert_eq!(pq.metadata.row_group(0).column(0).compression(), Compression::SNAPPY);
        assert_cells_eq(&pq_key, &expected, &pq.rows);

        let avro = read_avro(&h.output_path(&avro_key));
        assert_avro_schema(&avro_key, &avro, &NAMES, &TYPES);
        assert_eq!(avro.codec(), "snappy");
        assert_cells_eq(&avro_key, &expected, &avro.rows);
    }

    assert_eq!(
        h.output_files(),
        output_keys("converted/", &["data", "nested/deeper/data", "table"], &["avro", "parquet"]),
        "exactly the expected objects were written"
    );
    assert_eq!(h.leftover_upload_files(), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_leaves_no_object() {
    let h = Harness::start().await;
    h.put("batch/good.csv", "a,b\n1,x\n2,y\n");

    // Large enough for the Avro output to pass the 8 MiB part size, so that a multipart upload
    // is under way when the ragged row near the end is reached.
    let (mut huge, rows) = large_csv(7, 13 * MIB);
    let ragged_line = rows as u64 + 2;
    huge.push_str("999999,only-two-fields\n");
    for i in 0..10 {
        writeln!(huge, "{i},tail,{i}.5").unwrap();
    }
    h.put("batch/huge.csv", &huge);

    h.put("batch/latin1.csv", b"name,city\nanna,Berlin\nbob,M\xfcnchen\ncarl,Wien\n");
    h.put("batch/garbage.csv.gz", "this is not gzip at all\n");
    let mut body = String::from("k,v\n");
    for i in 0..20_000 {
        writeln!(body, "{i},{}", i * 7).unwrap();
    }
    let gz = gzip(body.as_bytes());
    h.put("batch/truncated.csv.gz", &gz[..gz.len() / 2]);
    h.put("batch/empty.csv", "");

    let job = h.job("batch/", "out/");
    let mut files = csvlake_planner::plan::list_inputs(h.converter.client(), &job.input).await.unwrap();
    assert_eq!(files.len(), 6);
    // Planned, then gone; and a key that is not under the input prefix.
    files.push(FileRef { key: "batch/vanished.csv".into(), size: 10, etag: None });
    h.put("elsewhere/x.csv", "a\n1\n");
    files.push(FileRef { key: "elsewhere/x.csv".into(), size: 4, etag: None });
    let result = h.run_files(&job, files).await;
    assert_eq!(result.files.len(), 8, "{:?}", statuses(&result));

    let good = result_for(&result, "batch/good.csv");
    assert_eq!(good.status, FileStatus::Converted, "{:?}", good.error);
    assert_eq!(good.rows, 2);
    assert_eq!(good.outputs.len(), 2);
    let latin1 = result_for(&result, "batch/latin1.csv");
    assert_eq!(latin1.status, FileStatus::Converted, "{:?}", latin1.error);
    assert_eq!(latin1.dialect.as_ref().map(|d| d.encoding.as_str()), Some("windows-1252"));

    let expect_failed = [
        ("batch/huge.csv", "bad_input.ragged_row", Some(ragged_line)),
        ("batch/garbage.csv.gz", "bad_input.compression", None),
        ("batch/truncated.csv.gz", "bad_input.compression", None),
        ("batch/empty.csv", "bad_input.empty", None),
        ("batch/vanished.csv", "bad_input.not_found", None),
        ("elsewhere/x.csv", "bad_input.invalid_key", None),
    ];
    for (key, kind, line) in expect_failed {
        let r = result_for(&result, key);
        assert_eq!(r.status, FileStatus::Failed, "{key}");
        assert_eq!(r.rows, 0, "{key}");
        assert!(r.outputs.is_empty(), "{key}: {:?}", r.outputs);
        let e = r.error.as_ref().unwrap_or_else(|| panic!("{key}: no error"));
        assert_eq!(e.kind, kind, "{key}: {}", e.message);
        if let Some(line) = line {
            assert_eq!(e.line, Some(line), "{key}: {}", e.message);
            assert!(e.message.contains(&format!("line {line}")), "{key}: message {:?} names the line", e.message);
        }
        assert!(!e.message.is_empty());
    }

    assert_eq!(
        h.output_files(),
        output_keys("out/", &["good", "latin1"], &["avro", "parquet"]),
        "only the good files have outputs"
    );
    assert_eq!(h.leftover_upload_files(), Vec::<std::path::PathBuf>::new(), "no multipart part or record is left");
    let created = h.calls.count("CreateMultipartUpload");
    assert!(created >= 1, "the large file started a multipart upload: {:?}", h.calls.all());
    assert!(h.calls.count("UploadPart") >= 1);
    assert_eq!(h.calls.count("AbortMultipartUpload"), created, "every started upload was aborted");
    assert_eq!(h.calls.count("CompleteMultipartUpload"), 0);
    assert_eq!(h.calls.count("PutObject"), 4, "only the good files' two outputs each were put");

    let pq = read_parquet(&h.output_path("out/parquet/good.parquet"));
    assert_cells_eq(
        "good.parquet",
        &[vec![Cell::Int(1), Cell::Text("x".into())], vec![Cell::Int(2), Cell::Text("y".into())]],
        &pq.rows,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_converts_again_from_the_start() {
    let h = Harness::start().await;
    let mut text = String::from("n,s,t\n");
    for i in 0..20_500 {
        let n = if i == 20_000 { "1.5".to_owned() } else { i.to_string() };
        let s = match i {
            3 => "+7".to_owned(),
            4 => "-0".to_owned(),
            123 => "123".to_owned(),
            20_200 => "abc".to_owned(),
            _ => (i * 3).to_string(),
        };
        let t = if i % 2 == 0 { "true" } else { "false" };
        writeln!(text, "{n},{s},{t}").unwrap();
    }
    h.put("w/late.csv", &text);

    let result = h.run(&h.job("w/", "")).await;
    let r = result_for(&result, "w/late.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, 20_500);

    let (_, records) = parse_csv(text.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Float, Expect::Text, Expect::Bool];
    let expected = expected_rows(&records, &types, &[""]);
    assert_eq!(expected[20_000][0], Cell::Float(1.5));
    assert_eq!(expected[3][1], Cell::Text("+7".into()));

    let pq = read_parquet(&h.output_path("parquet/late.parquet"));
    assert_parquet_schema("late.parquet", &pq, &["n", "s", "t"], &types);
    assert_cells_eq("late.parquet", &expected, &pq.rows);
    assert_eq!(pq.rows[19_999][0], Cell::Float(19_999.0));
    assert_eq!(pq.rows[123][1], Cell::Text("123".into()));
    assert_eq!(pq.rows[4][1], Cell::Text("-0".into()), "text keeps the original spelling");

    let avro = read_avro(&h.output_path("avro/late.avro"));
    assert_avro_schema("late.avro", &avro, &["n", "s", "t"], &types);
    assert_cells_eq("late.avro", &expected, &avro.rows);

    assert_eq!(h.output_files(), output_keys("", &["late"], &["avro", "parquet"]));
    assert_eq!(h.calls.count("GetObject"), 2, "one pass to find the widening, one to convert");
    assert_eq!(h.calls.count("PutObject"), 2, "the interrupted pass wrote nothing");
    assert_eq!(h.calls.count("CreateMultipartUpload"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_utf8_late_in_a_file_start_it_again_in_their_encoding() {
    let h = Harness::start().await;
    // Past the 64 KiB from which the encoding is detected, a windows-1252 ü.
    let mut text = b"id;city\n".to_vec();
    for i in 0..20_000 {
        text.extend_from_slice(format!("{i};Paris\n").as_bytes());
    }
    text.extend_from_slice(b"20000;M\xfcnchen\n");
    h.put("enc/late.csv", &text);

    let result = h.run(&h.job("enc/", "")).await;
    let r = result_for(&result, "enc/late.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, 20_001);
    let d = r.dialect.as_ref().expect("a dialect");
    assert_eq!((d.delimiter, d.encoding.as_str(), d.header), (';', "windows-1252", true));
    let pq = read_parquet(&h.output_path("parquet/late.parquet"));
    assert_eq!(pq.rows[20_000][1], Cell::Text("München".into()));
    assert_eq!(pq.rows[0][1], Cell::Text("Paris".into()));
    let avro = read_avro(&h.output_path("avro/late.avro"));
    assert_eq!(avro.rows[20_000][1], Cell::Text("München".into()));
    assert_eq!(h.calls.count("GetObject"), 2, "one pass found the byte, one converted the file");
    assert_eq!(h.calls.count("PutObject"), 2, "the interrupted pass wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_applied() {
    let h = Harness::start().await;

    // Dialect: `;`, `'` quotes, `\` escapes, no header, "NA" as the only null token.
    let dialect =
        "1;'it\\'s; here';NA;2024-01-02\n2;'';3.5;NA\n3;'multi\nline';-0.25;2023-12-31\nNA;plain;1e3;2024-02-29\n";
    h.put("dialect/d.csv", dialect);
    let mut job = h.job("dialect/", "dialect-out/");
    job.csv = job
        .csv
        .clone()
        .with_delimiter(';')
        .with_quote(Some('\''))
        .with_escape(Some('\\'))
        .with_header(false)
        .with_null_values(vec!["NA".into()]);
    let result = h.run(&job).await;
    let r = result_for(&result, "dialect/d.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, 4, "without a header the first row is data");
    let mut reader = csv::ReaderBuilder::new();
    reader.has_headers(false).delimiter(b';').quote(b'\'').escape(Some(b'\\'));
    let (_, records) = parse_csv(dialect.as_bytes(), &reader);
    let types = [Expect::Int, Expect::Text, Expect::Float, Expect::Date];
    let expected = expected_rows(&records, &types, &["NA"]);
    assert_eq!(expected[0][1], Cell::Text("it's; here".into()));
    assert_eq!(expected[1][1], Cell::Text(String::new()), "an empty field is not null when only NA is");
    let names = ["column_1", "column_2", "column_3", "column_4"];
    let pq = read_parquet(&h.output_path("dialect-out/parquet/d.parquet"));
    assert_parquet_schema("dialect parquet", &pq, &names, &types);
    assert_cells_eq("dialect parquet", &expected, &pq.rows);
    let avro = read_avro(&h.output_path("dialect-out/avro/d.avro"));
    assert_avro_schema("dialect avro", &avro, &names, &types);
    assert_cells_eq("dialect avro", &expected, &avro.rows);

    // Explicit schema: zip codes forced to text, an int64 column rejecting a bad value.
    let mut good = String::from("zip,qty,label\n");
    let mut bad = good.clone();
    for i in 0..10 {
        writeln!(good, "{},{i},l{i}", 10_001 + i * 1000).unwrap();
        let qty = if i == 5 { "seven".to_owned() } else { i.to_string() };
        writeln!(bad, "{},{qty},l{i}", 94_105 + i).unwrap();
    }
    h.put("schema/good.csv", &good);
    h.put("schema/bad.csv", &bad);
    let mut job = h.job("schema/", "schema-out/");
    job.csv.schema = Some(parse_schema_json(r#"{"zip": "string", "qty": "int"}"#).unwrap());
    let result = h.run(&job).await;
    let r = result_for(&result, "schema/good.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    let (_, records) = parse_csv(good.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Text, Expect::Int, Expect::Text];
    let expected = expected_rows(&records, &types, &[""]);
    assert_eq!(expected[0][0], Cell::Text("10001".into()));
    let pq = read_parquet(&h.output_path("schema-out/parquet/good.parquet"));
    assert_parquet_schema("schema parquet", &pq, &["zip", "qty", "label"], &types);
    assert_cells_eq("schema parquet", &expected, &pq.rows);
    let avro = read_avro(&h.output_path("schema-out/avro/good.avro"));
    assert_avro_schema("schema avro", &avro, &["zip", "qty", "label"], &types);
    assert_cells_eq("schema avro", &expected, &avro.rows);
    let r = result_for(&result, "schema/bad.csv");
    assert_eq!(r.status, FileStatus::Failed);
    let e = r.error.as_ref().unwrap();
    assert_eq!((e.kind.as_str(), e.line), ("bad_input.schema_mismatch", Some(7)), "{}", e.message);
    assert!(e.message.contains("seven") && e.message.contains("qty"), "{}", e.message);

    // Parquet options; only Parquet is written.
    let mut rows_csv = String::from("a,b\n");
    for i in 0..1000 {
        writeln!(rows_csv, "{i},{}.5", i * 2).unwrap();
    }
    h.put("pq/rows.csv", &rows_csv);
    let (_, records) = parse_csv(rows_csv.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Int, Expect::Float];
    let expected = expected_rows(&records, &types, &[""]);
    for (out, compression, group_rows, want, groups) in [
        ("pq-zstd/", ParquetCompression::Zstd, 100, Compression::ZSTD(Default::default()), 10),
        ("pq-none/", ParquetCompression::None, 131_072, Compression::UNCOMPRESSED, 1),
        ("pq-snappy/", ParquetCompression::Snappy, 300, Compression::SNAPPY, 4),
    ] {
        let mut job = h.job("pq/", out);
        job.formats = vec![Format::Parquet];
        job.parquet = job.parquet.clone().with_compression(compression).with_row_group_rows(group_rows);
        let result = h.run(&job).await;
        let r = result_for(&result, "pq/rows.csv");
        assert_eq!(r.status, FileStatus::Converted, "{out}: {:?}", r.error);
        let formats: Vec<Format> = r.outputs.iter().map(|o| o.format).collect();
        assert_eq!(formats, [Format::Parquet], "{out}");
        let pq = read_parquet(&h.output_path(&format!("{out}parquet/rows.parquet")));
        assert_cells_eq(out, &expected, &pq.rows);
        let md = &pq.metadata;
        assert_eq!(md.num_row_groups(), groups, "{out}: row groups");
        let sizes: Vec<i64> = md.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes.iter().sum::<i64>(), 1000, "{out}");
        assert!(sizes.iter().all(|&n| n <= group_rows as i64), "{out}: {sizes:?}");
        for g in md.row_groups() {
            for c in g.columns() {
                let got = c.compression();
                let same = matches!((got, want), (Compression::ZSTD(_), Compression::ZSTD(_))) || got == want;
                assert!(same, "{out}: column chunk compressed with {got:?}, expected {want:?}");
            }
        }
    }

    // Avro codecs; only Avro is written.
    for (out, codec, name) in [
        ("avro-deflate/", AvroCodec::Deflate, "deflate"),
        ("avro-zstd/", AvroCodec::Zstd, "zstandard"),
        ("avro-null/", AvroCodec::Null, "null"),
        ("avro-snappy/", AvroCodec::Snappy, "snappy"),
    ] {
        let mut job = h.job("pq/", out);
        job.formats = vec![Format::Avro];
        job.avro = job.avro.clone().with_codec(codec);
        let result = h.run(&job).await;
        let r = result_for(&result, "pq/rows.csv");
        assert_eq!(r.status, FileStatus::Converted, "{out}: {:?}", r.error);
        let avro = read_avro(&h.output_path(&format!("{out}avro/rows.avro")));
        assert_eq!(avro.codec(), name, "{out}: avro.codec in the header");
        assert_avro_schema(out, &avro, &["a", "b"], &types);
        assert_cells_eq(out, &expected, &avro.rows);
    }

    let files = h.output_files();
    let in_dir = |prefix: &str| files.iter().filter(|f| f.starts_with(prefix)).cloned().collect::<Vec<_>>();
    assert_eq!(
        in_dir("pq-"),
        ["pq-none/parquet/rows.parquet", "pq-snappy/parquet/rows.parquet", "pq-zstd/parquet/rows.parquet"],
        "no avro object when only parquet is requested"
    );
    assert_eq!(in_dir("avro-").len(), 4);
    assert!(
        in_dir("avro-").iter().all(|f| f.ends_with("/avro/rows.avro")),
        "no parquet object when only avro is requested"
    );
    assert_eq!(
        in_dir("schema-out/"),
        output_keys("schema-out/", &["good"], &["avro", "parquet"]),
        "nothing for the bad file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_uses_multipart() {
    let h = Harness::start().await;
    let (text, rows) = large_csv(11, 20 * MIB);
    h.put("big/large.csv", &text);

    let result = h.run(&h.job("big/", "")).await;
    let r = result_for(&result, "big/large.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, rows as u64);
    assert_eq!(r.bytes_in, text.len() as u64);

    let (_, records) = parse_csv(text.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Int, Expect::Text, Expect::Float];
    let expected = expected_rows(&records, &types, &[""]);

    let pq = read_parquet(&h.output_path("parquet/large.parquet"));
    assert_parquet_schema("large.parquet", &pq, &["id", "payload", "score"], &types);
    assert_eq!(pq.metadata.file_metadata().num_rows(), rows as i64);
    assert_cells_eq("large.parquet", &expected, &pq.rows);

    let avro_path = h.output_path("avro/large.avro");
    let avro_size = std::fs::metadata(&avro_path).unwrap().len();
    assert!(avro_size > 8 * MIB as u64, "the avro output ({avro_size} bytes) needs more than one part");
    let avro = read_avro(&avro_path);
    assert_avro_schema("large.avro", &avro, &["id", "payload", "score"], &types);
    assert_cells_eq("large.avro", &expected, &avro.rows);

    for o in &r.outputs {
        assert_eq!(o.bytes, std::fs::metadata(h.output_path(&o.key)).unwrap().len(), "{}", o.key);
    }
    assert!(h.calls.count("CompleteMultipartUpload") >= 1, "{:?}", h.calls.all());
    assert_eq!(h.calls.count("AbortMultipartUpload"), 0);
    assert_eq!(h.leftover_upload_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(h.output_files(), output_keys("", &["large"], &["avro", "parquet"]));

    // Retried, the batch finds the file done; its multipart outputs could not record their rows,
    // so the Parquet footer gives them: one ranged GET of the output, none of the input.
    let job = h.job("big/", "");
    let files = csvlake_planner::plan::list_inputs(h.converter.client(), &job.input).await.unwrap();
    let batch = csvlake_contract::payload::ConvertBatch {
        job,
        batch: Some(0),
        files,
        retry_count: 1,
        redrive_count: 0,
        schema: None,
    };
    h.calls.clear();
    let again = h.converter.convert_batch(&batch).await.unwrap();
    let done = &again.files[0];
    assert_eq!((done.status, done.rows, &done.outputs), (FileStatus::Converted, r.rows, &r.outputs));
    assert_eq!((h.calls.count("HeadObject"), h.calls.count("GetObject")), (2, 1), "{:?}", h.calls.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_two_thousand_columns_is_written_in_bounded_row_groups() {
    let h = Harness::start().await;
    const COLUMNS: usize = 2_000;
    const ROWS: usize = 1_500;
    let mut text = (0..COLUMNS).map(|c| format!("c{c}")).collect::<Vec<_>>().join(",");
    text.push('\n');
    for r in 0..ROWS {
        text.push_str(&(0..COLUMNS).map(|c| ((r * 7 + c * 13) % 100_000).to_string()).collect::<Vec<_>>().join(","));
        text.push('\n');
    }
    h.put("wide/w.csv", &text);
    let mut job = h.job("wide/", "");
    job.parquet.row_group_bytes = 1 << 20;
    let result = h.run(&job).await;
    let r = result_for(&result, "wide/w.csv");
    assert_eq!((r.status, r.rows), (FileStatus::Converted, ROWS as u64), "{:?}", r.error);
    let pq = read_parquet(&h.output_path("parquet/w.parquet"));
    let meta = pq.metadata;
    assert_eq!(meta.file_metadata().schema_descr().num_columns(), COLUMNS);
    assert!(meta.num_row_groups() > 1, "the byte cap cut the rows into several row groups");
    // A row group is cut after the batch that passes the cap; batches hold at most 4 MiB of
    // input, here 7 MB of int64 values.
    for g in meta.row_groups() {
        assert!(g.total_byte_size() <= 16 << 20, "a row group of {} bytes", g.total_byte_size());
    }
    assert_eq!(meta.row_groups().iter().map(|g| g.num_rows()).sum::<i64>(), ROWS as i64);
    assert_eq!(pq.rows[ROWS - 1][COLUMNS - 1], Cell::Int((((ROWS - 1) * 7 + (COLUMNS - 1) * 13) % 100_000) as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_keys_names_and_header_only_files() {
    let h = Harness::start().await;
    let text = "first name,1col,a-b,a_b,when\nann,1,2,3,2024-01-01 10:00:00.5\nbob,4,,6,2024-01-02\n";
    h.put("odd/with space/ünï+code%20x.CSV", text);
    h.put("odd/header_only.csv", "a,b\n");

    // An input prefix without a trailing slash, an output prefix without one either.
    let result = h.run(&h.job("odd", "o")).await;
    let r = result_for(&result, "odd/with space/ünï+code%20x.CSV");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, 2);
    let keys: Vec<&str> = r.outputs.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["o/parquet/with space/ünï+code%20x.parquet", "o/avro/with space/ünï+code%20x.avro"]);

    let (_, records) = parse_csv(text.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Text, Expect::Int, Expect::Int, Expect::Int, Expect::Timestamp];
    let expected = expected_rows(&records, &types, &[""]);
    assert_eq!(expected[1][4], Cell::Micros(1_704_153_600_000_000), "a date in a timestamp column is its midnight");
    let pq = read_parquet(&h.output_path(keys[0]));
    assert_parquet_schema("odd parquet", &pq, &["first name", "1col", "a-b", "a_b", "when"], &types);
    assert_cells_eq("odd parquet", &expected, &pq.rows);
    let avro = read_avro(&h.output_path(keys[1]));
    // The real `a_b` keeps its name in Avro; `a-b` yields to it.
    assert_avro_schema("odd avro", &avro, &["first_name", "_1col", "a_b_2", "a_b", "when"], &types);
    assert_cells_eq("odd avro", &expected, &avro.rows);

    let r = result_for(&result, "odd/header_only.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, 0);
    let pq = read_parquet(&h.output_path("o/parquet/header_only.parquet"));
    assert_parquet_schema("header-only parquet", &pq, &["a", "b"], &[Expect::Text, Expect::Text]);
    assert!(pq.rows.is_empty());
    let avro = read_avro(&h.output_path("o/avro/header_only.avro"));
    assert_avro_schema("header-only avro", &avro, &["a", "b"], &[Expect::Text, Expect::Text]);
    assert!(avro.rows.is_empty());
    assert_eq!(h.output_files().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_a_large_file_aborts_the_first_pass_uploads() {
    let h = Harness::start().await;
    // Past the 8 MiB part size before the contradicting row, so that the first pass has
    // multipart uploads under way when it learns that two columns must be text.
    let (mut text, rows) = large_csv(23, 12 * MIB);
    text.push_str("x1,tail,n/a\n");
    h.put("wide/large.csv", &text);

    let result = h.run(&h.job("wide/", "")).await;
    let r = result_for(&result, "wide/large.csv");
    assert_eq!(r.status, FileStatus::Converted, "{:?}", r.error);
    assert_eq!(r.rows, rows as u64 + 1);

    let (_, records) = parse_csv(text.as_bytes(), &csv::ReaderBuilder::new());
    let types = [Expect::Text, Expect::Text, Expect::Text];
    let expected = expected_rows(&records, &types, &[""]);
    let pq = read_parquet(&h.output_path("parquet/large.parquet"));
    assert_parquet_schema("large.parquet", &pq, &["id", "payload", "score"], &types);
    assert_cells_eq("large.parquet", &expected, &pq.rows);
    let avro = read_avro(&h.output_path("avro/large.avro"));
    assert_avro_schema("large.avro", &avro, &["id", "payload", "score"], &types);
    assert_cells_eq("large.avro", &expected, &avro.rows);

    assert_eq!(h.calls.count("GetObject"), 2, "{:?}", h.calls.all());
    let (created, aborted, completed) = (
        h.calls.count("CreateMultipartUpload"),
        h.calls.count("AbortMultipartUpload"),
        h.calls.count("CompleteMultipartUpload"),
    );
    assert!(aborted >= 1, "the first pass had an upload under way: {:?}", h.calls.all());
    assert!(completed >= 1, "the second pass's large output is multipart");
    assert_eq!(created, aborted + completed, "every upload was either completed or aborted");
    assert_eq!(h.leftover_upload_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(h.output_files(), output_keys("", &["large"], &["avro", "parquet"]));
}

/// Records what a converter reports: every read, and the bytes read by the time each file ended.
#[derive(Default)]
struct Recorder {
    reads: std::sync::Mutex<Vec<u64>>,
    done: std::sync::Mutex<Vec<(String, u64)>>,
}

impl csvlake_converter::convert::Progress for Recorder {
    fn read(&self, bytes: u64) {
        self.reads.lock().unwrap().push(bytes);
    }

    fn file_done(&self, result: &csvlake_contract::payload::FileResult) {
        let read = self.reads.lock().unwrap().iter().sum();
        self.done.lock().unwrap().push((result.key.clone(), read));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_follows_the_bytes_read_once_per_file_across_passes() {
    let h = Harness::start().await;
    // Two passes: a contradicting last row makes the converter read the file again.
    let (mut text, _) = large_csv(29, 6 * MIB);
    text.push_str("x1,tail,n/a\n");
    h.put("p/wide.csv", &text);
    h.put("p/bad.csv", "a,b\n1\n");
    let recorder = std::sync::Arc::new(Recorder::default());
    let converter = h.converter.clone().with_progress(recorder.clone());
    let job = h.job("p/", "");
    let files = vec![
        FileRef { key: "p/wide.csv".into(), size: text.len() as u64, etag: None },
        FileRef { key: "p/bad.csv".into(), size: 6, etag: None },
    ];
    let batch = csvlake_contract::payload::ConvertBatch {
        job,
        batch: None,
        files,
        retry_count: 0,
        redrive_count: 0,
        schema: None,
    };
    let result = converter.convert_batch(&batch).await.expect("the batch succeeds");
    assert_eq!(statuses(&result).len(), 2);
    assert_eq!(h.calls.count("GetObject"), 3, "the large file was read twice: {:?}", h.calls.all());

    let reads = recorder.reads.lock().unwrap().clone();
    assert_eq!(reads.iter().sum::<u64>(), text.len() as u64 + 6, "each file counts its size once");
    assert!(reads.len() > 10, "a large file advances the progress as it is read, not only at its end: {reads:?}");
    let done = recorder.done.lock().unwrap().clone();
    assert_eq!(done.len(), 2);
    let wide = done.iter().find(|(k, _)| k == "p/wide.csv").expect("the large file ended");
    assert!(wide.1 >= text.len() as u64, "the large file's bytes were all counted by its end: {done:?}");
}
