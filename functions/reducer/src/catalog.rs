//! Registration of a run's tables in the AWS Glue Data Catalog, so that Athena, Spark or Trino
//! can query the outputs by name.
//!
//! Each csvlake table becomes one Glue table per format written: `<name>` over its Parquet
//! folder and `<name>_avro` over its Avro folder, both external, unpartitioned tables whose
//! columns are the table's schema ([`TableSchema`]). The Parquet definition is the one
//! awswrangler writes; the Avro one is Hive's AvroSerDe table, with the files' schema as
//! `avro.schema.literal` in the SerDe parameters (where Hive reads it) and the table parameters.
//! Both carry csvlake's own table parameters ([`parameters`]).
//!
//! [`register`] is idempotent: it reads each table first and creates it when it is missing,
//! updates it only when what a reader depends on differs (columns, location, formats, SerDe,
//! schema id), and otherwise leaves it alone, so that a run that writes the same schema again
//! makes no UpdateTable call and adds no table version.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_glue::Client;
use aws_sdk_glue::config::retry::RetryConfig;
use aws_sdk_glue::config::timeout::TimeoutConfig;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, Table, TableInput};
use serde::{Deserialize, Serialize};

use csvlake_contract::BatchError;
use csvlake_contract::tables::{ROOT_TABLE_FOLDER, TableSchema};
use csvlake_engine::Format;
use csvlake_engine::schema::{ColumnType, arrow_schema};

/// The suffix of the Avro table's name: `<name>_avro`.
pub const AVRO_TABLE_SUFFIX: &str = "_avro";
/// Longest table or column name Glue accepts, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// The type of every table registered.
pub const TABLE_TYPE: &str = "EXTERNAL_TABLE";

/// Hive's classes for each format.
mod hive {
    pub const PARQUET_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
    pub const PARQUET_OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
    pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
    pub const AVRO_INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat";
    pub const AVRO_OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat";
    pub const AVRO_SERDE: &str = "org.apache.hadoop.hive.serde2.avro.AvroSerDe";
}

/// Names of the parameters set on the tables (and, for the first three, on their storage
/// descriptors or SerDe).
pub mod parameters {
    /// The data format, as Glue crawlers and Athena name it: `parquet` or `avro`.
    pub const CLASSIFICATION: &str = "classification";
    /// What the location holds: `file`, as awswrangler and the crawlers write.
    pub const TYPE_OF_DATA: &str = "typeOfData";
    /// The Avro schema JSON of the files, which Hive's AvroSerDe reads the files with.
    pub const AVRO_SCHEMA_LITERAL: &str = "avro.schema.literal";
    /// The Parquet SerDe's serialization format, `1` as Athena's DDL writes it.
    pub const SERIALIZATION_FORMAT: &str = "serialization.format";
    /// The csvlake version that last wrote the definition.
    pub const CSVLAKE_VERSION: &str = "csvlake_version";
    /// The table's schema version, as the caller counts them.
    pub const SCHEMA_VERSION: &str = "csvlake_schema_version";
    /// The id of the table's schema ([`TableSchema::id`](csvlake_contract::tables::TableSchema::id)).
    pub const SCHEMA_ID: &str = "csvlake_schema_id";
}

/// A failure to register a table: one line naming the database, the table and what Glue said.
/// The reducer fails with it as [`BatchError::Catalog`], whose Lambda error type is
/// [`csvlake_contract::errors::CATALOG_ERROR`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

impl From<CatalogError> for BatchError {
    fn from(e: CatalogError) -> Self {
        Self::Catalog(e.0)
    }
}

