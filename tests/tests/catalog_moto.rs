//! The catalog against moto's Glue (`moto_server`), run as a child process on a free loopback
//! port. `CSVLAKE_MOTO_SERVER` names its executable; without it the tests say so and pass.

use std::collections::HashMap;
use std::process::Command;

use aws_sdk_glue::Client;
use aws_sdk_glue::types::{DatabaseInput, Table};

use csvlake_contract::errors::CATALOG_ERROR;
use csvlake_contract::tables::TableSchema;
use csvlake_engine::Format;
use csvlake_engine::schema::{ColumnType, arrow_schema};
use csvlake_reducer::catalog::{self, CatalogAction, Registration, parameters};
use csvlake_tests::moto::Moto;

/// Set in the child process of the endpoint test.
const CHILD_ENV: &str = "CSVLAKE_GLUE_ENDPOINT_CHILD";

async fn create_database(glue: &Client, name: &str) {
    glue.create_database()
        .database_input(DatabaseInput::builder().name(name).build().unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateDatabase {name}: {e:?}"));
}

async fn get_table(glue: &Client, database: &str, name: &str) -> Table {
    glue.get_table()
        .database_name(database)
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetTable {name}: {e:?}"))
        .table
        .expect("a table")
}

async fn versions(glue: &Client, database: &str, name: &str) -> usize {
    let out = glue.get_table_versions().database_name(database).table_name(name).send().await.unwrap();
    out.table_versions().len()
}

fn columns(t: &Table) -> Vec<(String, String)> {
    let sd = t.storage_descriptor().expect("a storage descriptor");
    sd.columns().iter().map(|c| (c.name().to_owned(), c.r#type().unwrap_or_default().to_owned())).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// A schema of every column type, with names Glue lowercases and one Avro renames.
fn every_type() -> TableSchema {
    TableSchema::new(
        [
            ("id", ColumnType::Int64),
            ("Name", ColumnType::Utf8),
            ("amount-eur", ColumnType::Decimal { precision: 12, scale: 2 }),
            ("ok", ColumnType::Boolean),
            ("ratio", ColumnType::Float64),
            ("day", ColumnType::Date32),
            ("at", ColumnType::Timestamp),
            ("at_utc", ColumnType::TimestampUtc),
            ("empty", ColumnType::Null),
        ]
        .map(|(n, t)| (n.to_owned(), t)),
    )
}

const PARQUET_LOCATION: &str = "s3://lake/converted/parquet/sales/eu/";
const AVRO_LOCATION: &str = "s3://lake/converted/avro/sales/eu/";

fn registration<'a>(schema: &'a TableSchema, version: u64, formats: &'a [Format]) -> Registration<'a> {
    Registration {
        database: "lake",
        name: &NAME,
        schema,
        parquet_location: PARQUET_LOCATION,
        avro_location: AVRO_LOCATION,
        schema_version: version,
        formats,
    }
}

static NAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| catalog::glue_table_name("sales/EU"));

#[tokio::test]
async fn tables_are_created_left_alone_when_current_and_updated_once_when_widened() {
    let Some(moto) = Moto::from_env("tables_are_created_left_alone_when_current_and_updated_once_when_widened") else {
        return;
    };
    let glue = moto.glue();
    create_database(&glue, "lake").await;
    let schema = every_type();
    let both = [Format::Parquet, Format::Avro];

    let outcome = catalog::register(&glue, &registration(&schema, 1, &both)).await.unwrap();
    assert_eq!(outcome.database, "lake");
    let actions: Vec<(&str, Format, CatalogAction)> =
        outcome.tables.iter().map(|t| (t.table.as_str(), t.format, t.action)).collect();
    assert_eq!(
        actions,
        [
            ("sales_eu", Format::Parquet, CatalogAction::Created),
            ("sales_eu_avro", Format::Avro, CatalogAction::Created)
        ]
    );

    // The Parquet table.
    let parquet = get_table(&glue, "lake", "sales_eu").await;
    assert_eq!(parquet.table_type(), Some("EXTERNAL_TABLE"));
    assert_eq!(
        columns(&parquet),
        pairs(&[
            ("id", "bigint"),
            ("name", "string"),
            ("amount-eur", "decimal(12,2)"),
            ("ok", "boolean"),
            ("ratio", "double"),
            ("day", "date"),
            ("at", "timestamp"),
            ("at_utc", "timestamp"),
            ("empty", "string"),
        ])
    );
    let sd = parquet.storage_descriptor().unwrap();
    assert_eq!(sd.location(), Some(PARQUET_LOCATION));
    assert_eq!(sd.input_format(), Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"));
    assert_eq!(sd.output_format(), Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"));
    let serde = sd.serde_info().unwrap();
    assert_eq!(serde.serialization_library(), Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"));
    assert_eq!(serde.parameters().unwrap(), &HashMap::from([("serialization.format".to_owned(), "1".to_owned())]));
    let p = parquet.parameters().unwrap();
    assert_eq!(p[parameters::CLASSIFICATION], "parquet");
    assert_eq!(p[parameters::CSVLAKE_VERSION], env!("CARGO_PKG_VERSION"));
    assert_eq!(p[parameters::SCHEMA_VERSION], "1");
    assert_eq!(p[parameters::SCHEMA_ID], schema.id());

    // The Avro table: the Avro names, and the files' own schema as the literal.
    let avro = get_table(&glue, "lake", "sales_eu_avro").await;
    let avro_columns = columns(&avro);
    assert_eq!(avro_columns[2], ("amount_eur".to_owned(), "decimal(12,2)".to_owned()));
    assert_eq!(avro_columns.len(), 9);
    let sd = avro.storage_descriptor().unwrap();
    assert_eq!(sd.location(), Some(AVRO_LOCATION));
    assert_eq!(sd.input_format(), Some("org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat"));
    assert_eq!(sd.output_format(), Some("org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat"));
    let serde = sd.serde_info().unwrap();
    assert_eq!(serde.serialization_library(), Some("org.apache.hadoop.hive.serde2.avro.AvroSerDe"));
    let (names, types) = schema.parts();
    let engine_json = csvlake_engine::avro::avro_schema_json(&arrow_schema(&names, &types)).unwrap();
    for literal in [
        &serde.parameters().unwrap()[parameters::AVRO_SCHEMA_LITERAL],
        &avro.parameters().unwrap()[parameters::AVRO_SCHEMA_LITERAL],
    ] {
        let parsed: serde_json::Value = serde_json::from_str(literal).expect("the literal is JSON");
        assert_eq!(parsed, serde_json::from_str::<serde_json::Value>(&engine_json).unwrap());
        assert_eq!(literal, &engine_json);
    }
    assert_eq!(avro.parameters().unwrap()[parameters::CLASSIFICATION], "avro");
    let first_version = parquet.version_id().map(str::to_owned);

    // The same schema again: nothing written.
    let outcome = catalog::register(&glue, &registration(&schema, 1, &both)).await.unwrap();
    assert!(outcome.tables.iter().all(|t| t.action == CatalogAction::Unchanged), "{outcome:?}");
    assert_eq!(get_table(&glue, "lake", "sales_eu").await.version_id().map(str::to_owned), first_version);
    assert_eq!((versions(&glue, "lake", "sales_eu").await, versions(&glue, "lake", "sales_eu_avro").await), (1, 1));

    // A widened schema: one update of each table.
    let mut wider = schema.clone();
    wider.columns[0].column_type = ColumnType::Decimal { precision: 20, scale: 0 };
    wider.columns.push(csvlake_contract::tables::SchemaColumn { name: "Note".into(), column_type: ColumnType::Utf8 });
    let outcome = catalog::register(&glue, &registration(&wider, 2, &both)).await.unwrap();
    assert!(outcome.tables.iter().all(|t| t.action == CatalogAction::Updated), "{outcome:?}");
    assert!(outcome.tables[0].changed.iter().any(|c| c == "columns"), "{outcome:?}");
    assert_eq!((versions(&glue, "lake", "sales_eu").await, versions(&glue, "lake", "sales_eu_avro").await), (2, 2));
    let parquet = get_table(&glue, "lake", "sales_eu").await;
    let cols = columns(&parquet);
    assert_eq!((cols[0].1.as_str(), cols[9].0.as_str(), cols.len()), ("decimal(20,0)", "note", 10));
    let p = parquet.parameters().unwrap();
    assert_eq!((p[parameters::SCHEMA_VERSION].as_str(), p[parameters::SCHEMA_ID].clone()), ("2", wider.id()));
    let (names, types) = wider.parts();
    let wider_json = csvlake_engine::avro::avro_schema_json(&arrow_schema(&names, &types)).unwrap();
    let avro = get_table(&glue, "lake", "sales_eu_avro").await;
    assert_eq!(avro.parameters().unwrap()[parameters::AVRO_SCHEMA_LITERAL], wider_json);

    // And again: no update.
    let outcome = catalog::register(&glue, &registration(&wider, 2, &both)).await.unwrap();
    assert!(outcome.tables.iter().all(|t| t.action == CatalogAction::Unchanged), "{outcome:?}");
    assert_eq!((versions(&glue, "lake", "sales_eu").await, versions(&glue, "lake", "sales_eu_avro").await), (2, 2));
    // The report's record of it.
    assert_eq!(
        serde_json::to_value(&outcome.tables[1]).unwrap(),
        serde_json::json!({"table": "sales_eu_avro", "format": "avro", "action": "unchanged"})
    );
}

#[tokio::test]
async fn failures_are_catalog_errors_that_name_the_database_and_the_table() {
    let Some(moto) = Moto::from_env("failures_are_catalog_errors_that_name_the_database_and_the_table") else { return };
    let glue = moto.glue();
    let schema = every_type();
    let parquet_only = [Format::Parquet];

    // No such database.
    let reg = Registration { database: "nowhere", ..registration(&schema, 1, &parquet_only) };
    let e = catalog::register(&glue, &reg).await.unwrap_err();
    assert!(e.0.starts_with("catalog nowhere.sales_eu: GetTable: EntityNotFoundException: "), "{e}");
    assert!(!e.0.contains('\n'), "{e}");
    assert_eq!(csvlake_contract::BatchError::from(e).error_type(), CATALOG_ERROR);

    // Columns that Glue would merge: nothing is written.
    create_database(&glue, "lake").await;
    let clash = TableSchema::new([("ID".to_owned(), ColumnType::Int64), ("id".to_owned(), ColumnType::Utf8)]);
    let e = catalog::register(&glue, &registration(&clash, 1, &parquet_only)).await.unwrap_err();
    assert_eq!(
        e.0,
        r#"catalog lake.sales_eu: the columns "ID" and "id" are both "id" in Glue, which lowercases column names"#
    );
    let tables = glue.get_tables().database_name("lake").send().await.unwrap();
    assert!(tables.table_list().is_empty());

    // Only the formats written get a table.
    let outcome = catalog::register(&glue, &registration(&schema, 1, &parquet_only)).await.unwrap();
    assert_eq!(outcome.tables.len(), 1);
    let tables = glue.get_tables().database_name("lake").send().await.unwrap();
    let names: Vec<&str> = tables.table_list().iter().map(Table::name).collect();
    assert_eq!(names, ["sales_eu"]);
}

/// The client of [`catalog::client`] finds Glue where `AWS_ENDPOINT_URL_GLUE` says. The process
/// environment is the SDK's to read, so the test runs itself again as a child with that
/// variable set; the child registers a table, and the parent finds it in moto.
#[tokio::test]
async fn the_client_goes_where_aws_endpoint_url_glue_says() {
    const NAME: &str = "the_client_goes_where_aws_endpoint_url_glue_says";
    if std::env::var_os(CHILD_ENV).is_some() {
        let glue = catalog::client().await;
        let schema = every_type();
        catalog::register(&glue, &registration(&schema, 1, &[Format::Parquet])).await.expect("registered");
        return;
    }
    let Some(moto) = Moto::from_env(NAME) else { return };
    let glue = moto.glue();
    create_database(&glue, "lake").await;
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("AWS_ENDPOINT_URL_GLUE", moto.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status}\n{}", moto.log_tail());
    let table = get_table(&glue, "lake", "sales_eu").await;
    assert_eq!(table.storage_descriptor().and_then(|sd| sd.location()), Some(PARQUET_LOCATION));
}
