//! One schema per table, in the converter: a file of a table that has a schema is written with
//! it (a column the file lacks is all null, a column the table lacks is added at the end), a
//! value that needs more widens it, and under `schema_policy: fail` a file that would widen the
//! table's schema fails as `bad_input.schema_drift` and writes nothing.

use arrow::datatypes::DataType;
use csvlake_contract::payload::FileStatus;
use csvlake_contract::run::{RunStatus, SchemaPolicy};
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
        schema: Some(id.clone()),
        schema_version: 1,
        schema_history: vec![tables::SchemaVersion { version: 1, schema: id, run_id: "earlier".into() }],
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
    let (status, report) = execute(h, run_id, extra).await;
    assert!(matches!(status, csvlake_statemachine::ExecutionStatus::Succeeded(_)), "{run_id}: {status:?}");
    report.expect("report.json")
}

/// Runs the whole pipeline over `landing/` into `lake/`: how the execution ended, and its report.
async fn execute(
    h: &Harness,
    run_id: &str,
    extra: serde_json::Value,
) -> (csvlake_statemachine::ExecutionStatus, Option<csvlake_contract::run::Report>) {
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
    let path = h.output.join("lake/_runs").join(run_id).join("report.json");
    let report = std::fs::read(path).ok().map(|b| serde_json::from_slice(&b).expect("a report"));
    (run.status, report)
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

/// The Parquet and Avro outputs of a table's files: each file's schema and rows, by file.
struct Outputs {
    parquet: Vec<(String, arrow::datatypes::SchemaRef, Vec<Vec<Cell>>)>,
    avro: Vec<(String, apache_avro::Schema, Vec<Vec<Cell>>)>,
}

/// Reads every output of `table`, file by file.
fn outputs(h: &Harness, table: &str) -> Outputs {
    let mut o = Outputs { parquet: Vec::new(), avro: Vec::new() };
    for key in h.output_files() {
        let name = key.rsplit('/').next().unwrap().to_owned();
        if key.starts_with(&format!("lake/parquet/{table}/")) {
            let pq = read_parquet(&h.output_path(&key));
            o.parquet.push((name, pq.schema.clone(), pq.rows));
        } else if key.starts_with(&format!("lake/avro/{table}/")) {
            let avro = read_avro(&h.output_path(&key));
            o.avro.push((name, avro.schema.clone(), avro.rows));
        }
    }
    o.parquet.sort_by(|a, b| a.0.cmp(&b.0));
    o.avro.sort_by(|a, b| a.0.cmp(&b.0));
    o
}

impl Outputs {
    /// Asserts that every Parquet file has one schema and every Avro file another, and returns
    /// the Parquet one's columns.
    fn one_schema(&self) -> Vec<(String, DataType)> {
        let first = &self.parquet.first().expect("Parquet outputs").1;
        for (name, schema, _) in &self.parquet {
            assert_eq!(schema.fields(), first.fields(), "{name} has another Parquet schema");
        }
        let avro = &self.avro.first().expect("Avro outputs").1;
        for (name, schema, _) in &self.avro {
            assert_eq!(schema.canonical_form(), avro.canonical_form(), "{name} has another Avro schema");
        }
        assert_eq!(self.parquet.len(), self.avro.len());
        first.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    }

    fn rows(&self, file: &str) -> (&[Vec<Cell>], &[Vec<Cell>]) {
        let pq = self.parquet.iter().find(|p| p.0 == format!("{file}.parquet")).expect(file);
        let avro = self.avro.iter().find(|p| p.0 == format!("{file}.avro")).expect(file);
        (&pq.2, &avro.2)
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_files_of_one_folder_get_one_schema_in_one_run_and_keep_their_values() {
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n20,6\n");
    h.put("landing/sales/b.csv", "amount,code\n1.5,\n");
    h.put("landing/sales/c.csv", "amount,code\n3,AB-1\n");
    let r = run_pipeline(&h, "one", serde_json::json!({})).await;
    assert_eq!(r.totals.converted, 3);
    let t = &r.tables[0];
    let want = [("amount".to_owned(), "float64".to_owned()), ("code".to_owned(), "utf8".to_owned())];
    assert_eq!(t.schema.as_ref().map(types), Some(want.to_vec()));
    // a (int64, int64) and c (int64, utf8) were narrower than the join; b's empty code
    // alone says nothing of its type, so b too.
    assert_eq!((t.conformed, t.unconformed), (3, 0), "{t:?}");

    // Every Parquet file has the identical schema, and so does every Avro file: the folder reads
    // as one table, file by file.
    let o = outputs(&h, "sales");
    assert_eq!(o.one_schema(), [("amount".to_owned(), DataType::Float64), ("code".to_owned(), DataType::Utf8)]);
    assert_eq!(o.parquet.len(), 3);
    // The values are unchanged: `5` is the string "5".
    let (pq, avro) = o.rows("a");
    let a = [vec![Cell::Float(10.0), text("5")], vec![Cell::Float(20.0), text("6")]];
    assert_eq!((pq, avro), (&a[..], &a[..]));
    let (pq, avro) = o.rows("b");
    assert_eq!((pq, avro), (&[vec![Cell::Float(1.5), Cell::Null]][..], &[vec![Cell::Float(1.5), Cell::Null]][..]));
    let (pq, _) = o.rows("c");
    assert_eq!(pq, [vec![Cell::Float(3.0), text("AB-1")]]);
    // The run's report counts each file once, with its final outputs.
    assert_eq!(r.totals.files, 3);
    let lines = std::fs::read_to_string(h.output.join("lake/_runs/one/files.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    let schema_id = t.schema.as_ref().unwrap().id();
    for line in lines.lines() {
        let f: csvlake_contract::payload::FileResult = serde_json::from_str(line).unwrap();
        assert_eq!(f.schema.as_deref(), Some(schema_id.as_str()), "{line}");
        assert_eq!(f.outputs.len(), 2);
    }

    // Nothing new: nothing converted, nothing conformed.
    let r = run_pipeline(&h, "two", serde_json::json!({})).await;
    assert_eq!((r.totals.converted, r.tables[0].conformed), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widening_in_a_later_run_conforms_the_earlier_files_once() {
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n20,6\n");
    h.put("landing/sales/x.csv", "amount,code\n7,8\n");
    let r = run_pipeline(&h, "one", serde_json::json!({})).await;
    assert_eq!((r.tables[0].conformed, r.tables[0].schema_version), (0, 1));
    let a_written = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();

    // c widens code: a and x, converted by the first run, are converted again; c was written
    // with the stored schema as its floor, which makes it the join already.
    h.put("landing/sales/c.csv", "amount,code\n3,AB-1\n");
    let r = run_pipeline(&h, "two", serde_json::json!({})).await;
    let t = &r.tables[0];
    assert_eq!((r.totals.converted, t.conformed, t.unconformed, t.widened, t.schema_version), (1, 2, 0, true, 2));
    let o = outputs(&h, "sales");
    assert_eq!(o.one_schema(), [("amount".to_owned(), DataType::Int64), ("code".to_owned(), DataType::Utf8)]);
    assert_eq!(o.rows("a").0, [vec![Cell::Int(10), text("5")], vec![Cell::Int(20), text("6")]]);
    assert_eq!(o.rows("x").1, [vec![Cell::Int(7), text("8")]]);
    // The earlier files are in the run's report only as conformed: the run converted one file.
    assert_eq!(std::fs::read_to_string(h.output.join("lake/_runs/two/files.jsonl")).unwrap().lines().count(), 1);
    let rewritten = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();
    assert!(rewritten > a_written);
    // current.json keeps the schema's history.
    let current: Current = serde_json::from_slice(
        &std::fs::read(h.output.join(tables::state_key("lake/", "sales", tables::names::CURRENT))).unwrap(),
    )
    .unwrap();
    let history: Vec<(u64, &str)> = current.schema_history.iter().map(|v| (v.version, v.run_id.as_str())).collect();
    assert_eq!(history, [(1, "one"), (2, "two")]);
    assert_eq!(current.schema_history[1].schema, t.schema.as_ref().unwrap().id());

    // The index records the new schema: the next run has nothing to do.
    let r = run_pipeline(&h, "three", serde_json::json!({})).await;
    assert_eq!((r.totals.converted, r.tables[0].conformed, r.tables[0].unconformed), (0, 0, 0));
    let again = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();
    assert_eq!(again, rewritten, "a was not converted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_column_gets_it_as_nulls_and_a_new_column_joins_the_table() {
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n");
    run_pipeline(&h, "one", serde_json::json!({})).await;
    h.put("landing/sales/m.csv", "amount\n4\n");
    h.put("landing/sales/n.csv", "amount,code,note\n1,2,hi\n");
    let r = run_pipeline(&h, "two", serde_json::json!({})).await;
    let t = &r.tables[0];
    let want: Vec<(String, String)> =
        [("amount", "int64"), ("code", "int64"), ("note", "utf8")].map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec();
    assert_eq!(t.schema.as_ref().map(types), Some(want));
    let o = outputs(&h, "sales");
    assert_eq!(o.one_schema().len(), 3);
    assert_eq!(o.rows("a").0, [vec![Cell::Int(10), Cell::Int(5), Cell::Null]]);
    assert_eq!(o.rows("m").1, [vec![Cell::Int(4), Cell::Null, Cell::Null]]);
    assert_eq!(o.rows("n").0, [vec![Cell::Int(1), Cell::Int(2), text("hi")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_fail_and_per_file_nothing_is_conformed() {
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n");
    run_pipeline(&h, "one", serde_json::json!({})).await;
    let a_written = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();

    // fail: the widening file fails, and the table is as it was.
    h.put("landing/sales/c.csv", "amount,code\n3,AB-1\n");
    let input = serde_json::json!({"schema_policy": "fail", "tolerated_failure_percentage": 100});
    let r = run_pipeline(&h, "two", input).await;
    assert_eq!(r.failures_by_kind.get("bad_input.schema_drift"), Some(&1));
    assert!(r.failed[0].error.message.contains("code"), "{:?}", r.failed[0]);
    let t = &r.tables[0];
    assert_eq!((t.schema_version, t.widened, t.conformed), (1, false, 0));
    assert!(!h.output_path("lake/parquet/sales/c.parquet").exists());
    let now = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();
    assert_eq!(now, a_written);

    // per_file: today's outputs, each file with its own schema.
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n20,6\n");
    h.put("landing/sales/c.csv", "amount,code\n3.5,AB-1\n");
    let r = run_pipeline(&h, "one", serde_json::json!({"schema_policy": "per_file"})).await;
    assert_eq!((r.totals.converted, r.tables[0].conformed), (2, 0));
    let o = outputs(&h, "sales");
    assert_eq!(o.parquet[0].1.field(0).data_type(), &DataType::Int64);
    assert_eq!(o.parquet[1].1.field(0).data_type(), &DataType::Float64);
    assert_eq!(o.rows("a").0, [vec![Cell::Int(10), Cell::Int(5)], vec![Cell::Int(20), Cell::Int(6)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widening_over_conform_limit_fails_the_run_before_any_earlier_file_is_rewritten() {
    let h = Harness::start().await;
    h.put("landing/sales/a.csv", "amount,code\n10,5\n");
    h.put("landing/sales/x.csv", "amount,code\n7,8\n");
    run_pipeline(&h, "one", serde_json::json!({})).await;
    let a_written = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();

    h.put("landing/sales/c.csv", "amount,code\n3,AB-1\n");
    h.put("landing/sales/d.csv", "amount,code\n4,9\n");
    let (status, report) = execute(&h, "two", serde_json::json!({"conform_limit": 1})).await;
    let csvlake_statemachine::ExecutionStatus::Failed(e) = status else { panic!("{status:?}") };
    assert_eq!(e.error, csvlake_contract::errors::CONFORM_LIMIT);
    // Reported first: c failed, d (which fits the table) converted, the table kept its schema.
    let r = report.expect("the run is reported");
    let message = r.conform_error.as_deref().expect("conform_error");
    for part in ["code: int64 → utf8", "conform_limit 1", "schema_policy fail", "csv.schema"] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(e.cause.contains("conform_limit"), "{}", e.cause);
    assert_eq!(r.status, csvlake_contract::run::RunStatus::Failed);
    assert_eq!((r.totals.converted, r.totals.failed), (1, 1));
    assert_eq!(r.failed[0].key, "landing/sales/c.csv");
    assert_eq!(r.failed[0].error.kind, "bad_input.schema_drift");
    let t = &r.tables[0];
    assert_eq!((t.schema_version, t.widened, t.conformed), (1, false, 0));
    assert!(!h.output_path("lake/parquet/sales/c.parquet").exists());
    assert!(!h.output_path("lake/avro/sales/c.avro").exists());
    let now = std::fs::metadata(h.output_path("lake/parquet/sales/a.parquet")).unwrap().modified().unwrap();
    assert_eq!(now, a_written, "no earlier file was rewritten");
    assert_eq!(outputs(&h, "sales").one_schema()[1], ("code".to_owned(), DataType::Int64));

    // The lease was released; a run with room for the widening converts c and conforms the rest.
    let r = run_pipeline(&h, "three", serde_json::json!({"conform_limit": 10})).await;
    let t = &r.tables[0];
    assert_eq!((r.totals.converted, t.conformed, t.schema_version), (1, 3, 2));
    assert_eq!(outputs(&h, "sales").one_schema()[1], ("code".to_owned(), DataType::Utf8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_left_with_another_schema_are_conformed_conform_limit_at_a_time_without_failing() {
    let h = Harness::start().await;
    // Written per file: a and b keep int64 columns beside c's float64 and utf8.
    h.put("landing/sales/a.csv", "amount,code\n10,5\n");
    h.put("landing/sales/b.csv", "amount,code\n11,6\n");
    h.put("landing/sales/c.csv", "amount,code\n1.5,AB-1\n");
    run_pipeline(&h, "one", serde_json::json!({"schema_policy": "per_file"})).await;

    // No widening now, so no failure: one earlier file per run is conformed.
    h.put("landing/sales/x.csv", "amount,code\n1,2\n");
    let r = run_pipeline(&h, "two", serde_json::json!({"conform_limit": 1})).await;
    let t = &r.tables[0];
    assert_eq!((r.status, t.widened, t.conformed, t.unconformed), (RunStatus::Succeeded, false, 1, 1));
    h.put("landing/sales/y.csv", "amount,code\n3,4\n");
    let r = run_pipeline(&h, "three", serde_json::json!({"conform_limit": 1})).await;
    assert_eq!((r.tables[0].conformed, r.tables[0].unconformed), (1, 0));
    let o = outputs(&h, "sales");
    assert_eq!(o.one_schema(), [("amount".to_owned(), DataType::Float64), ("code".to_owned(), DataType::Utf8)]);
    assert_eq!(o.rows("b").0, [vec![Cell::Float(11.0), text("6")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_schema_pins_its_columns_for_the_whole_table() {
    let h = Harness::start().await;
    let pinned = serde_json::json!({"csv": {"schema": {"code": "utf8"}}});
    h.put("landing/sales/a.csv", "amount,code\n10,5\n");
    h.put("landing/sales/b.csv", "amount,code\n11,6\n");
    let r = run_pipeline(&h, "one", pinned.clone()).await;
    let want = vec![("amount".to_owned(), "int64".to_owned()), ("code".to_owned(), "utf8".to_owned())];
    assert_eq!((r.tables[0].schema.as_ref().map(types), r.tables[0].conformed), (Some(want.clone()), 0));
    // A later code that is not a number is no widening: nothing is converted again.
    h.put("landing/sales/c.csv", "amount,code\n12,AB-1\n");
    let r = run_pipeline(&h, "two", pinned).await;
    let t = &r.tables[0];
    assert_eq!((t.schema.as_ref().map(types), t.widened, t.conformed), (Some(want), false, 0));
    let o = outputs(&h, "sales");
    assert_eq!(o.one_schema()[1], ("code".to_owned(), DataType::Utf8));
    assert_eq!(o.rows("a").0, [vec![Cell::Int(10), text("5")]]);
}
