//! The tables of a run, once its files are tallied: each table's next index generation (the
//! previous one, with this run's converted files in place of their old entries and, with
//! `delete_orphans`, without the inputs that are gone), its `current.json`, the removal of
//! orphaned outputs, and the release of its lease.
//!
//! The run's new entries are spooled to a temporary file as results stream in; memory holds
//! their keys and offsets only, sorted per table before the merge with the previous generation.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use csvlake_contract::payload::{FileResult, FileStatus};
use csvlake_contract::run::{ObjectLocation, OrphanedFile, Plan, TableReport};
use csvlake_contract::tables::{self, Current, IndexEntry, Lease, Orphan, SchemaVersion, TableRun, TableSchema};
use csvlake_engine::{Error, Result};
use csvlake_s3::sdk_error;
use csvlake_s3::tables::{IndexWriter, Precondition, put_json, read_current, read_index, release_lease};
use csvlake_s3::upload::abort_in_progress;

/// Per table, where its new entries lie in the spool (offset, length), in key order.
type Spooled = HashMap<String, Vec<(u64, u32)>>;

/// The index entries of the files a run converted, spooled.
pub struct NewEntries {
    input_prefix: String,
    depth: u32,
    fingerprint: String,
    spool: BufWriter<File>,
    offset: u64,
    tables: HashMap<String, u32>,
    /// Per entry: its table, key, and place in the spool.
    items: Vec<(u32, Box<str>, u64, u32)>,
}

impl NewEntries {
    /// Entries of the run of `plan`.
    pub fn new(plan: &Plan) -> io::Result<Self> {
        Ok(Self {
            input_prefix: plan.job.input.prefix.clone(),
            depth: plan.job.table_depth,
            fingerprint: plan.job.fingerprint(),
            spool: BufWriter::new(tempfile::tempfile()?),
            offset: 0,
            tables: HashMap::new(),
            items: Vec::new(),
        })
    }

    /// Records a converted file.
    pub fn add(&mut self, result: &FileResult) -> Result<()> {
        let (FileStatus::Converted, Some(etag)) = (result.status, &result.etag) else { return Ok(()) };
        let entry = IndexEntry {
            key: result.key.clone(),
            etag: etag.clone(),
            size: result.bytes_in,
            fingerprint: self.fingerprint.clone(),
            outputs: result.outputs.clone(),
            schema: result.schema.clone(),
        };
        let table = tables::table_of(&self.input_prefix, &result.key, self.depth);
        let next = u32::try_from(self.tables.len()).unwrap_or(u32::MAX);
        let t = *self.tables.entry(table.to_owned()).or_insert(next);
        let line = serde_json::to_vec(&entry)?;
        self.spool.write_all(&line).map_err(|e| Error::Internal(format!("spooling index entries: {e}")))?;
        let len = u32::try_from(line.len()).map_err(|_| Error::Internal("an index entry over 4 GiB".into()))?;
        self.items.push((t, entry.key.into_boxed_str(), self.offset, len));
        self.offset += u64::from(len);
        Ok(())
    }

    /// The entries of each table, sorted by key (a later result for a key replaces an earlier).
    fn into_tables(self) -> Result<(File, Spooled)> {
        let file = self.spool.into_inner().map_err(|e| Error::Internal(format!("spooling index entries: {e}")))?;
        let names: HashMap<u32, String> = self.tables.into_iter().map(|(k, v)| (v, k)).collect();
        let mut items = self.items;
        // Stable: of two results for one key, the later stays last and wins below.
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut out: Spooled = HashMap::new();
        let mut previous: Option<(u32, Box<str>)> = None;
        for (t, key, offset, len) in items {
            let list = out.entry(names.get(&t).cloned().unwrap_or_default()).or_default();
            if previous.as_ref().is_some_and(|(pt, pk)| *pt == t && *pk == key) {
                list.pop();
            }
            list.push((offset, len));
            previous = Some((t, key));
        }
        Ok((file, out))
    }
}

fn read_entry(file: &mut File, (offset, len): (u64, u32)) -> Result<IndexEntry> {
    let mut buf = vec![0; len as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| Error::Internal(format!("reading spooled index entries: {e}")))?;
    Ok(serde_json::from_slice(&buf)?)
}

