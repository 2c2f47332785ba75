//! The `Join` phase, between the `Convert` and `Conform` Maps: each table's schema after the run,
//! and the files to convert again so that every file of the table has it.
//!
//! A table's schema is the join of its stored schema with the schemas of the files the run
//! converted (the union of the columns in order of first appearance, each with the least type
//! that holds every file's). The files to conform are those whose outputs have another schema:
//! - the run's own files that were narrower than the join (the `Convert` Map wrote each file
//!   with the stored schema as its floor, so these are the files read before another file of the
//!   run widened the table);
//! - earlier files of the table, from its index, whose schema is not the join: when the run
//!   widened the table, every earlier file; otherwise those a failed conform left behind.
//!
//! Earlier files are bounded by `conform_limit`. When a widening would need more, none of them is
//! converted again: the run's files that would widen the table fail as
//! `bad_input.schema_drift`, their outputs are removed, and the table keeps its schema. The run
//! then fails with `csvlake.ConformLimit` once it is reported. Without a widening, at most
//! `conform_limit` of them are conformed per run, and the report counts the rest as
//! `unconformed`.
//!
//! In the `Reduce` phase, [`Conformed`] carries the `Conform` Map's results into the tally: a
//! conformed file of the run counts once, with its new outputs; an earlier file conformed only
//! updates its table's index.

use std::collections::{HashMap, HashSet};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_contract::ErrorNames;
use csvlake_contract::payload::{FileRef, FileResult, FileStatus};
use csvlake_contract::run::{
    ConformBatch, ConformPlan, ObjectLocation, Plan, ReduceRequest, ResultsLocation, SchemaPolicy, names, run_key,
};
use csvlake_contract::tables::{self, Orphan, TableRun, TableSchema};
use csvlake_engine::{BadInputKind, Error, Result};
use csvlake_s3::sdk_error;
use csvlake_s3::tables::read_index;

use crate::report::{MapResults, Sink, walk};