/// Result of the catalog's functions.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// How long one attempt of a Glue call may take until its response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Glue client from the environment: credentials, region and endpoint as the AWS SDK reads
/// them ([`csvlake_s3::sdk_config`]), so that `AWS_ENDPOINT_URL_GLUE` (or `AWS_ENDPOINT_URL`)
/// points it elsewhere, with csvlake's HTTPS client. Throttled and failed calls are retried as
/// S3 calls are ([`csvlake_s3::MAX_ATTEMPTS`]), and no call can hang the reducer.
pub async fn client() -> Client {
    let conf = csvlake_s3::sdk_config(None).await;
    let glue = aws_sdk_glue::config::Builder::from(&conf)
        .retry_config(RetryConfig::standard().with_max_attempts(csvlake_s3::MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(csvlake_s3::CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    Client::from_conf(glue.build())
}

/// The Hive type of a column, as Glue records it: `boolean`, `bigint`, `double`,
/// `decimal(p,s)`, `date`, `timestamp` (with or without a zone: Hive's timestamp has none, and
/// the UTC instants read as UTC) and `string` (text, and columns that held only nulls, which
/// are written as text).
pub fn hive_type(t: ColumnType) -> String {
    match t {
        ColumnType::Null | ColumnType::Utf8 => "string".to_owned(),
        ColumnType::Boolean => "boolean".to_owned(),
        ColumnType::Int64 => "bigint".to_owned(),
        ColumnType::Float64 => "double".to_owned(),
        ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        ColumnType::Date32 => "date".to_owned(),
        ColumnType::Timestamp | ColumnType::TimestampUtc => "timestamp".to_owned(),
    }
}

/// The Glue table name of a csvlake table, from its folder below the input root (`sales`,
/// `sales/eu`; empty or [`ROOT_TABLE_FOLDER`] for the root's own table): lowercased, with every
/// character outside `[a-z0-9_]` replaced by `_`. `Sales/EU-2026` becomes `sales_eu_2026` and
/// the root's table `_root`. Two folders may map to the same name (`sales-eu`, `sales_eu`):
/// the caller then names one of them itself.
pub fn glue_table_name(table: &str) -> String {
    let folder = if table.is_empty() { ROOT_TABLE_FOLDER } else { table };
    folder.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The location of a table's outputs of one format: `s3://<bucket>/<out prefix><format>/<table>/`,
/// or `s3://<bucket>/<out prefix><format>/` for the root's table, whose folder holds the other
/// tables' folders too (readers of a Glue table read the files under its location at any depth).
pub fn table_location(bucket: &str, output_prefix: &str, format: Format, table: &str) -> String {
    let folder = if table.is_empty() { String::new() } else { format!("{}/", table.trim_end_matches('/')) };
    format!("s3://{bucket}/{}", csvlake_contract::keys::join(output_prefix, &format!("{}/{folder}", format.as_str())))
}

/// The Glue table name of a format's table: `name` for Parquet, `name_avro` for Avro.
pub fn format_table_name(name: &str, format: Format) -> String {
    match format {
        Format::Parquet => name.to_owned(),
        Format::Avro => format!("{name}{AVRO_TABLE_SUFFIX}"),
    }
}

/// The Glue columns of a schema for one format, as (name, Hive type): the column names for
/// Parquet, the Avro field names (after [`csvlake_engine::sink::avro_schema`] renamed those that
/// are not valid Avro names) for Avro, lowercased as Glue and Hive keep them. Two columns whose
/// names are the same once lowercased cannot both be columns of a Glue table: the error names
/// them.
pub fn glue_columns(schema: &TableSchema, format: Format) -> Result<Vec<(String, String)>, String> {
    let (names, types) = schema.parts();
    let field_names: Vec<String> = match format {
        Format::Parquet => names.clone(),
        Format::Avro => {
            let arrow = arrow_schema(&names, &types);
            match csvlake_engine::sink::avro_schema(&arrow) {
                Some(renamed) => renamed.fields().iter().map(|f| f.name().clone()).collect(),
                None => names.clone(),
            }
        }
    };
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut columns = Vec::with_capacity(names.len());
    for ((original, field), t) in names.iter().zip(&field_names).zip(&types) {
        let lower = field.to_lowercase();
        if let Some(first) = seen.insert(lower.clone(), original) {
            return Err(format!(
                "the columns {first:?} and {original:?} are both {lower:?} in Glue, which lowercases column names"
            ));
        }
        if lower.is_empty() || lower.chars().count() > MAX_NAME_CHARS {
            return Err(format!("the column {original:?} has no name Glue accepts (1 to {MAX_NAME_CHARS} characters)"));
        }
        columns.push((lower, hive_type(*t)));
    }
    Ok(columns)
}

/// What one table registration needs: where, under which name, and what.
#[derive(Clone, Copy, Debug)]
pub struct Registration<'a> {
    /// The Glue database, which must exist.
    pub database: &'a str,
    /// The Glue name of the table ([`glue_table_name`], or one the run gives); lowercased. The
    /// Avro table is this name followed by [`AVRO_TABLE_SUFFIX`].
    pub name: &'a str,
    /// The table's schema.
    pub schema: &'a TableSchema,
    /// The Parquet table's location ([`table_location`]).
    pub parquet_location: &'a str,
    /// The Avro table's location ([`table_location`]).
    pub avro_location: &'a str,
    /// The table's schema version, recorded in [`parameters::SCHEMA_VERSION`]; a change of
    /// version alone does not update a table.
    pub schema_version: u64,
    /// The formats written: one Glue table each.
    pub formats: &'a [Format],
}

/// The TableInput of one format's table.
pub fn table_input(
    name: &str,
    format: Format,
    schema: &TableSchema,
    location: &str,
    schema_version: u64,
) -> Result<TableInput, String> {
    let columns = glue_columns(schema, format)?
        .into_iter()
        .map(|(name, t)| Column::builder().name(name).r#type(t).build().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let (input_format, output_format, serde) = match format {
        Format::Parquet => (hive::PARQUET_INPUT_FORMAT, hive::PARQUET_OUTPUT_FORMAT, hive::PARQUET_SERDE),
        Format::Avro => (hive::AVRO_INPUT_FORMAT, hive::AVRO_OUTPUT_FORMAT, hive::AVRO_SERDE),
    };
    let classification = format.as_str();
    let mut serde_parameters = HashMap::new();
    let mut table_parameters = HashMap::from([
        (parameters::CLASSIFICATION.to_owned(), classification.to_owned()),
        (parameters::TYPE_OF_DATA.to_owned(), "file".to_owned()),
        (parameters::CSVLAKE_VERSION.to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        (parameters::SCHEMA_VERSION.to_owned(), schema_version.to_string()),
        (parameters::SCHEMA_ID.to_owned(), schema.id()),
    ]);
    match format {
        Format::Parquet => {
            serde_parameters.insert(parameters::SERIALIZATION_FORMAT.to_owned(), "1".to_owned());
        }
        Format::Avro => {
            let (names, types) = schema.parts();
            let literal = csvlake_engine::avro::avro_schema_json(&arrow_schema(&names, &types))
                .map_err(|e| format!("the Avro schema: {e}"))?;
            // Hive reads the files with the SerDe's literal; the table's copy is for the tools
            // that look at table properties only.
            serde_parameters.insert(parameters::AVRO_SCHEMA_LITERAL.to_owned(), literal.clone());
            table_parameters.insert(parameters::AVRO_SCHEMA_LITERAL.to_owned(), literal);
        }
    }
    let descriptor = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(input_format)
        .output_format(output_format)
        // The files compress their own pages and blocks; no file is compressed as a whole.
        .compressed(false)
        .number_of_buckets(-1)
        .serde_info(SerDeInfo::builder().serialization_library(serde).set_parameters(Some(serde_parameters)).build())
        .stored_as_sub_directories(false)
        .parameters(parameters::CLASSIFICATION, classification)
        .parameters(parameters::TYPE_OF_DATA, "file")
        .build();
    TableInput::builder()
        .name(name)
        .table_type(TABLE_TYPE)
        .storage_descriptor(descriptor)
        .set_parameters(Some(table_parameters))
        .build()
        .map_err(|e| e.to_string())
}

/// What happened to one Glue table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogAction {
    /// The table did not exist; it was created.
    Created,
    /// The table existed with another definition; it was updated.
    Updated,
    /// The table existed with this definition; nothing was written.
    Unchanged,
}

/// One Glue table of a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOutcome {
    /// Its Glue name.
    pub table: String,
    /// The format of the files it reads.
    pub format: Format,
    /// What happened.
    pub action: CatalogAction,
    /// For an update, what differed: `columns`, `location`, `format`, `serde`, `schema_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// What [`register`] did, for the run's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogOutcome {
    /// The Glue database.
    pub database: String,
    /// One entry per format's table, Parquet first.
    pub tables: Vec<TableOutcome>,
}

/// How many times a table is read again after another writer created or changed it between
/// the read and the write.
const MAX_RACES: usize = 3;

/// Registers a table's Glue tables, one per format written: each is read (GetTable); a missing
/// one is created (CreateTable); one whose columns, location, formats, SerDe or
/// [`parameters::SCHEMA_ID`] differ is updated (UpdateTable, at the version read, keeping the
/// table parameters that csvlake does not set); one that matches is left alone. A table that
/// another writer creates or changes in between is read again.
pub async fn register(client: &Client, reg: &Registration<'_>) -> Result<CatalogOutcome> {
    let name = reg.name.to_lowercase();
    let mut formats: Vec<Format> = reg.formats.to_vec();
    formats.sort();
    formats.dedup();
    let mut tables = Vec::with_capacity(formats.len());
    for format in formats {
        let table = format_table_name(&name, format);
        let fail = |what: String| CatalogError(format!("catalog {}.{table}: {what}", reg.database));
        if table.is_empty() || table.chars().count() > MAX_NAME_CHARS {
            return Err(fail(format!("a Glue table name has 1 to {MAX_NAME_CHARS} characters")));
        }
        let location = match format {
            Format::Parquet => reg.parquet_location,
            Format::Avro => reg.avro_location,
        };
        let input = table_input(&table, format, reg.schema, location, reg.schema_version).map_err(fail)?;
        tables.push(register_one(client, reg.database, &table, format, input).await?);
    }
    Ok(CatalogOutcome { database: reg.database.to_owned(), tables })
}

async fn register_one(
    client: &Client,
    database: &str,
    table: &str,
    format: Format,
    input: TableInput,
) -> Result<TableOutcome> {
    let outcome = |action, changed: Vec<&str>| TableOutcome {
        table: table.to_owned(),
        format,
        action,
        changed: strings(changed),
    };
    let mut race = 0;
    loop {
        let existing = match client.get_table().database_name(database).name(table).send().await {
            Ok(out) => out.table,
            Err(e) if code(&e) == Some("EntityNotFoundException") && is_table_missing(&e) => None,
            Err(e) => return Err(glue_error("GetTable", database, table, e)),
        };
        let Some(existing) = existing else {
            match client.create_table().database_name(database).table_input(input.clone()).send().await {
                Ok(_) => {
                    tracing::info!(database, table, "created the Glue table");
                    return Ok(outcome(CatalogAction::Created, Vec::new()));
                }
                Err(e) if code(&e) == Some("AlreadyExistsException") && race < MAX_RACES => {
                    race += 1;
                    continue;
                }
                Err(e) => return Err(glue_error("CreateTable", database, table, e)),
            }
        };
        let changed = differences(&existing, &input);
        if changed.is_empty() {
            tracing::debug!(database, table, "the Glue table is current");
            return Ok(outcome(CatalogAction::Unchanged, changed));
        }
        let mut update = client.update_table().database_name(database).table_input(kept(&existing, input.clone()));
        if let Some(version) = existing.version_id() {
            update = update.version_id(version);
        }
        match update.send().await {
            Ok(_) => {
                tracing::info!(database, table, changed = ?changed, "updated the Glue table");
                return Ok(outcome(CatalogAction::Updated, changed));
            }
            // Changed or dropped since it was read: read it again.
            Err(e)
                if matches!(code(&e), Some("ConcurrentModificationException" | "EntityNotFoundException"))
                    && race < MAX_RACES =>
            {
                race += 1
            }
            Err(e) => return Err(glue_error("UpdateTable", database, table, e)),
        }
    }
}

fn strings(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}

/// What differs between a table and the definition csvlake would write, of what readers depend
/// on: empty when the table is current.
pub fn differences(existing: &Table, wanted: &TableInput) -> Vec<&'static str> {
    let empty = HashMap::new();
    let have = existing.storage_descriptor();
    let want = wanted.storage_descriptor();
    let columns = |sd: Option<&StorageDescriptor>| -> Vec<(String, Option<String>)> {
        sd.map_or(&[][..], StorageDescriptor::columns)
            .iter()
            .map(|c| (c.name().to_owned(), c.r#type().map(str::to_owned)))
            .collect()
    };
    let serde = |sd: Option<&StorageDescriptor>| {
        let info = sd.and_then(StorageDescriptor::serde_info);
        (
            info.and_then(SerDeInfo::serialization_library).map(str::to_owned),
            info.and_then(SerDeInfo::parameters).unwrap_or(&empty).clone(),
        )
    };
    let mut changed = Vec::new();
    if columns(have) != columns(want) {
        changed.push("columns");
    }
    if have.and_then(StorageDescriptor::location) != want.and_then(StorageDescriptor::location) {
        changed.push("location");
    }
    fn formats(sd: Option<&StorageDescriptor>) -> (Option<&str>, Option<&str>) {
        (sd.and_then(StorageDescriptor::input_format), sd.and_then(StorageDescriptor::output_format))
    }
    if formats(have) != formats(want) {
        changed.push("format");
    }
    if serde(have) != serde(want) {
        changed.push("serde");
    }
    let id = |p: Option<&HashMap<String, String>>| p.and_then(|p| p.get(parameters::SCHEMA_ID)).cloned();
    if id(existing.parameters()) != id(wanted.parameters()) {
        changed.push("schema_id");
    }
    changed
}

/// The update of a table: csvlake's definition, with what others set on the table and csvlake
/// does not (a description, an owner, table parameters) kept.
fn kept(existing: &Table, mut input: TableInput) -> TableInput {
    let mut params = existing.parameters().cloned().unwrap_or_default();
    params.extend(input.parameters.take().unwrap_or_default());
    input.parameters = Some(params);
    if input.description.is_none() {
        input.description = existing.description().map(str::to_owned);
    }
    if input.owner.is_none() {
        input.owner = existing.owner().map(str::to_owned);
    }
    input
}

fn code<E: ProvideErrorMetadata>(e: &SdkError<E, aws_sdk_glue::config::http::HttpResponse>) -> Option<&str> {
    csvlake_s3::error_code(e)
}

/// Whether an EntityNotFoundException of GetTable is about the table: Glue answers the same
/// code for a missing database ("Database … not found."), which fails at once rather than
/// through a CreateTable that would fail the same way.
fn is_table_missing<E: ProvideErrorMetadata>(e: &SdkError<E, aws_sdk_glue::config::http::HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(ctx) => {
            !ctx.err().message().unwrap_or_default().trim_start().to_ascii_lowercase().starts_with("database")
        }
        _ => false,
    }
}

/// Converts an SDK error into a one-line [`CatalogError`] naming the database, the table, the
/// operation and what Glue said (or what to fix); the SDK's full report goes to the debug log.
fn glue_error<E>(
    op: &str,
    database: &str,
    table: &str,
    e: SdkError<E, aws_sdk_glue::config::http::HttpResponse>,
) -> CatalogError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tracing::debug!(op, database, table, error = %DisplayErrorContext(&e), "Glue request failed");
    let said = csvlake_s3::what_was_said(&e);
    CatalogError(format!("catalog {database}.{table}: {op}: {said}"))
}

/// Registers every table of a run that has a schema in the run's catalog database: one Glue table
/// per format written. The root's own table is skipped when the run has other tables, since its
/// folder holds theirs. Stops at the first failure, which the report names.
pub async fn register_run(
    client: &Client,
    database: &str,
    plan: &csvlake_contract::run::Plan,
    tables: &[csvlake_contract::run::TableReport],
) -> csvlake_contract::run::CatalogReport {
    use csvlake_contract::run::{CatalogReport, CatalogTable};
    let out = &plan.job.output;
    let mut report = CatalogReport { database: database.to_owned(), ..CatalogReport::default() };
    let others = tables.iter().any(|t| !t.table.is_empty());
    let mut named: HashMap<String, &str> = HashMap::new();
    for t in tables {
        let Some(schema) = &t.schema else { continue };
        let name = if t.table.is_empty() { glue_table_name(&t.name) } else { glue_table_name(&t.table) };
        if let Some(first) = named.insert(name.clone(), &t.table) {
            report.error = Some(format!(
                "catalog {database}.{name}: the tables {first:?} and {:?} map to the same Glue name; rename a folder",
                t.table
            ));
            break;
        }
        if t.table.is_empty() && others {
            for &format in &plan.job.formats {
                let name = format_table_name(&name, format);
                report.tables.push(CatalogTable { table: t.table.clone(), name, format, action: "skipped".into() });
            }
            continue;
        }
        let parquet_location = table_location(&out.bucket, &out.prefix, Format::Parquet, &t.table);
        let avro_location = table_location(&out.bucket, &out.prefix, Format::Avro, &t.table);
        let reg = Registration {
            database,
            name: &name,
            schema,
            parquet_location: &parquet_location,
            avro_location: &avro_location,
            schema_version: t.schema_version,
            formats: &plan.job.formats,
        };
        match register(client, &reg).await {
            Ok(outcome) => report.tables.extend(outcome.tables.into_iter().map(|o| CatalogTable {
                table: t.table.clone(),
                name: o.table,
                format: o.format,
                action:
                    serde_json::to_value(o.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            })),
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &[(&str, ColumnType)]) -> TableSchema {
        TableSchema::new(columns.iter().map(|(n, t)| ((*n).to_owned(), *t)))
    }

    #[test]
    fn every_column_type_has_its_hive_type() {
        let cases = [
            (ColumnType::Null, "string"),
            (ColumnType::Boolean, "boolean"),
            (ColumnType::Int64, "bigint"),
            (ColumnType::Float64, "double"),
            (ColumnType::Decimal { precision: 12, scale: 2 }, "decimal(12,2)"),
            (ColumnType::Decimal { precision: 38, scale: 0 }, "decimal(38,0)"),
            (ColumnType::Date32, "date"),
            (ColumnType::Timestamp, "timestamp"),
            (ColumnType::TimestampUtc, "timestamp"),
            (ColumnType::Utf8, "string"),
        ];
        for (t, hive) in cases {
            assert_eq!(hive_type(t), hive, "{t}");
        }
    }

    #[test]
    fn table_names_are_lowercase_with_underscores() {
        assert_eq!(glue_table_name("sales"), "sales");
        assert_eq!(glue_table_name("Sales/EU-2026"), "sales_eu_2026");
        assert_eq!(glue_table_name("ventes é.x"), "ventes___x");
        assert_eq!(glue_table_name(""), "_root");
        assert_eq!(glue_table_name(ROOT_TABLE_FOLDER), "_root");
        assert_eq!(format_table_name("sales", Format::Parquet), "sales");
        assert_eq!(format_table_name("sales", Format::Avro), "sales_avro");
    }

    #[test]
    fn locations_are_the_tables_output_folders() {
        assert_eq!(
            table_location("lake", "converted/", Format::Parquet, "sales/eu"),
            "s3://lake/converted/parquet/sales/eu/"
        );
        assert_eq!(table_location("lake", "converted", Format::Avro, "sales"), "s3://lake/converted/avro/sales/");
        assert_eq!(table_location("lake", "", Format::Parquet, ""), "s3://lake/parquet/");
    }

    #[test]
    fn columns_are_lowercased_and_avro_columns_are_the_avro_names() {
        let s = schema(&[("Id", ColumnType::Int64), ("amount-EUR", ColumnType::Decimal { precision: 9, scale: 2 })]);
        assert_eq!(
            glue_columns(&s, Format::Parquet).unwrap(),
            [("id".to_owned(), "bigint".to_owned()), ("amount-eur".to_owned(), "decimal(9,2)".to_owned())]
        );
        assert_eq!(
            glue_columns(&s, Format::Avro).unwrap(),
            [("id".to_owned(), "bigint".to_owned()), ("amount_eur".to_owned(), "decimal(9,2)".to_owned())]
        );
    }

    #[test]
    fn columns_that_collide_once_lowercased_are_named() {
        let s = schema(&[("ID", ColumnType::Int64), ("x", ColumnType::Utf8), ("id", ColumnType::Utf8)]);
        let e = glue_columns(&s, Format::Parquet).unwrap_err();
        assert_eq!(e, r#"the columns "ID" and "id" are both "id" in Glue, which lowercases column names"#);
        // Valid in Parquet, but the Avro names collide: `a-b` becomes `a_b_2` beside `A_B_2`.
        let s = schema(&[("a_b", ColumnType::Utf8), ("A_B_2", ColumnType::Utf8), ("a-b", ColumnType::Utf8)]);
        assert!(glue_columns(&s, Format::Parquet).is_ok());
        let e = glue_columns(&s, Format::Avro).unwrap_err();
        assert!(e.contains(r#""A_B_2" and "a-b""#), "{e}");
    }

    fn sample() -> TableSchema {
        schema(&[
            ("id", ColumnType::Int64),
            ("Name", ColumnType::Utf8),
            ("amount-eur", ColumnType::Decimal { precision: 12, scale: 2 }),
        ])
    }

    #[test]
    fn the_parquet_table_input_is_hives_parquet_table() {
        let s = sample();
        let t = table_input("sales", Format::Parquet, &s, "s3://lake/out/parquet/sales/", 3).unwrap();
        assert_eq!((t.name(), t.table_type()), ("sales", Some(TABLE_TYPE)));
        let p = t.parameters().unwrap();
        assert_eq!(p[parameters::CLASSIFICATION], "parquet");
        assert_eq!(p[parameters::CSVLAKE_VERSION], env!("CARGO_PKG_VERSION"));
        assert_eq!(p[parameters::SCHEMA_VERSION], "3");
        assert_eq!(p[parameters::SCHEMA_ID], s.id());
        assert!(!p.contains_key(parameters::AVRO_SCHEMA_LITERAL));
        let sd = t.storage_descriptor().unwrap();
        let columns: Vec<(&str, Option<&str>)> = sd.columns().iter().map(|c| (c.name(), c.r#type())).collect();
        assert_eq!(columns, [("id", Some("bigint")), ("name", Some("string")), ("amount-eur", Some("decimal(12,2)"))]);
        assert_eq!(sd.location(), Some("s3://lake/out/parquet/sales/"));
        assert_eq!(sd.input_format(), Some(hive::PARQUET_INPUT_FORMAT));
        assert_eq!(sd.output_format(), Some(hive::PARQUET_OUTPUT_FORMAT));
        let serde = sd.serde_info().unwrap();
        assert_eq!(serde.serialization_library(), Some(hive::PARQUET_SERDE));
        assert_eq!(serde.parameters().unwrap(), &HashMap::from([("serialization.format".to_owned(), "1".to_owned())]));
        assert_eq!((sd.compressed(), sd.number_of_buckets(), sd.stored_as_sub_directories()), (false, -1, false));
    }

    #[test]
    fn the_avro_table_input_carries_the_files_schema() {
        let s = sample();
        let t = table_input("sales_avro", Format::Avro, &s, "s3://lake/out/avro/sales/", 1).unwrap();
        let (names, types) = s.parts();
        let json = csvlake_engine::avro::avro_schema_json(&arrow_schema(&names, &types)).unwrap();
        let p = t.parameters().unwrap();
        assert_eq!(p[parameters::CLASSIFICATION], "avro");
        assert_eq!(p[parameters::AVRO_SCHEMA_LITERAL], json);
        let sd = t.storage_descriptor().unwrap();
        let columns: Vec<&str> = sd.columns().iter().map(Column::name).collect();
        assert_eq!(columns, ["id", "name", "amount_eur"]);
        assert_eq!(sd.input_format(), Some(hive::AVRO_INPUT_FORMAT));
        assert_eq!(sd.output_format(), Some(hive::AVRO_OUTPUT_FORMAT));
        let serde = sd.serde_info().unwrap();
        assert_eq!(serde.serialization_library(), Some(hive::AVRO_SERDE));
        assert_eq!(serde.parameters().unwrap()[parameters::AVRO_SCHEMA_LITERAL], json);
    }

    /// A table as Glue would return it for an input.
    fn as_table(input: &TableInput) -> Table {
        Table::builder()
            .name(input.name())
            .set_storage_descriptor(input.storage_descriptor().cloned())
            .set_parameters(input.parameters().cloned())
            .version_id("1")
            .build()
            .unwrap()
    }

    #[test]
    fn only_what_readers_depend_on_makes_an_update() {
        let s = sample();
        let input =
            |s: &TableSchema, location: &str, version| table_input("t", Format::Avro, s, location, version).unwrap();
        let current = as_table(&input(&s, "s3://l/avro/t/", 1));
        assert!(differences(&current, &input(&s, "s3://l/avro/t/", 1)).is_empty());
        assert!(differences(&current, &input(&s, "s3://l/avro/t/", 2)).is_empty(), "a version alone changes nothing");
        assert_eq!(differences(&current, &input(&s, "s3://l/avro/u/", 1)), ["location"]);
        let mut wider = s.clone();
        wider.columns[0].column_type = ColumnType::Decimal { precision: 20, scale: 0 };
        assert_eq!(differences(&current, &input(&wider, "s3://l/avro/t/", 2)), ["columns", "serde", "schema_id"]);
        let parquet = table_input("t", Format::Parquet, &s, "s3://l/avro/t/", 1).unwrap();
        assert_eq!(differences(&current, &parquet), ["columns", "format", "serde"]);
    }

    #[test]
    fn an_update_keeps_what_others_set() {
        let s = sample();
        let input = table_input("t", Format::Parquet, &s, "s3://l/parquet/t/", 1).unwrap();
        let mut params = input.parameters().cloned().unwrap();
        params.insert("comment".into(), "owned by finance".into());
        params.insert(parameters::SCHEMA_VERSION.into(), "0".into());
        let existing = Table::builder().name("t").description("sales").set_parameters(Some(params)).build().unwrap();
        let updated = kept(&existing, input);
        let p = updated.parameters().unwrap();
        assert_eq!((p["comment"].as_str(), p[parameters::SCHEMA_VERSION].as_str()), ("owned by finance", "1"));
        assert_eq!(updated.description(), Some("sales"));
    }

    #[test]
    fn catalog_errors_are_the_reducers_catalog_error() {
        let e = BatchError::from(CatalogError("catalog lake.sales: GetTable: AccessDeniedException".into()));
        assert_eq!(e.error_type(), csvlake_contract::errors::CATALOG_ERROR);
        assert_eq!(e.to_string(), "catalog lake.sales: GetTable: AccessDeniedException");
    }
}