/// Reads the JSON lines object at `at`.
pub(crate) async fn read_lines<T: serde::de::DeserializeOwned>(client: &Client, at: &ObjectLocation) -> Result<Vec<T>> {
    let body = csvlake_s3::get_bytes(client, &at.bucket, &at.key).await?;
    BufReader::new(&body[..])
        .split(b'\n')
        .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
        .map(|l| {
            let l = l.map_err(|e| Error::Internal(e.to_string()))?;
            serde_json::from_slice(&l).map_err(|e| Error::Internal(format!("{} does not parse: {e}", at.uri())))
        })
        .collect()
}

/// The tables the plan leased.
pub async fn table_runs(client: &Client, plan: &Plan) -> Result<Vec<TableRun>> {
    match &plan.tables {
        Some(at) => read_lines(client, at).await,
        None => Ok(Vec::new()),
    }
}

/// Releases every lease of the run (the Catch path: the run could not report), after aborting
/// the uploads left under its tables.
pub async fn release_all(client: &Client, plan: &Plan) -> Result<()> {
    let out = &plan.job.output;
    for run in table_runs(client, plan).await? {
        if let Err(e) = abort_uploads(client, plan, &run.table).await {
            tracing::warn!(table = %run.table, error = %e, "could not abort the run's uploads; the next run of the table does");
        }
        release_lease(client, &out.bucket, &out.prefix, &run.table, &plan.run_id).await?;
    }
    Ok(())
}

/// Aborts the multipart uploads still in progress under a table's outputs while the run holds
/// its lease: no other run writes there, and the planner aborted those of earlier runs, so they
/// are this run's, and nothing will complete them. They are the uploads whose
/// CreateMultipartUpload took effect but whose answer was lost (the request was sent again, and
/// the converter only knew the second upload), and those of a converter that died.
pub async fn abort_uploads(client: &Client, plan: &Plan, table: &str) -> Result<u64> {
    let out = &plan.job.output;
    let mut aborted = 0;
    for (prefix, delimiter) in tables::output_prefixes(&out.prefix, table) {
        aborted += abort_in_progress(client, &out.bucket, &prefix, delimiter).await?;
    }
    if aborted > 0 {
        tracing::info!(table, aborted, "aborted multipart uploads the run left in progress");
    }
    Ok(aborted)
}

