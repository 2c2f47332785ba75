//! The catalog end to end: `csvlake run --catalog-database` over local directories, with
//! `AWS_ENDPOINT_URL_GLUE` pointing at moto's Glue, as a person runs it. The tables are read
//! back with GetTable: created by the first run, unchanged by a run that writes the same schema,
//! updated once by a run that widens it. `CSVLAKE_MOTO_SERVER` names moto's server; without it
//! the test says it was skipped, and passes.

use std::path::Path;
use std::process::Command;

use aws_sdk_glue::types::DatabaseInput;
use csvlake_contract::run::Report;
use csvlake_tests::csvlake_bin;
use csvlake_tests::moto::Moto;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn run(moto: &Moto, input: &Path, output: &Path, run_id: &str) -> Report {
    let out = Command::new(csvlake_bin())
        .args(["run", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap(), "--quiet"])
        .args(["--run-id", run_id, "--catalog-database", "lake"])
        .env("AWS_ENDPOINT_URL_GLUE", moto.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run csvlake");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{run_id}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    let report = output.join("_runs").join(run_id).join("report.json");
    serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap()
}

fn actions(report: &Report) -> Vec<(String, String)> {
    report
        .catalog
        .as_ref()
        .expect("a catalog report")
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.action.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_registers_its_tables_and_updates_them_only_when_the_schema_changes() {
    let Some(moto) = Moto::from_env("catalog") else { return };
    let glue = moto.glue();
    glue.create_database().database_input(DatabaseInput::builder().name("lake").build().unwrap()).send().await.unwrap();

    let root = tempfile::tempdir().unwrap();
    let (input, output) = (root.path().join("in"), root.path().join("out"));
    write(&input, "sales/a.csv", "amount,code\n10,5\n20,6\n");
    write(&input, "sales/b.csv", "amount,code\n1.5,\n");
    let r = run(&moto, &input, &output, "one");
    assert_eq!(actions(&r), [("sales".into(), "created".into()), ("sales_avro".into(), "created".into())]);

    let table = glue.get_table().database_name("lake").name("sales").send().await.unwrap().table.unwrap();
    let sd = table.storage_descriptor.unwrap();
    let columns: Vec<(String, String)> =
        sd.columns().iter().map(|c| (c.name.clone(), c.r#type.clone().unwrap_or_default())).collect();
    assert_eq!(columns, [("amount".into(), "double".into()), ("code".into(), "bigint".into())]);
    assert!(sd.location.as_deref().unwrap().ends_with("/parquet/sales/"), "{:?}", sd.location);
    assert_eq!(
        sd.serde_info.and_then(|s| s.serialization_library),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into())
    );
    let avro = glue.get_table().database_name("lake").name("sales_avro").send().await.unwrap().table.unwrap();
    let literal = avro.parameters.unwrap_or_default().get("avro.schema.literal").cloned().expect("avro.schema.literal");
    let parsed: serde_json::Value = serde_json::from_str(&literal).expect("the literal parses");
    let names: Vec<&str> = parsed["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["amount", "code"]);

    // Nothing new: nothing written.
    let r = run(&moto, &input, &output, "two");
    assert!(r.catalog.as_ref().is_none_or(|c| c.tables.iter().all(|t| t.action == "unchanged")), "{:?}", r.catalog);

    // A widening updates both tables once.
    write(&input, "sales/c.csv", "amount,code\n3,AB-1\n");
    let r = run(&moto, &input, &output, "three");
    assert_eq!(actions(&r), [("sales".into(), "updated".into()), ("sales_avro".into(), "updated".into())]);
    let table = glue.get_table().database_name("lake").name("sales").send().await.unwrap().table.unwrap();
    let code = table.storage_descriptor.unwrap().columns()[1].r#type.clone();
    assert_eq!(code.as_deref(), Some("string"));
    let versions = glue.get_table_versions().database_name("lake").table_name("sales").send().await.unwrap();
    assert_eq!(versions.table_versions().len(), 2, "created once, updated once");
    // The earlier files were conformed, and the Avro table's literal is the files' schema.
    assert_eq!((r.tables[0].conformed, r.tables[0].unconformed), (2, 0), "{:?}", r.tables);
    let avro = glue.get_table().database_name("lake").name("sales_avro").send().await.unwrap().table.unwrap();
    let literal = avro.parameters.unwrap_or_default().get("avro.schema.literal").cloned().expect("avro.schema.literal");
    let literal = apache_avro::Schema::parse_str(&literal).expect("the literal is an Avro schema");
    for file in ["a", "b", "c"] {
        let written = csvlake_tests::read_avro(&output.join(format!("avro/sales/{file}.avro"))).schema;
        assert_eq!(written.canonical_form(), literal.canonical_form(), "{file}.avro");
    }
}
