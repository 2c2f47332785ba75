//! One schema per table, in the converter: a file of a table that has a schema is written with
//! it (a column the file lacks is all null, a column the table lacks is added at the end), a
//! value that needs more widens it, and under `schema_policy: fail` a file that would widen the
//! table's schema fails as `bad_input.schema_drift` and writes nothing.

use arrow::datatypes::DataType;
use csvlake_contract::payload::FileStatus;
use csvlake_contract::run::SchemaPolicy;
use csvlake_contract::tables::{self, Current, TableSchema};
use csvlake_engine::schema::ColumnType;
use csvlake_tests::{Cell, Harness, read_avro, read_parquet, result_for};

/// Stores `schema` as the table's schema under `lake/`, as the reducer does.
fn store_table_schema(h: &Harness, table: &str, schema: &TableSchema) {
    let id = schema.id();
    let at = h.output.join(tables::schema_key("lake/", table, &id));
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(&at, schema.to_json()).unwrap();
    let current = Current {
        generation: 1,
        index: tables::state_key("lake/", table, "index/1.jsonl.zst"),
        entries: 0,
        run_id: "earlier".into(),
        previous: None,
        schema: Some(id),
        schema_version: 1,
    };
    let at = h.output.join(tables::state_key("lake/", table, tables::names::CURRENT));
    std::fs::write(at, serde_json::to_vec(&current).unwrap()).unwrap();
}