/// Writes each table's next index generation, removes orphaned outputs when asked, and
/// releases the leases. Returns the tables' reports and the orphaned files.
pub async fn update(
    client: &Client,
    plan: &Plan,
    entries: NewEntries,
    conformed: &HashMap<String, u64>,
) -> Result<(Vec<TableReport>, Vec<OrphanedFile>)> {
    let out = &plan.job.output;
    let runs = table_runs(client, plan).await?;
    let orphans: Vec<Orphan> = match &plan.orphans {
        Some(at) => read_lines(client, at).await?,
        None => Vec::new(),
    };
    let (mut spool, mut by_table) = entries.into_tables()?;

    // Orphaned outputs are removed first: an index that still lists them is harmless (the next
    // run removes them again), one that forgot them while they exist is not.
    let mut orphaned = Vec::new();
    let mut removed: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    for o in &orphans {
        let keys: Vec<String> = o.entry.outputs.iter().map(|x| x.key.clone()).collect();
        if plan.delete_orphans {
            for key in &keys {
                client
                    .delete_object()
                    .bucket(&out.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteObject", &out.bucket, key, e))?;
            }
            removed.entry(o.table.as_str()).or_default().insert(o.entry.key.as_str());
        }
        orphaned.push(OrphanedFile { key: o.entry.key.clone(), outputs: keys, deleted: plan.delete_orphans });
    }

    let mut reports = Vec::new();
    for run in runs {
        let new = by_table.remove(&run.table).unwrap_or_default();
        let gone = removed.get(run.table.as_str());
        let unchanged = new.is_empty() && gone.is_none_or(|g| g.is_empty());
        let aborted_now = abort_uploads(client, plan, &run.table).await?;
        let mut report = TableReport {
            table: run.table.clone(),
            name: run.name.clone(),
            generation: None,
            entries: run.current.as_ref().map_or(0, |c| c.entries),
            taken_over_from: run.taken_over_from.clone(),
            aborted_uploads: run.aborted_uploads + aborted_now,
            schema: None,
            schema_version: run.current.as_ref().map_or(0, |c| c.schema_version),
            widened: false,
            conformed: conformed.get(&run.table).copied().unwrap_or(0),
            unconformed: 0,
        };
        let before = run.current.as_ref().and_then(|c| c.schema.clone());
        let mut schema = before.clone();
        if !unchanged {
            let (written, joined, unconformed) =
                match read_current(client, &out.bucket, &out.prefix, &run.table).await? {
                    // A retried Reduce: this run's generation is already the table's.
                    Some((current, _)) if current.run_id == plan.run_id => (current, None, 0),
                    now => {
                        check_lease(client, plan, &run).await?;
                        write_generation(client, plan, &run, now, &new, &mut spool, gone).await?
                    }
                };
            report.schema = joined;
            report.unconformed = unconformed;
            report.generation = Some(written.generation);
            report.entries = written.entries;
            report.schema_version = written.schema_version;
            report.widened = before.is_some() && written.schema != before;
            schema = written.schema;
        }
        if let Some(id) = schema.filter(|_| report.schema.is_none()) {
            let key = tables::schema_key(&out.prefix, &run.table, &id);
            report.schema = Some(csvlake_s3::get_json(client, &out.bucket, &key, "a table schema").await?);
        }
        release_lease(client, &out.bucket, &out.prefix, &run.table, &plan.run_id).await?;
        reports.push(report);
    }
    if !by_table.is_empty() {
        tracing::warn!(tables = ?by_table.keys().collect::<Vec<_>>(), "converted files of tables the plan did not lease");
    }
    Ok((reports, orphaned))
}

/// The table's schema after the run: its stored one joined with the schemas of the run's files
/// (`ids`, in key order of their first file), stored under `schemas/` when it is new. Returns
/// it, its id and its version (one more than the stored one's when it widened).
async fn table_schema(
    client: &Client,
    plan: &Plan,
    run: &TableRun,
    ids: &[String],
) -> Result<(Option<TableSchema>, Option<String>, u64)> {
    let version = run.current.as_ref().map_or(0, |c| c.schema_version);
    let mut schemas = crate::join::Schemas::default();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (stored, joined) = schemas.join(client, plan, run, &ids).await?;
    let Some(joined) = joined else { return Ok((None, None, version)) };
    let id = joined.id();
    if stored.is_some_and(|s| s.id() == id) {
        return Ok((Some(joined), Some(id), version));
    }
    schemas.store(client, plan, &run.table, &joined).await?;
    Ok((Some(joined), Some(id), version + 1))
}

/// Checks that the run still holds the table's lease: a run that outlived it must not write the
/// index that another run now owns.
async fn check_lease(client: &Client, plan: &Plan, run: &TableRun) -> Result<()> {
    let out = &plan.job.output;
    let key = tables::state_key(&out.prefix, &run.table, tables::names::LEASE);
    let held = csvlake_s3::tables::get_json_tagged::<Lease>(client, &out.bucket, &key, "a table lease").await?;
    match held {
        Some((lease, _)) if lease.run_id == plan.run_id => Ok(()),
        other => Err(Error::Internal(format!(
            "table {:?}: this run no longer holds its lease ({}), so its index was not updated; \
             the next run converts this run's files of the table again",
            run.name,
            other.map_or("it is gone".to_owned(), |(l, _)| format!("run {} holds it", l.run_id)),
        ))),
    }
}

/// Merges the previous generation with the run's entries into a new one, and points
/// `current.json` (`now`, with its ETag) at it. Returns the pointer, the table's schema, and the
/// number of entries whose schema is another.
async fn write_generation(
    client: &Client,
    plan: &Plan,
    run: &TableRun,
    now: Option<(Current, String)>,
    new: &[(u64, u32)],
    spool: &mut File,
    gone: Option<&std::collections::HashSet<&str>>,
) -> Result<(Current, Option<TableSchema>, u64)> {
    let out = &plan.job.output;
    // The pointer as it is now must be the one the plan read.
    if now.as_ref().map(|(c, _)| c.generation) != run.current.as_ref().map(|c| c.generation) {
        return Err(Error::Internal(format!(
            "table {:?}: its index changed while this run held the lease; it was not updated",
            run.name
        )));
    }
    let mut old = match &run.current {
        Some(c) => Some(read_index(client, &out.bucket, &c.index).await?),
        None => None,
    };
    let mut writer = IndexWriter::new(Vec::new())?;
    let mut next_old = match &mut old {
        Some(r) => r.next_entry()?,
        None => None,
    };
    let keep = |e: &IndexEntry| gone.is_none_or(|g| !g.contains(e.key.as_str()));
    // The schemas of the run's files, in key order of their first file.
    let mut schema_ids: Vec<String> = Vec::new();
    for &item in new {
        if let Some(id) = read_entry(spool, item)?.schema
            && !schema_ids.contains(&id)
        {
            schema_ids.push(id);
        }
    }
    let (joined, schema, schema_version) = table_schema(client, plan, run, &schema_ids).await?;
    let mut unconformed = 0u64;
    let mut push = |writer: &mut IndexWriter<Vec<u8>>, e: &IndexEntry| {
        if e.schema.is_some() && schema.is_some() && e.schema != schema {
            unconformed += 1;
        }
        writer.push(e)
    };
    for &item in new {
        let entry = read_entry(spool, item)?;
        while let Some(o) = next_old.take_if(|o| o.key <= entry.key) {
            if o.key != entry.key && keep(&o) {
                push(&mut writer, &o)?;
            }
            next_old = old.as_mut().map_or(Ok(None), |r| r.next_entry())?;
        }
        push(&mut writer, &entry)?;
    }
    while let Some(o) = next_old.take() {
        if keep(&o) {
            push(&mut writer, &o)?;
        }
        next_old = old.as_mut().map_or(Ok(None), |r| r.next_entry())?;
    }
    let entries = writer.entries();
    let body = writer.finish()?;
    let generation = run.current.as_ref().map_or(1, |c| c.generation + 1);
    let index = tables::index_key(&out.prefix, &run.table, generation, &plan.run_id);
    client
        .put_object()
        .bucket(&out.bucket)
        .key(&index)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("PutObject", &out.bucket, &index, e))?;
    let mut schema_history = run.current.as_ref().map(|c| c.schema_history.clone()).unwrap_or_default();
    if let Some(id) = &schema
        && schema_history.last().is_none_or(|h| &h.schema != id)
    {
        schema_history.push(SchemaVersion { version: schema_version, schema: id.clone(), run_id: plan.run_id.clone() });
    }
    let current = Current {
        generation,
        index,
        entries,
        run_id: plan.run_id.clone(),
        previous: run.current.as_ref().map(|c| c.index.clone()),
        schema,
        schema_version,
        schema_history,
    };
    let key = tables::state_key(&out.prefix, &run.table, tables::names::CURRENT);
    let precondition = match &now {
        Some((_, etag)) => Precondition::Matches(etag.clone()),
        None => Precondition::Absent,
    };
    if put_json(client, &out.bucket, &key, &current, &precondition).await?.is_none() {
        // A write that took effect but whose answer was lost is refused when it is sent again:
        // the pointer is then this one.
        let written = read_current(client, &out.bucket, &out.prefix, &run.table).await?;
        if written.is_none_or(|(c, _)| c != current) {
            return Err(Error::Internal(format!(
                "table {:?}: current.json changed while the run wrote its index",
                run.name
            )));
        }
        tracing::info!(table = %run.table, generation, "current.json was written, though its answer was lost");
    }
    // Two generations are kept: the new one and the one before, for a reader that started
    // from the previous pointer.
    if let Some(older) = run.current.as_ref().and_then(|c| c.previous.as_ref())
        && let Err(e) = client.delete_object().bucket(&out.bucket).key(older).send().await
    {
        tracing::warn!(key = %older, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not remove an old index generation");
    }
    Ok((current, joined, unconformed))
}