/// Handles the `Join` phase: plans the `Conform` Map, and returns where its manifest is.
pub async fn join(client: &Client, request: &ReduceRequest) -> Result<ConformPlan> {
    let plan = &request.plan;
    let out = &plan.job.output;
    let at = |name: &str| ObjectLocation { bucket: out.bucket.clone(), key: run_key(&out.prefix, &plan.run_id, name) };
    let mut answer = ConformPlan {
        batches: 0,
        files: 0,
        earlier: 0,
        manifest: at(names::CONFORM_MANIFEST),
        results: ResultsLocation {
            bucket: out.bucket.clone(),
            prefix: run_key(&out.prefix, &plan.run_id, names::CONFORM_RESULTS),
        },
        drift: None,
        limited: None,
    };
    if plan.job.schema_policy == SchemaPolicy::PerFile {
        return Ok(answer);
    }
    let runs = crate::tables::table_runs(client, plan).await?;
    if runs.is_empty() {
        return Ok(answer);
    }
    let mut converted = walk(client, &MapResults::convert(request), RunFiles::new(plan)).await?.by_table;
    let orphans: HashSet<String> = match &plan.orphans {
        Some(at) => crate::tables::read_lines::<Orphan>(client, at).await?.into_iter().map(|o| o.entry.key).collect(),
        None => HashSet::new(),
    };

    let mut schemas = Schemas::default();
    let mut manifest: Vec<ConformBatch> = Vec::new();
    let mut drift: Vec<FileResult> = Vec::new();
    let mut limited: Vec<String> = Vec::new();
    for run in runs {
        let mut mine = converted.remove(&run.table).unwrap_or_default();
        mine.sort_by(|a, b| a.result.key.cmp(&b.result.key));
        let ids: Vec<&str> = mine.iter().map(|f| f.schema.as_str()).collect();
        let (stored, joined) = schemas.join(client, plan, &run, &ids).await?;
        let Some(mut joined) = joined else { continue };
        let mut earlier = earlier_files(client, plan, &run, &joined.id(), &mine, &orphans).await?;
        let widened = stored.as_ref().filter(|s| s.id() != joined.id());
        if let Some(stored) = widened.filter(|_| earlier.count > plan.conform_limit) {
            // Too many to convert again: the table keeps its schema, and the files that would
            // widen it fail. (Without a widening, the earlier files that another schema left,
            // after a failed conform or under per_file, are conformed conform_limit at a time.)
            let message = format!(
                "table {:?}: the run's files would widen its schema ({}), and every file of the table would then \
                 be converted again: {} earlier files, over conform_limit {}. The files that would widen it \
                 failed and the table keeps its schema; give csv.schema (or fix those files), set schema_policy \
                 fail, or raise conform_limit",
                run.name,
                stored.widening(&joined).join(", "),
                earlier.count,
                plan.conform_limit
            );
            let mut kept = Vec::new();
            for file in mine {
                let schema = schemas.get(client, plan, &run.table, &file.schema).await?;
                if stored.covers(&schema) {
                    kept.push(file);
                    continue;
                }
                for output in &file.result.outputs {
                    client
                        .delete_object()
                        .bucket(&out.bucket)
                        .key(&output.key)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DeleteObject", &out.bucket, &output.key, e))?;
                }
                let error = Error::bad(
                    BadInputKind::SchemaDrift,
                    format!(
                        "the file would widen its table's schema ({}), and conforming the table's earlier files \
                         would exceed conform_limit; its outputs were removed",
                        stored.widening(&schema).join(", ")
                    ),
                );
                let r = &file.result;
                drift.push(FileResult::failed(&r.key, r.bytes_in, r.millis, error.to_file_error()));
            }
            tracing::info!(table = %run.table, earlier = earlier.count, limit = plan.conform_limit, "a widening over conform_limit");
            limited.push(message);
            mine = kept;
            joined = stored.clone();
            earlier = Earlier::default();
        }
        let id = joined.id();
        if stored.as_ref().is_none_or(|s| s.id() != id) {
            // The converters read it from the table's state.
            schemas.store(client, plan, &run.table, &joined).await?;
        }
        let files: Vec<FileRef> = mine
            .into_iter()
            .filter(|f| f.schema != id)
            .map(|f| FileRef { key: f.result.key, size: f.result.bytes_in, etag: f.result.etag })
            .chain(earlier.files)
            .collect();
        answer.files += files.len() as u64;
        answer.earlier += earlier.count.min(plan.conform_limit);
        for chunk in pack(files, plan.batch.max_files, plan.batch.max_bytes) {
            manifest.push(ConformBatch { batch: manifest.len() as u64, files: chunk, schema: id.clone() });
        }
    }
    answer.batches = manifest.len() as u64;
    if !manifest.is_empty() {
        put(client, &answer.manifest, serde_json::to_vec(&manifest)?).await?;
    }
    if !drift.is_empty() {
        let loc = at(names::CONFORM_DRIFT);
        let mut body = Vec::new();
        for r in &drift {
            serde_json::to_writer(&mut body, r)?;
            body.push(b'\n');
        }
        put(client, &loc, body).await?;
        answer.drift = Some(loc);
    }
    if !limited.is_empty() {
        answer.limited = Some(limited.join("; "));
    }
    tracing::info!(
        run_id = %plan.run_id,
        batches = answer.batches,
        files = answer.files,
        earlier = answer.earlier,
        "planned the conform"
    );
    Ok(answer)
}

async fn put(client: &Client, at: &ObjectLocation, body: Vec<u8>) -> Result<()> {
    client
        .put_object()
        .bucket(&at.bucket)
        .key(&at.key)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("PutObject", &at.bucket, &at.key, e))?;
    Ok(())
}