fn table() -> TableSchema {
    TableSchema::new([
        ("amount".to_owned(), ColumnType::Float64),
        ("code".to_owned(), ColumnType::Utf8),
        ("note".to_owned(), ColumnType::Utf8),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_written_with_its_tables_schema() {
    let h = Harness::start().await;
    store_table_schema(&h, "sales", &table());
    // Narrower than the table (int64 amounts, int64 codes), without `note`, with a new column.
    h.put("landing/sales/a.csv", "code,amount,extra\n5,10,x\n6,20,y\n");
    let job = h.job("landing/", "lake/");
    let r = h.run(&job).await;
    let a = result_for(&r, "landing/sales/a.csv");
    assert_eq!(a.status, FileStatus::Converted, "{:?}", a.error);

    let pq = read_parquet(&h.output_path("lake/parquet/sales/a.parquet"));
    let fields: Vec<(&str, &DataType)> =
        pq.schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
    assert_eq!(
        fields,
        [
            ("amount", &DataType::Float64),
            ("code", &DataType::Utf8),
            ("note", &DataType::Utf8),
            ("extra", &DataType::Utf8)
        ],
        "the table's columns in its order, then the file's new one"
    );
    assert_eq!(
        pq.rows,
        [
            vec![Cell::Float(10.0), Cell::Text("5".into()), Cell::Null, Cell::Text("x".into())],
            vec![Cell::Float(20.0), Cell::Text("6".into()), Cell::Null, Cell::Text("y".into())],
        ],
        "values unchanged: the code 5 is the text \"5\", and the missing note is null"
    );
    let avro = read_avro(&h.output_path("lake/avro/sales/a.avro"));
    assert_eq!(avro.rows, pq.rows);

    // The file's reported schema is the one written.
    let stored = h.output.join(tables::schema_key("lake/", "sales", a.schema.as_deref().unwrap()));
    let written: TableSchema = serde_json::from_slice(&std::fs::read(stored).unwrap()).unwrap();
    assert_eq!(written.columns.len(), 4);
    assert!(written.covers(&table()) && !table().covers(&written));

    // A file of another table, which has no schema yet, keeps its own.
    h.put("landing/events/b.csv", "code,amount\n5,10\n");
    let r = h.run(&job).await;
    assert_eq!(result_for(&r, "landing/events/b.csv").status, FileStatus::Converted);
    let pq = read_parquet(&h.output_path("lake/parquet/events/b.parquet"));
    assert_eq!(pq.schema.field(1).data_type(), &DataType::Int64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_policy_fail_a_file_that_would_widen_the_table_fails_and_writes_nothing() {
    let h = Harness::start().await;
    store_table_schema(&h, "sales", &table());
    h.put("landing/sales/ok.csv", "amount,code\n1.5,A\n");
    h.put("landing/sales/wider.csv", "amount,code,when\n2026-01-01,B,2026-01-02\n");
    let mut job = h.job("landing/", "lake/");
    job.schema_policy = SchemaPolicy::Fail;
    let r = h.run(&job).await;
    assert_eq!(result_for(&r, "landing/sales/ok.csv").status, FileStatus::Converted);
    let wider = result_for(&r, "landing/sales/wider.csv");
    assert_eq!(wider.status, FileStatus::Failed);
    let e = wider.error.as_ref().unwrap();
    assert_eq!(e.kind, "bad_input.schema_drift");
    assert!(
        e.message.contains("amount: float64 → utf8") && e.message.contains("when: new column, date32"),
        "the message names the columns and types: {}",
        e.message
    );
    assert!(!h.output_path("lake/parquet/sales/wider.parquet").exists());
    assert!(!h.output_path("lake/avro/sales/wider.avro").exists());

    // per_file: each file keeps its own schema.
    job.schema_policy = SchemaPolicy::PerFile;
    let r = h.run(&job).await;
    assert_eq!(result_for(&r, "landing/sales/wider.csv").status, FileStatus::Converted);
    let pq = read_parquet(&h.output_path("lake/parquet/sales/ok.parquet"));
    let names: Vec<&str> = pq.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["amount", "code"]);
}

/// Runs the whole pipeline over `landing/` into `lake/`, and returns its report.
async fn run_pipeline(h: &Harness, run_id: &str, extra: serde_json::Value) -> csvlake_contract::run::Report {
    let mut input = serde_json::json!({
        "input": {"bucket": csvlake_tests::INPUT_BUCKET, "prefix": "landing/"},
        "output": {"bucket": csvlake_tests::OUTPUT_BUCKET, "prefix": "lake/"},
    });
    if let (Some(i), serde_json::Value::Object(extra)) = (input.as_object_mut(), extra) {
        i.extend(extra);
    }
    let client = h.converter.client().clone();
    let converter = std::sync::Arc::new(csvlake_converter::Converter::new(client.clone()));
    let executor = csvlake_cli::local::pipeline::observed_executor(
        client,
        converter,
        csvlake_planner::PlannerConfig::default(),
        None,
    )
    .expect("definition")
    .with_delay_scale(0.0);
    let run = executor.execute(run_id, input).await;
    assert!(matches!(run.status, csvlake_statemachine::ExecutionStatus::Succeeded(_)), "{run_id}: {:?}", run.status);
    let path = h.output.join("lake/_runs").join(run_id).join("report.json");
    serde_json::from_slice(&std::fs::read(path).expect("report.json")).expect("a report")
}

fn types(schema: &TableSchema) -> Vec<(String, String)> {
    schema.columns.iter().map(|c| (c.name.clone(), c.column_type.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_schema_is_the_join_of_its_files_and_later_files_start_from_it() {
    let h = Harness::start().await;
    let pair = |a: &str, b: &str| vec![("amount".to_owned(), a.to_owned()), ("code".to_owned(), b.to_owned())];

    h.put("landing/sales/a.csv", "amount,code\n10,5\n20,6\n");
    let r = run_pipeline(&h, "one", serde_json::json!({})).await;
    let t = &r.tables[0];
    assert_eq!((t.schema.as_ref().map(types), t.schema_version, t.widened), (Some(pair("int64", "int64")), 1, false));

    // b widens amount; its empty code is null, so code stays int64.
    h.put("landing/sales/b.csv", "amount,code\n1.5,\n");
    let r = run_pipeline(&h, "two", serde_json::json!({})).await;
    let t = &r.tables[0];
    assert_eq!((t.schema.as_ref().map(types), t.schema_version, t.widened), (Some(pair("float64", "int64")), 2, true));

    // c is written with the table's schema: its integer amount is a float64.
    h.put("landing/sales/c.csv", "amount,code\n3,AB-1\n");
    let r = run_pipeline(&h, "three", serde_json::json!({})).await;
    let t = &r.tables[0];
    assert_eq!((t.schema.as_ref().map(types), t.schema_version, t.widened), (Some(pair("float64", "utf8")), 3, true));
    let pq = read_parquet(&h.output_path("lake/parquet/sales/c.parquet"));
    assert_eq!(pq.schema.field(0).data_type(), &DataType::Float64);
    assert_eq!(pq.rows, [vec![Cell::Float(3.0), Cell::Text("AB-1".into())]]);

    // Nothing new: the schema stays as it is.
    let r = run_pipeline(&h, "four", serde_json::json!({})).await;
    let t = &r.tables[0];
    assert_eq!((t.schema_version, t.widened), (3, false));

    // Under fail, a file that would widen the stored schema fails and the table keeps it.
    h.put("landing/sales/d.csv", "amount,code,when\n4,X,2026-01-02\n");
    let input = serde_json::json!({"schema_policy": "fail", "tolerated_failure_percentage": 100});
    let r = run_pipeline(&h, "five", input).await;
    assert_eq!(r.failures_by_kind.get("bad_input.schema_drift"), Some(&1));
    let t = &r.tables[0];
    assert_eq!((t.schema.as_ref().map(types), t.schema_version), (Some(pair("float64", "utf8")), 3));
}
