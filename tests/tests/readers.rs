//! A table as independent readers see it: `csvlake run` over the three files of one folder
//! that disagree on their types, then a later run whose file widens the table with a new
//! column, read back with DuckDB (`read_parquet` over the folder's glob), pyarrow.dataset and
//! fastavro (tests/readers/read_table.py). `CSVLAKE_READERS_PYTHON` names a Python with those
//! packages (`bash scripts/test` installs them into `.venv-readers` and sets it); without it the
//! test says it was skipped, and passes.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use csvlake_tests::csvlake_bin;
use serde_json::{Value, json};

const READERS_ENV: &str = "CSVLAKE_READERS_PYTHON";

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn run(input: &Path, output: &Path, run_id: &str) {
    let out = Command::new(csvlake_bin())
        .args(["run", "--quiet", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--run-id", run_id])
        .output()
        .expect("run csvlake");
    assert_eq!(out.status.code(), Some(0), "{run_id}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What the readers saw of `table`.
fn read(python: &str, output: &Path, table: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("readers/read_table.py");
    let out = Command::new(python).arg(script).arg(output).arg(table).output().expect("run python");
    assert!(out.status.success(), "read_table.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from read_table.py")
}

#[test]
fn duckdb_pyarrow_and_fastavro_read_a_folder_as_one_table() {
    let Some(python) = std::env::var(READERS_ENV).ok().filter(|p| !p.is_empty()) else {
        let _ = writeln!(std::io::stderr(), "readers: skipped: {READERS_ENV} is not set");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    write(&input, "sales/a.csv", "amount,code\n10,5\n20,6\n");
    write(&input, "sales/b.csv", "amount,code\n1.5,\n");
    write(&input, "sales/c.csv", "amount,code\n3,AB-1\n");
    run(&input, &output, "one");

    let seen = read(&python, &output, "sales");
    // Before one schema per table, DuckDB failed: "failed to cast column "code" from type
    // VARCHAR to BIGINT", and pyarrow: "Float value 1.500000 was truncated converting to int64".
    assert_eq!(seen["duckdb"]["columns"], json!([["amount", "DOUBLE"], ["code", "VARCHAR"]]));
    assert_eq!(seen["duckdb"]["rows"], json!([[1.5, null], [10.0, "5"], [20.0, "6"], [3.0, "AB-1"]]));
    assert_eq!(
        seen["pyarrow"],
        json!({"columns": [["amount", "double"], ["code", "string"]], "rows": 4, "file_schemas": 1})
    );
    assert_eq!(seen["avro"]["schemas"], json!(1));
    assert_eq!(seen["avro"]["rows"][1], json!({"amount": 10.0, "code": "5"}));

    // A later file adds a column: every earlier file gets it, as nulls.
    write(&input, "sales/d.csv", "amount,code,note\n4,7,late\n");
    run(&input, &output, "two");
    let seen = read(&python, &output, "sales");
    assert_eq!(seen["duckdb"]["columns"], json!([["amount", "DOUBLE"], ["code", "VARCHAR"], ["note", "VARCHAR"]]));
    assert_eq!(
        seen["duckdb"]["rows"],
        json!([[1.5, null, null], [10.0, "5", null], [20.0, "6", null], [3.0, "AB-1", null], [4.0, "7", "late"]])
    );
    assert_eq!(seen["pyarrow"]["file_schemas"], json!(1));
    assert_eq!(seen["pyarrow"]["rows"], json!(5));
    assert_eq!(seen["avro"]["schemas"], json!(1));
    assert_eq!(seen["avro"]["rows"][4], json!({"amount": 4.0, "code": "7", "note": "late"}));
}