/// Files in order, cut into batches of at most `max_files` files and `max_bytes` bytes (a file
/// larger than that is a batch of its own).
fn pack(files: Vec<FileRef>, max_files: usize, max_bytes: u64) -> Vec<Vec<FileRef>> {
    let mut batches: Vec<Vec<FileRef>> = Vec::new();
    let mut bytes = 0u64;
    for file in files {
        let full = batches.last().is_none_or(|b| {
            b.len() >= max_files.max(1) || (!b.is_empty() && bytes.saturating_add(file.size) > max_bytes)
        });
        if full {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes = bytes.saturating_add(file.size);
        batches.last_mut().expect("a batch was pushed").push(file);
    }
    batches
}

/// A file the run converted, with the id of the schema it was written with.
struct RunFile {
    result: FileResult,
    schema: String,
}

/// The run's converted files, by table.
struct RunFiles {
    input_prefix: String,
    depth: u32,
    by_table: HashMap<String, Vec<RunFile>>,
}

impl RunFiles {
    fn new(plan: &Plan) -> Self {
        Self { input_prefix: plan.job.input.prefix.clone(), depth: plan.job.table_depth, by_table: HashMap::new() }
    }
}

impl Sink for RunFiles {
    fn add(&mut self, result: &FileResult) -> Result<()> {
        let (FileStatus::Converted, Some(schema)) = (result.status, &result.schema) else { return Ok(()) };
        let table = tables::table_of(&self.input_prefix, &result.key, self.depth);
        let file = RunFile { result: FileResult { dialect: None, ..result.clone() }, schema: schema.clone() };
        self.by_table.entry(table.to_owned()).or_default().push(file);
        Ok(())
    }
}

/// The earlier files of a table to conform: their count, and the first `conform_limit` + 1.
#[derive(Default)]
struct Earlier {
    count: u64,
    files: Vec<FileRef>,
}

/// The entries of the table's index whose schema is not `joined`, leaving out the run's own
/// files, orphaned inputs and entries of unknown schema.
async fn earlier_files(
    client: &Client,
    plan: &Plan,
    run: &TableRun,
    joined: &str,
    mine: &[RunFile],
    orphans: &HashSet<String>,
) -> Result<Earlier> {
    let mut earlier = Earlier::default();
    let Some(current) = &run.current else { return Ok(earlier) };
    let mine: HashSet<&str> = mine.iter().map(|f| f.result.key.as_str()).collect();
    let mut index = read_index(client, &plan.job.output.bucket, &current.index).await?;
    while let Some(entry) = index.next_entry()? {
        let other = entry.schema.as_deref().is_some_and(|s| s != joined);
        if !other || mine.contains(entry.key.as_str()) || orphans.contains(&entry.key) {
            continue;
        }
        earlier.count += 1;
        if earlier.count <= plan.conform_limit {
            earlier.files.push(FileRef { key: entry.key, size: entry.size, etag: Some(entry.etag) });
        }
    }
    Ok(earlier)
}

/// The schemas read or stored, by table and id.
#[derive(Default)]
pub(crate) struct Schemas {
    known: HashMap<(String, String), TableSchema>,
}

impl Schemas {
    /// The table's stored schema, and its join with the schemas `ids` in their order (none
    /// when the table has no schema and `ids` is empty).
    pub(crate) async fn join(
        &mut self,
        client: &Client,
        plan: &Plan,
        run: &TableRun,
        ids: &[&str],
    ) -> Result<(Option<TableSchema>, Option<TableSchema>)> {
        let stored = match run.current.as_ref().and_then(|c| c.schema.as_deref()) {
            Some(id) => Some(self.get(client, plan, &run.table, id).await?),
            None => None,
        };
        let mut joined = stored.clone();
        for id in ids {
            let schema = self.get(client, plan, &run.table, id).await?;
            joined = Some(match joined {
                Some(j) => j.join(&schema),
                None => schema,
            });
        }
        Ok((stored, joined))
    }

    pub(crate) async fn get(&mut self, client: &Client, plan: &Plan, table: &str, id: &str) -> Result<TableSchema> {
        let k = (table.to_owned(), id.to_owned());
        if let Some(s) = self.known.get(&k) {
            return Ok(s.clone());
        }
        let out = &plan.job.output;
        let key = tables::schema_key(&out.prefix, table, id);
        let schema: TableSchema = csvlake_s3::get_json(client, &out.bucket, &key, "a schema").await?;
        self.known.insert(k, schema.clone());
        Ok(schema)
    }

    pub(crate) async fn store(
        &mut self,
        client: &Client,
        plan: &Plan,
        table: &str,
        schema: &TableSchema,
    ) -> Result<()> {
        let out = &plan.job.output;
        let id = schema.id();
        let at = ObjectLocation { bucket: out.bucket.clone(), key: tables::schema_key(&out.prefix, table, &id) };
        put(client, &at, schema.to_json()).await?;
        self.known.insert((table.to_owned(), id), schema.clone());
        Ok(())
    }
}

/// What the `Join` phase and the `Conform` Map decided of files, for the `Reduce` phase's tally.
#[derive(Default)]
pub struct Conformed {
    input_prefix: String,
    depth: u32,
    /// The `Conform` Map's results, by key.
    results: HashMap<String, FileResult>,
    /// The results that replace those of files that would have widened a limited table.
    drift: HashMap<String, FileResult>,
    /// Files conformed, by table.
    pub counts: HashMap<String, u64>,
}

impl Conformed {
    /// Reads the drift results of the `Join` phase and the results of the `Conform` Map.
    pub async fn read(client: &Client, request: &ReduceRequest) -> Result<Self> {
        let plan = &request.plan;
        let mut conformed =
            Self { input_prefix: plan.job.input.prefix.clone(), depth: plan.job.table_depth, ..Self::default() };
        if let Some(at) = request.join.as_ref().and_then(|j| j.drift.as_ref()) {
            for r in crate::tables::read_lines::<FileResult>(client, at).await? {
                conformed.drift.insert(r.key.clone(), r);
            }
        }
        if let Some(map) = MapResults::conform(request) {
            conformed.results = walk(client, &map, Collect::default()).await?.0;
        }
        Ok(conformed)
    }

    /// The result that counts for a file the `Convert` Map reported as `result`: its drift
    /// failure, or its conformed outputs (with the time of both conversions), or none (the
    /// result stands).
    pub fn take(&mut self, result: &FileResult) -> Option<FileResult> {
        if let Some(failed) = self.drift.remove(&result.key) {
            return Some(failed);
        }
        let again = self.results.remove(&result.key)?;
        match (result.status, again.status) {
            (FileStatus::Converted, FileStatus::Converted) => {
                self.count(&result.key);
                Some(FileResult { millis: result.millis + again.millis, dialect: result.dialect.clone(), ..again })
            }
            (_, FileStatus::Failed) => {
                let message = again.error.as_ref().map_or("", |e| e.message.as_str());
                tracing::warn!(key = %result.key, error = message, "the file could not be conformed; its outputs keep their schema");
                None
            }
            _ => None,
        }
    }

    fn count(&mut self, key: &str) {
        let table = tables::table_of(&self.input_prefix, key, self.depth);
        *self.counts.entry(table.to_owned()).or_default() += 1;
    }

    /// The earlier files conformed (none of the run's own): their results update their
    /// tables' indexes only.
    pub fn earlier(&mut self) -> Vec<FileResult> {
        let mut earlier = Vec::new();
        for (key, r) in std::mem::take(&mut self.results) {
            if r.status == FileStatus::Converted {
                self.count(&key);
                earlier.push(r);
            } else {
                tracing::warn!(key = %key, "an earlier file could not be conformed; the next run tries again");
            }
        }
        earlier.sort_by(|a, b| a.key.cmp(&b.key));
        earlier
    }
}

/// A Map's results by key.
#[derive(Default)]
struct Collect(HashMap<String, FileResult>);

impl Sink for Collect {
    fn add(&mut self, result: &FileResult) -> Result<()> {
        self.0.insert(result.key.clone(), result.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(sizes: &[u64]) -> Vec<FileRef> {
        sizes.iter().enumerate().map(|(i, s)| FileRef { key: format!("k{i}"), size: *s, etag: None }).collect()
    }

    fn shape(batches: &[Vec<FileRef>]) -> Vec<Vec<u64>> {
        batches.iter().map(|b| b.iter().map(|f| f.size).collect()).collect()
    }

    #[test]
    fn conform_batches_keep_the_runs_bounds_and_a_large_file_alone() {
        assert_eq!(shape(&pack(files(&[1, 1, 1, 1, 1]), 2, 100)), [vec![1, 1], vec![1, 1], vec![1]]);
        assert_eq!(shape(&pack(files(&[60, 50, 10, 500, 5]), 10, 100)), [vec![60], vec![50, 10], vec![500], vec![5]]);
        assert!(pack(Vec::new(), 2, 100).is_empty());
        // In order: the keys stay sorted within and across batches.
        let keys: Vec<String> = pack(files(&[1, 1, 1]), 2, 100).concat().into_iter().map(|f| f.key).collect();
        assert_eq!(keys, ["k0", "k1", "k2"]);
    }
}
