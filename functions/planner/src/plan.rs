//! Planning a run: which inputs to convert, and in which batches.
//!
//! [`plan`] is the planner Lambda's work. It checks the run against the deployment's roots,
//! finds the candidates (a paged listing of the scanned prefixes in mode `scan`, one small
//! listing per key in modes `keys` and `report`), takes the lease of every table it meets,
//! rejects keys whose outputs would collide or leave the output prefix, skips inputs that the
//! table's index shows converted from the same content (ETag, size) with the same options
//! (fingerprint), records the index entries whose input is gone as orphaned, and streams batches
//! into the manifest object as it goes.
//!
//! Memory does not hold the keys of the run: [`Planner`] keeps a 16-byte hash per output name
//! and the suffix of its first key (collisions); an index is read as a compressed stream beside
//! the listing (both are in key order), one folder table at a time. The batches being filled are
//! the only keys in memory.

use std::collections::HashMap;

use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};

use csvlake_contract::deployment::{DEFAULT_LEASE_SECONDS, LEASE_SECONDS_ENV, MAX_CONCURRENCY_ENV};
use csvlake_contract::errors::MAX_FILE_MESSAGE_BYTES;
use csvlake_contract::payload::{FileRef, FileResult, InputLocation, Job};
use csvlake_contract::run::{
    BatchLimits, ManifestBatch, Mode, ObjectLocation, Plan, PlanRequest, ResultsLocation, RunInput,
};
use csvlake_contract::run::{names, run_key};
use csvlake_contract::tables::{self, IndexEntry, Orphan, Roots, TableRun};
use csvlake_contract::{BatchError, ErrorNames, keys};
use csvlake_engine::{BadInputKind, Error, Result};
use csvlake_s3::sdk_error;
use csvlake_s3::tables::{IndexReader, LeaseRefused, acquire_lease, read_current, read_index, release_lease};
use csvlake_s3::upload::{ObjectWriter, abort_stale};

/// Batches being filled at once. More open batches pack tighter; each holds up to
/// `max_files` keys in memory.
const OPEN_BATCHES: usize = 8;
/// Estimated payload bytes per batch at most: the converter's result for a batch (the larger of
/// its event and its result) must stay under the 256 KiB Step Functions payload limit.
pub const MAX_BATCH_PAYLOAD_BYTES: usize = 224 << 10;

/// What one file adds, at most, to its batch's result: its key, two output keys, the result's
/// other fields, and an error message of up to [`MAX_FILE_MESSAGE_BYTES`]. JSON escapes count.
fn payload_cost(key: &str, rel: &str, output_prefix: &str) -> usize {
    let escaped = |s: &str| s.len() + s.bytes().filter(|b| *b == b'"' || *b == b'\\' || *b < 0x20).count() * 5;
    let output_key = output_prefix.len() + escaped(rel) + 24;
    // The other fields: status, counts, dialect, ETag (also in the event), schema id.
    escaped(key) + 2 * output_key + 384 + MAX_FILE_MESSAGE_BYTES
}
/// Key lookups in flight in modes `keys` and `report`.
const LOOKUPS_IN_FLIGHT: usize = 64;

/// Whether a key is an input: it ends with one of the suffixes (ASCII case-insensitive).
pub fn is_input(key: &str, suffixes: &[String]) -> bool {
    let lower = key.to_ascii_lowercase();
    suffixes.iter().any(|s| lower.ends_with(&s.to_ascii_lowercase()))
}

/// Lists every input object under the prefix (or its scanned sub-prefixes), following
/// continuation tokens.
pub async fn list_inputs(client: &Client, input: &InputLocation) -> Result<Vec<FileRef>> {
    let mut files = Vec::new();
    for prefix in scan_prefixes(input)? {
        let mut pages = list(client, &input.bucket, &prefix);
        while let Some(page) = pages.try_next().await? {
            files.extend(page.into_iter().filter(|o| is_input(&o.key, &input.suffixes)).map(Listed::into_file));
        }
    }
    Ok(files)
}

/// The prefixes a scan lists, in key order (see [`InputLocation::scan_prefixes`]).
fn scan_prefixes(input: &InputLocation) -> Result<Vec<String>> {
    input.scan_prefixes().map_err(|e| Error::Internal(format!("invalid execution input: {e}")))
}

/// An object as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag, without quotes.
    pub etag: String,
}

impl Listed {
    fn into_file(self) -> FileRef {
        FileRef { key: self.key, size: self.size, etag: Some(self.etag).filter(|e| !e.is_empty()) }
    }
}

/// The pages of a ListObjectsV2 listing, each as the objects it holds.
fn list<'a>(
    client: &'a Client,
    bucket: &'a str,
    prefix: &'a str,
) -> impl futures::Stream<Item = Result<Vec<Listed>>> + Unpin + 'a {
    let pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    Box::pin(futures::stream::unfold(pages, move |mut pages| async move {
        let page = pages.next().await?;
        let page = page.map_err(|e| sdk_error("ListObjectsV2", bucket, prefix, e)).map(|page| {
            page.contents()
                .iter()
                .filter_map(|o| {
                    Some(Listed {
                        key: o.key()?.to_owned(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        etag: o.e_tag().map(|t| tables::bare_etag(t).to_owned()).unwrap_or_default(),
                    })
                })
                .collect()
        });
        Some((page, pages))
    }))
}

/// A 128-bit hash of an output name, as two words: 8-byte aligned, so that a map entry with an
/// 8-byte value takes 24 bytes rather than the 32 a `u128` key's alignment would round it to.
type NameHash = [u64; 2];

fn name_hash(rel: &str) -> NameHash {
    let h = xxhash_rust::xxh3::xxh3_128(rel.as_bytes());
    [h as u64, (h >> 64) as u64]
}

/// One table's index read beside the listing: both are in key order, so each listed key is
/// looked up by moving forward, and the entries passed over belong to inputs that are gone.
#[derive(Debug, Default)]
pub struct TableIndex {
    reader: Option<IndexReader>,
    next: Option<IndexEntry>,
}

impl TableIndex {
    /// An index over `reader`'s entries; `None` for a table without one.
    pub fn new(reader: Option<IndexReader>) -> Result<Self> {
        let mut index = Self { reader, next: None };
        index.advance()?;
        Ok(index)
    }

    fn advance(&mut self) -> Result<()> {
        self.next = match &mut self.reader {
            Some(r) => r.next_entry()?,
            None => None,
        };
        Ok(())
    }

    /// The entry of `key`, if any. Entries before it are handed to `passed`: their input was not
    /// listed. Keys must come in increasing order.
    pub fn seek(&mut self, key: &str, mut passed: impl FnMut(IndexEntry) -> Result<()>) -> Result<Option<IndexEntry>> {
        while let Some(entry) = self.next.take_if(|e| e.key.as_str() <= key) {
            self.advance()?;
            if entry.key == key {
                return Ok(Some(entry));
            }
            passed(entry)?;
        }
        Ok(None)
    }

    /// Hands every entry left to `passed`.
    pub fn drain(&mut self, mut passed: impl FnMut(IndexEntry) -> Result<()>) -> Result<()> {
        while let Some(entry) = self.next.take() {
            self.advance()?;
            passed(entry)?;
        }
        Ok(())
    }
}

/// Counts of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Files in batches.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Batches.
    pub batches: u64,
    /// Inputs skipped as up to date.
    pub skipped: u64,
    /// Inputs rejected.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Bin {
    files: Vec<FileRef>,
    bytes: u64,
    payload: usize,
}

impl Bin {
    fn fits(&self, f: &FileRef, cost: usize, limits: &BatchLimits) -> bool {
        self.files.len() < limits.max_files
            && self.bytes + f.size <= limits.max_bytes
            && self.payload + cost <= MAX_BATCH_PAYLOAD_BYTES
    }

    fn full(&self, limits: &BatchLimits) -> bool {
        // Within 2% of a bound, no file worth waiting for would still fit.
        self.files.len() >= limits.max_files
            || self.bytes >= limits.max_bytes - limits.max_bytes / 50
            || self.payload >= MAX_BATCH_PAYLOAD_BYTES - MAX_BATCH_PAYLOAD_BYTES / 50
    }

    fn fill(&self, limits: &BatchLimits) -> f64 {
        (self.bytes as f64 / limits.max_bytes as f64).max(self.files.len() as f64 / limits.max_files as f64)
    }
}

/// The suffix a key's output name was stripped of (at most `.csv.gz`, 7 bytes), kept inline so
/// that the first key of an output name can be named without keeping keys.
#[derive(Clone, Copy, Debug)]
struct Suffix {
    len: u8,
    bytes: [u8; 7],
}

impl Suffix {
    fn of(suffix: &str) -> Self {
        let mut bytes = [0; 7];
        let len = suffix.len().min(7);
        bytes[..len].copy_from_slice(&suffix.as_bytes()[..len]);
        Self { len: len as u8, bytes }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// The streaming core of planning: takes candidates one at a time and produces the manifest's
/// bytes and the rejected files' result lines as it goes. I/O stays with the caller, so the
/// same code plans from S3 and from a benchmark's generated listing.
#[derive(Debug)]
pub struct Planner {
    input_prefix: String,
    output_prefix: String,
    limits: BatchLimits,
    /// The run's fingerprint when it is incremental: inputs whose index entry matches are skipped.
    incremental: Option<String>,
    names: HashMap<NameHash, Suffix>,
    open: Vec<Bin>,
    manifest: Vec<u8>,
    rejected: Vec<u8>,
    counts: PlanCounts,
}

impl Planner {
    /// A planner for inputs under `input_prefix` whose outputs go under `output_prefix`. With
    /// `incremental` (the run's fingerprint), an input whose index entry shows the same ETag,
    /// size and fingerprint is skipped.
    pub fn new(input_prefix: &str, output_prefix: &str, limits: BatchLimits, incremental: Option<String>) -> Self {
        Self {
            input_prefix: input_prefix.to_owned(),
            output_prefix: output_prefix.to_owned(),
            limits,
            incremental,
            names: HashMap::new(),
            open: Vec::new(),
            manifest: Vec::new(),
            rejected: Vec::new(),
            counts: PlanCounts::default(),
        }
    }

    /// Takes one candidate, with its table's index entry if it has one. Candidates must come in
    /// key order (as listings return them), so that of keys whose outputs collide, the first in
    /// byte order keeps them.
    pub fn add(&mut self, obj: Listed, known: Option<&IndexEntry>) -> Result<()> {
        let rel = match keys::relative(&self.input_prefix, &obj.key) {
            Ok(rel) => rel,
            Err(e) => return self.reject(&obj.key, obj.size, &e),
        };
        let stem = keys::stem(&obj.key);
        match self.names.entry(name_hash(&rel)) {
            std::collections::hash_map::Entry::Occupied(first) => {
                // Same output name, same prefix: the keys differ only in their suffix.
                let first = format!("{stem}{}", first.get().as_str());
                let e = Error::bad(
                    BadInputKind::OutputCollision,
                    format!("{} would write the same outputs ({rel}) as {first}, which keeps them", obj.key),
                );
                return self.reject(&obj.key, obj.size, &e);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Suffix::of(&obj.key[stem.len()..]));
            }
        }
        if let (Some(fingerprint), Some(known)) = (&self.incremental, known)
            && known.is_current(&obj.etag, obj.size, fingerprint)
        {
            self.counts.skipped += 1;
            return Ok(());
        }
        let cost = payload_cost(&obj.key, &rel, &self.output_prefix);
        self.pack(obj.into_file(), cost)
    }

    /// Records a failed result decided at planning time.
    pub fn reject(&mut self, key: &str, size: u64, error: &Error) -> Result<()> {
        let result = FileResult::failed(key, size, 0, error.to_file_error());
        serde_json::to_writer(&mut self.rejected, &result)?;
        self.rejected.push(b'\n');
        self.counts.rejected += 1;
        Ok(())
    }

    fn pack(&mut self, f: FileRef, cost: usize) -> Result<()> {
        self.counts.files += 1;
        self.counts.bytes += f.size;
        if f.size >= self.limits.max_bytes || cost >= MAX_BATCH_PAYLOAD_BYTES {
            let mut bin = Bin::default();
            bin.files.push(f);
            return self.emit(bin);
        }
        // Best fit: the fullest open batch that still has room.
        let best = (0..self.open.len())
            .filter(|&i| self.open[i].fits(&f, cost, &self.limits))
            .max_by_key(|&i| (self.open[i].bytes, self.open[i].files.len()));
        let i = match best {
            Some(i) => i,
            None => {
                if self.open.len() >= OPEN_BATCHES {
                    let fullest = (0..self.open.len())
                        .max_by(|&a, &b| self.open[a].fill(&self.limits).total_cmp(&self.open[b].fill(&self.limits)))
                        .unwrap_or(0);
                    let bin = self.open.swap_remove(fullest);
                    self.emit(bin)?;
                }
                self.open.push(Bin::default());
                self.open.len() - 1
            }
        };
        let bin = &mut self.open[i];
        bin.bytes += f.size;
        bin.payload += cost;
        bin.files.push(f);
        if bin.full(&self.limits) {
            let bin = self.open.swap_remove(i);
            self.emit(bin)?;
        }
        Ok(())
    }

    fn emit(&mut self, bin: Bin) -> Result<()> {
        self.manifest.extend_from_slice(if self.counts.batches == 0 { b"[\n" } else { b",\n" });
        serde_json::to_writer(&mut self.manifest, &ManifestBatch { batch: self.counts.batches, files: bin.files })?;
        self.counts.batches += 1;
        Ok(())
    }

    /// Manifest bytes produced since the last call.
    pub fn take_manifest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.manifest)
    }

    /// Rejected-result lines produced since the last call.
    pub fn take_rejected(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rejected)
    }

    /// Closes the open batches and the manifest's array; the last bytes are left to take.
    pub fn finish(&mut self) -> Result<PlanCounts> {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|b| std::cmp::Reverse(b.bytes));
        for bin in open {
            self.emit(bin)?;
        }
        self.manifest.extend_from_slice(if self.counts.batches == 0 { b"[]\n" } else { b"\n]\n" });
        Ok(self.counts)
    }
}

/// What the planner knows of its deployment.
#[derive(Clone, Debug)]
pub struct PlannerConfig {
    /// The roots runs must stay within.
    pub roots: Roots,
    /// How long a table lease lasts: the longest a run may take.
    pub lease_seconds: u64,
    /// The deployment's ceiling on a run's `max_concurrency`, if any.
    pub max_concurrency: Option<u32>,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self { roots: Roots::default(), lease_seconds: DEFAULT_LEASE_SECONDS, max_concurrency: None }
    }
}

impl PlannerConfig {
    /// The configuration from the Lambda's environment (see `csvlake_contract::deployment`).
    pub fn from_env() -> Result<Self> {
        let roots = Roots::from_env().map_err(Error::Internal)?;
        let lease_seconds = match std::env::var(LEASE_SECONDS_ENV) {
            Ok(v) => v.parse().map_err(|e| Error::Internal(format!("{LEASE_SECONDS_ENV}={v:?}: {e}")))?,
            Err(_) => DEFAULT_LEASE_SECONDS,
        };
        let max_concurrency = match std::env::var(MAX_CONCURRENCY_ENV) {
            Ok(v) => Some(v.parse().map_err(|e| Error::Internal(format!("{MAX_CONCURRENCY_ENV}={v:?}: {e}")))?),
            Err(_) => None,
        };
        Ok(Self { roots, lease_seconds, max_concurrency })
    }

    /// A run's `max_concurrency` within the ceiling (0, no limit, counts as above any ceiling),
    /// and the value asked for when it was lowered.
    pub fn clamp_concurrency(&self, asked: u32) -> (u32, Option<u32>) {
        match self.max_concurrency {
            Some(ceiling) if asked == 0 || asked > ceiling => (ceiling, Some(asked)),
            _ => (asked, None),
        }
    }
}

/// The planner Lambda's work: plans the run and writes its manifest (and rejected results,
/// tables and orphans). On failure, the leases it took are released.
pub async fn plan(client: &Client, config: &PlannerConfig, request: PlanRequest) -> Result<Plan, BatchError> {
    let PlanRequest { run_id, input } = request;
    check_run_id(&run_id)?;
    let input = match input.mode {
        Mode::Report => {
            let report = input.report.clone().ok_or_else(|| {
                Error::Internal("invalid execution input: mode report needs report: {\"bucket\", \"key\"}".into())
            })?;
            input.over(read_run_input(client, &report).await?)
        }
        _ => input,
    };
    let mut job = input.job()?;
    job.run_id = Some(run_id.clone());
    config.roots.apply(&mut job).map_err(|e| Error::Internal(format!("invalid execution input: {e}")))?;
    let mut leases = Leases {
        client,
        bucket: job.output.bucket.clone(),
        prefix: job.output.prefix.clone(),
        run_id: run_id.clone(),
        held: Vec::new(),
    };
    match plan_job(client, config, &run_id, input, job, &mut leases).await {
        Ok(plan) => Ok(plan),
        Err(e) => {
            leases.release_all().await;
            Err(e)
        }
    }
}

/// The leases a plan has taken, to release if it fails.
struct Leases<'a> {
    client: &'a Client,
    bucket: String,
    prefix: String,
    run_id: String,
    held: Vec<String>,
}

impl Leases<'_> {
    async fn release_all(&mut self) {
        for table in std::mem::take(&mut self.held) {
            if let Err(e) = release_lease(self.client, &self.bucket, &self.prefix, &table, &self.run_id).await {
                tracing::warn!(table, error = %e, "could not release a lease; it expires by itself");
            }
        }
    }
}

/// The tables a plan has met: their leases, indexes and what the reducer needs of them.
struct Tables<'a> {
    client: &'a Client,
    config: &'a PlannerConfig,
    job: &'a Job,
    /// Index entries under these prefixes whose input is not listed are orphaned (a scan);
    /// empty: none are (explicit keys).
    orphan_scope: Vec<String>,
    /// The root's own table, met anywhere in the listing.
    root: Option<TableIndex>,
    /// The folder table being listed: the listing is in key order, so once it moves on, the
    /// table is done.
    folder: Option<(String, TableIndex)>,
    runs: Vec<TableRun>,
    orphans: Vec<u8>,
    orphaned: u64,
}

impl<'a> Tables<'a> {
    /// Enters the table of `key` (taking its lease and opening its index the first time) and
    /// looks the key up in its index.
    async fn look_up(&mut self, key: &str, leases: &mut Leases<'_>) -> Result<Option<IndexEntry>, BatchError> {
        let table = tables::table_of(&self.job.input.prefix, key, self.job.table_depth).to_owned();
        let entered =
            if table.is_empty() { self.root.is_some() } else { self.folder.as_ref().is_some_and(|(t, _)| *t == table) };
        if !entered {
            if !table.is_empty()
                && let Some((done, mut index)) = self.folder.take()
            {
                self.drain(&done, &mut index)?;
            }
            if self.runs.iter().any(|r| r.table == table) {
                return Err(Error::Internal(format!("the listing met table {table:?} twice: keys out of order")).into());
            }
            let index = self.enter(&table, leases).await?;
            if table.is_empty() {
                self.root = Some(index);
            } else {
                self.folder = Some((table.clone(), index));
            }
        }
        let index = if table.is_empty() { self.root.as_mut() } else { self.folder.as_mut().map(|(_, i)| i) };
        let Some(index) = index else { return Ok(None) };
        let (scope, orphans, orphaned) = (&self.orphan_scope, &mut self.orphans, &mut self.orphaned);
        Ok(index.seek(key, |entry| record_orphan(scope, &table, entry, orphans, orphaned))?)
    }

    async fn enter(&mut self, table: &str, leases: &mut Leases<'_>) -> Result<TableIndex, BatchError> {
        let out = &self.job.output;
        let name = tables::table_name(&self.job.input, table).to_owned();
        let held = match acquire_lease(
            self.client,
            &out.bucket,
            &out.prefix,
            table,
            &leases.run_id,
            self.config.lease_seconds,
        )
        .await
        {
            Ok(held) => held,
            Err(LeaseRefused::Held { run_id, expires }) => {
                let lease = tables::state_key(&out.prefix, table, tables::names::LEASE);
                return Err(BatchError::RunInProgress(format!(
                    "table {name:?} is being written by run {run_id} (lease s3://{}/{lease}, until {expires}); \
                     start this run when that one has ended. If it has died, delete the lease object, or wait until it expires",
                    out.bucket
                )));
            }
            Err(LeaseRefused::Failed(e)) => return Err(e.into()),
        };
        leases.held.push(table.to_owned());
        // Uploads under the table's outputs started before this lease belong to runs that died.
        let now = std::time::SystemTime::now();
        let mut aborted_uploads = 0;
        for (prefix, delimiter) in tables::output_prefixes(&out.prefix, table) {
            aborted_uploads += abort_stale(self.client, &out.bucket, &prefix, delimiter, now).await?;
        }
        let current = read_current(self.client, &out.bucket, &out.prefix, table).await?.map(|(c, _)| c);
        let reader = match &current {
            Some(c) => Some(read_index(self.client, &out.bucket, &c.index).await?),
            None => None,
        };
        tracing::info!(table, generation = current.as_ref().map(|c| c.generation), taken_over_from = ?held.taken_over_from, "table leased");
        self.runs.push(TableRun {
            table: table.to_owned(),
            name,
            current,
            taken_over_from: held.taken_over_from,
            aborted_uploads,
        });
        Ok(TableIndex::new(reader)?)
    }

    fn drain(&mut self, table: &str, index: &mut TableIndex) -> Result<()> {
        let (scope, orphans, orphaned) = (&self.orphan_scope, &mut self.orphans, &mut self.orphaned);
        index.drain(|entry| record_orphan(scope, table, entry, orphans, orphaned))
    }

    /// Enters the tables with an index that the listing did not meet but covered (every input
    /// of the table was deleted): all their entries are orphaned.
    async fn unmet(&mut self, leases: &mut Leases<'_>) -> Result<(), BatchError> {
        let out = &self.job.output;
        let base = keys::join(&out.prefix, "_tables/");
        let suffix = format!("/{}", tables::names::CURRENT);
        let mut found = Vec::new();
        let mut pages = list(self.client, &out.bucket, &base);
        while let Some(page) = pages.try_next().await? {
            for o in page {
                let Some(folder) = o.key.strip_prefix(&base).and_then(|k| k.strip_suffix(&suffix)) else { continue };
                let table = if folder == tables::ROOT_TABLE_FOLDER { String::new() } else { folder.to_owned() };
                found.push(table);
            }
        }
        for table in found {
            let folder = format!(
                "{}{}",
                self.job.input.prefix,
                if table.is_empty() { String::new() } else { format!("{table}/") }
            );
            let covered = self.orphan_scope.iter().any(|p| p.starts_with(&folder) || folder.starts_with(p.as_str()));
            let depth_matches = table.is_empty() || table.split('/').count() == self.job.table_depth as usize;
            if !covered || !depth_matches || self.runs.iter().any(|r| r.table == table) {
                continue;
            }
            let mut index = self.enter(&table, leases).await?;
            self.drain(&table, &mut index)?;
        }
        Ok(())
    }

    /// Ends the listing: what is left of each index was not listed.
    fn finish(&mut self) -> Result<()> {
        if let Some((table, mut index)) = self.folder.take() {
            self.drain(&table, &mut index)?;
        }
        if let Some(mut index) = self.root.take() {
            self.drain("", &mut index)?;
        }
        Ok(())
    }
}

/// Records an index entry whose input was not listed, when the listing covered it.
fn record_orphan(scope: &[String], table: &str, entry: IndexEntry, out: &mut Vec<u8>, count: &mut u64) -> Result<()> {
    if !scope.iter().any(|p| entry.key.starts_with(p.as_str())) {
        return Ok(());
    }
    *count += 1;
    serde_json::to_writer(&mut *out, &Orphan { table: table.to_owned(), entry })?;
    out.push(b'\n');
    Ok(())
}

async fn plan_job(
    client: &Client,
    config: &PlannerConfig,
    run_id: &str,
    input: RunInput,
    job: Job,
    leases: &mut Leases<'_>,
) -> Result<Plan, BatchError> {
    let limits = input.batch_limits()?;
    // Run objects (manifests, reports) of runs that died: no live run is older than a lease.
    let out = &job.output;
    let runs_prefix = keys::join(&out.prefix, "_runs/");
    let long_ago = std::time::SystemTime::now()
        .checked_sub(std::time::Duration::from_secs(config.lease_seconds))
        .unwrap_or(std::time::UNIX_EPOCH);
    abort_stale(client, &out.bucket, &runs_prefix, None, long_ago).await?;
    let tolerated_failure_percentage = input.tolerated_failure_percentage()?;
    let (max_concurrency, requested_max_concurrency) = config.clamp_concurrency(input.max_concurrency()?);
    if let Some(asked) = requested_max_concurrency {
        tracing::warn!(asked, max_concurrency, "max_concurrency lowered to the deployment's ceiling");
    }
    let incremental = input.incremental.unwrap_or(true);
    let delete_orphans = input.delete_orphans.unwrap_or(false);
    let fingerprint = job.fingerprint();

    let at = |name: &str| ObjectLocation { bucket: out.bucket.clone(), key: run_key(&out.prefix, run_id, name) };
    let manifest = at(names::MANIFEST);
    let rejected_at = at(names::REJECTED);
    let mut writers = Writers {
        manifest: ObjectWriter::new(client, &manifest.bucket, &manifest.key),
        rejected: None,
        rejected_at: &rejected_at,
        client,
    };
    let mut planner =
        Planner::new(&job.input.prefix, &job.output.prefix, limits, incremental.then(|| fingerprint.clone()));
    let scan = scan_prefixes(&job.input)?;
    let mut tables = Tables {
        client,
        config,
        job: &job,
        orphan_scope: if input.mode == Mode::Scan { scan.clone() } else { Vec::new() },
        root: None,
        folder: None,
        runs: Vec::new(),
        orphans: Vec::new(),
        orphaned: 0,
    };
    match input.mode {
        Mode::Scan => {
            // Disjoint prefixes in key order: the listings together are in key order too.
            for prefix in &scan {
                let mut pages = list(client, &job.input.bucket, prefix);
                while let Some(page) = pages.try_next().await? {
                    for obj in page.into_iter().filter(|o| is_input(&o.key, &job.input.suffixes)) {
                        let known = tables.look_up(&obj.key, leases).await?;
                        planner.add(obj, known.as_ref())?;
                    }
                    writers.drain(&mut planner).await?;
                }
            }
        }
        Mode::Keys | Mode::Report => {
            let mut keys = input.keys;
            if keys.is_empty() {
                return Err(
                    Error::Internal("invalid execution input: mode keys needs a non-empty keys list".into()).into()
                );
            }
            keys.sort_unstable();
            keys.dedup();
            let bucket = job.input.bucket.as_str();
            let mut found =
                futures::stream::iter(keys).map(|key| look_up(client, &job.input, key)).buffered(LOOKUPS_IN_FLIGHT);
            let mut n = 0usize;
            while let Some(lookup) = found.next().await {
                match lookup? {
                    Lookup::Found(obj) => {
                        let known = match keys::relative(&job.input.prefix, &obj.key) {
                            Ok(_) => tables.look_up(&obj.key, leases).await?,
                            Err(_) => None,
                        };
                        planner.add(obj, known.as_ref())?;
                    }
                    Lookup::Missing(key) => {
                        let e = Error::bad(BadInputKind::NotFound, format!("s3://{bucket}/{key} does not exist"));
                        planner.reject(&key, 0, &e)?;
                    }
                    Lookup::Shadowed { obj, by } => {
                        let e = Error::bad(
                            BadInputKind::OutputCollision,
                            format!(
                                "{} would write the same outputs as {by}, which comes first and keeps them",
                                obj.key
                            ),
                        );
                        planner.reject(&obj.key, obj.size, &e)?;
                    }
                }
                n += 1;
                if n.is_multiple_of(1000) {
                    writers.drain(&mut planner).await?;
                }
            }
        }
    }
    tables.finish()?;
    if input.mode == Mode::Scan {
        tables.unmet(leases).await?;
    }
    let counts = planner.finish()?;
    writers.drain(&mut planner).await?;
    let rejected_results = writers.commit().await?.then_some(rejected_at.clone());

    let tables_at = at(names::TABLES);
    let mut lines = Vec::new();
    for run in &tables.runs {
        serde_json::to_writer(&mut lines, run).map_err(Error::from)?;
        lines.push(b'\n');
    }
    put_bytes(client, &tables_at, lines).await?;
    let orphans = if tables.orphaned > 0 {
        let orphans_at = at(names::ORPHANS);
        put_bytes(client, &orphans_at, std::mem::take(&mut tables.orphans)).await?;
        Some(orphans_at)
    } else {
        None
    };
    tracing::info!(run_id, ?counts, orphaned = tables.orphaned, tables = tables.runs.len(), "planned");
    Ok(Plan {
        results: ResultsLocation { bucket: out.bucket.clone(), prefix: run_key(&out.prefix, run_id, names::RESULTS) },
        run_id: run_id.to_owned(),
        mode: input.mode,
        incremental,
        files: counts.files,
        bytes: counts.bytes,
        batches: counts.batches,
        skipped: counts.skipped,
        rejected: counts.rejected,
        orphaned: tables.orphaned,
        delete_orphans,
        tables: Some(tables_at),
        orphans,
        manifest,
        rejected_results,
        batch: limits,
        max_concurrency,
        requested_max_concurrency,
        tolerated_failure_percentage,
        conform_limit: input.conform_limit.unwrap_or(csvlake_contract::run::DEFAULT_CONFORM_LIMIT),
        catalog: input.catalog.clone(),
        job: job.clone(),
    })
}

async fn put_bytes(client: &Client, at: &ObjectLocation, body: Vec<u8>) -> Result<()> {
    client
        .put_object()
        .bucket(&at.bucket)
        .key(&at.key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("PutObject", &at.bucket, &at.key, e))?;
    Ok(())
}

struct Writers<'a> {
    client: &'a Client,
    manifest: ObjectWriter,
    rejected: Option<ObjectWriter>,
    rejected_at: &'a ObjectLocation,
}

impl Writers<'_> {
    async fn drain(&mut self, planner: &mut Planner) -> Result<()> {
        self.manifest.write(&planner.take_manifest()).await?;
        let rejected = planner.take_rejected();
        if !rejected.is_empty() {
            let at = self.rejected_at;
            let w = self.rejected.get_or_insert_with(|| ObjectWriter::new(self.client, &at.bucket, &at.key));
            w.write(&rejected).await?;
        }
        Ok(())
    }

    /// Commits the manifest and the rejected results; whether there were any.
    async fn commit(self) -> Result<bool> {
        self.manifest.commit().await?;
        match self.rejected {
            Some(w) => w.commit().await.map(|_| true),
            None => Ok(false),
        }
    }
}

/// Checks a run id: it names objects under `_runs/`, so it must stay one path segment (Step
/// Functions execution names already exclude `/`).
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 80
        && run_id != "."
        && run_id != ".."
        && run_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(format!("invalid run id {run_id:?}: use up to 80 of A-Z a-z 0-9 - _ . :")))
    }
}

/// What a listing shows of an explicitly named key.
#[derive(Debug)]
enum Lookup {
    /// It exists.
    Found(Listed),
    /// It does not exist.
    Missing(String),
    /// It exists, but an input that sorts before it maps to the same outputs, as in a scan.
    Shadowed { obj: Listed, by: String },
}

/// Looks a named key up by listing its stem (`a.` for `a.csv`): one request that gives its
/// size and time and shows every sibling (`a.tsv`, `a.csv.gz`) that would write the same
/// outputs. A run of explicit keys thus keeps the outputs where a scan would.
async fn look_up(client: &Client, input: &InputLocation, key: String) -> Result<Lookup> {
    let stem = keys::stem(&key);
    let prefix = if stem.len() < key.len() { format!("{stem}.") } else { key.clone() };
    let rel = keys::relative(&input.prefix, &key).ok();
    let mut pages = list(client, &input.bucket, &prefix);
    let (mut found, mut first_sibling) = (None, None);
    while let Some(page) = pages.try_next().await? {
        for o in page {
            if o.key == key {
                found = Some(o);
            } else if first_sibling.is_none()
                && o.key < key
                && is_input(&o.key, &input.suffixes)
                && rel.is_some()
                && keys::relative(&input.prefix, &o.key).ok() == rel
            {
                first_sibling = Some(o.key);
            }
        }
    }
    Ok(match (found, first_sibling) {
        (None, _) => Lookup::Missing(key),
        (Some(obj), Some(by)) => Lookup::Shadowed { obj, by },
        (Some(obj), None) => Lookup::Found(obj),
    })
}

/// Reads a `failed-keys.json` (or any execution input stored in S3).
pub async fn read_run_input(client: &Client, at: &ObjectLocation) -> Result<RunInput> {
    csvlake_s3::get_json(client, &at.bucket, &at.key, "a failed-keys file").await
}

#[cfg(test)]
mod tests {
    use super::*;

    use csvlake_contract::payload::OutputRef;
    use csvlake_engine::Format;

    fn obj(key: &str, size: u64) -> Listed {
        Listed { key: key.into(), size, etag: format!("e-{key}") }
    }

    fn batches(p: &mut Planner) -> Vec<ManifestBatch> {
        p.finish().unwrap();
        serde_json::from_slice(&p.take_manifest()).unwrap()
    }

    #[test]
    fn every_file_lands_in_exactly_one_batch_within_the_bounds() {
        let limits = BatchLimits { max_files: 7, max_bytes: 1_000 };
        let mut p = Planner::new("in/", "out/", limits, None);
        // A deterministic spread of sizes, a few beyond max_bytes.
        let mut x = 12345u64;
        let mut total = 0;
        for i in 0..2_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let size = (x >> 33) % 400 + if i % 97 == 0 { 1_500 } else { 0 };
            total += size;
            p.add(obj(&format!("in/{i:05}.csv"), size), None).unwrap();
        }
        let b = batches(&mut p);
        let mut keys: Vec<&str> = b.iter().flat_map(|b| b.files.iter().map(|f| f.key.as_str())).collect();
        assert_eq!(keys.len(), 2_000);
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 2_000, "no file twice");
        assert_eq!(b.iter().flat_map(|b| &b.files).map(|f| f.size).sum::<u64>(), total);
        for (i, batch) in b.iter().enumerate() {
            assert_eq!(batch.batch, i as u64);
            let bytes: u64 = batch.files.iter().map(|f| f.size).sum();
            assert!(batch.files.len() <= 7);
            assert!(
                bytes <= 1_000 || batch.files.len() == 1,
                "batch {i}: {bytes} bytes in {} files",
                batch.files.len()
            );
        }
        // Similar bytes: all but the last few batches (closed at the end) are well filled.
        let filled: Vec<f64> = b
            .iter()
            .filter(|b| b.files.len() > 1)
            .map(|b| b.files.iter().map(|f| f.size).sum::<u64>() as f64 / 1_000.0)
            .map(|bytes| bytes.max(0.0))
            .collect();
        let well = filled.iter().filter(|&&f| f >= 0.75).count();
        assert!(well + OPEN_BATCHES >= filled.len(), "{well} of {} batches at 75% or more", filled.len());
    }

    #[test]
    fn a_file_beyond_max_bytes_is_a_batch_of_its_own() {
        let mut p = Planner::new("", "", BatchLimits { max_files: 10, max_bytes: 100 }, None);
        for (k, s) in [("a.csv", 10), ("big.csv", 100), ("c.csv", 10)] {
            p.add(obj(k, s), None).unwrap();
        }
        let b = batches(&mut p);
        let keys: Vec<Vec<&str>> = b.iter().map(|b| b.files.iter().map(|f| f.key.as_str()).collect()).collect();
        assert_eq!(keys, vec![vec!["big.csv"], vec!["a.csv", "c.csv"]]);
    }

    #[test]
    fn colliding_outputs_keep_the_first_key_and_bad_keys_are_rejected() {
        let mut p = Planner::new("in/", "out/", BatchLimits::default(), None);
        for k in ["in/a.csv", "in/a.csv.gz", "in/a.tsv", "in/b.csv", "in/x/../c.csv"] {
            p.add(obj(k, 1), None).unwrap();
        }
        let counts = p.finish().unwrap();
        assert_eq!((counts.files, counts.rejected), (2, 3));
        let rejected: Vec<FileResult> =
            String::from_utf8(p.take_rejected()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let kinds: Vec<(&str, &str)> =
            rejected.iter().map(|r| (r.key.as_str(), r.error.as_ref().unwrap().kind.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("in/a.csv.gz", "bad_input.output_collision"),
                ("in/a.tsv", "bad_input.output_collision"),
                ("in/x/../c.csv", "bad_input.invalid_key")
            ]
        );
        assert!(rejected[1].error.as_ref().unwrap().message.contains("as in/a.csv, which keeps them"));
        let b: Vec<ManifestBatch> = serde_json::from_slice(&p.take_manifest()).unwrap();
        assert_eq!(b[0].files.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["in/a.csv", "in/b.csv"]);
    }

    fn entry(key: &str, etag: &str, fingerprint: &str) -> IndexEntry {
        IndexEntry {
            key: key.into(),
            etag: etag.into(),
            size: 1,
            fingerprint: fingerprint.into(),
            outputs: vec![OutputRef { format: Format::Parquet, key: format!("out/{key}"), bytes: 1 }],
            schema: None,
        }
    }

    #[test]
    fn incremental_skips_inputs_converted_from_the_same_content_with_the_same_options() {
        let mut w = csvlake_s3::tables::IndexWriter::new(Vec::new()).unwrap();
        for e in [
            entry("in/a.csv", "e-in/a.csv", "fp"),    // current
            entry("in/b.csv", "old", "fp"),           // content changed
            entry("in/c.csv", "e-in/c.csv", "other"), // other options
            entry("in/gone.csv", "x", "fp"),          // input deleted
        ] {
            w.push(&e).unwrap();
        }
        let reader = IndexReader::new(std::io::Cursor::new(w.finish().unwrap()), "index").unwrap();
        let mut index = TableIndex::new(Some(reader)).unwrap();
        let mut p = Planner::new("in/", "out/", BatchLimits::default(), Some("fp".into()));
        let mut passed = Vec::new();
        for k in ["in/a.csv", "in/b.csv", "in/c.csv", "in/d.csv"] {
            let o = obj(k, 1);
            let known = index
                .seek(k, |e| {
                    passed.push(e.key);
                    Ok(())
                })
                .unwrap();
            p.add(o, known.as_ref()).unwrap();
        }
        index
            .drain(|e| {
                passed.push(e.key);
                Ok(())
            })
            .unwrap();
        assert_eq!(passed, ["in/gone.csv"], "the entry no listed key matched");
        let counts = p.finish().unwrap();
        assert_eq!((counts.files, counts.skipped), (3, 1));
        let b: Vec<ManifestBatch> = serde_json::from_slice(&p.take_manifest()).unwrap();
        let keys: Vec<&str> = b.iter().flat_map(|b| &b.files).map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["in/b.csv", "in/c.csv", "in/d.csv"]);
        assert_eq!(b[0].files[0].etag.as_deref(), Some("e-in/b.csv"), "the manifest carries the listed ETag");

        // Without incremental, the index decides nothing.
        let mut p = Planner::new("in/", "out/", BatchLimits::default(), None);
        p.add(obj("in/a.csv", 1), Some(&entry("in/a.csv", "e-in/a.csv", "fp"))).unwrap();
        assert_eq!(p.finish().unwrap().files, 1);
    }

    #[test]
    fn an_empty_plan_is_an_empty_manifest() {
        let mut p = Planner::new("", "", BatchLimits::default(), None);
        assert_eq!(p.finish().unwrap(), PlanCounts::default());
        assert_eq!(serde_json::from_slice::<Vec<ManifestBatch>>(&p.take_manifest()).unwrap(), vec![]);
    }

    #[test]
    fn long_keys_close_a_batch_before_the_payload_limit() {
        use csvlake_contract::payload::{BatchResult, OutputRef};
        let out = format!("{}/", "o".repeat(200));
        let mut p = Planner::new("", &out, BatchLimits { max_files: 10_000, max_bytes: u64::MAX }, None);
        let long = "k\"".repeat(300);
        for i in 0..2_000 {
            p.add(obj(&format!("{long}{i:04}.csv"), 1), None).unwrap();
        }
        let b = batches(&mut p);
        assert_eq!(b.iter().map(|b| b.files.len()).sum::<usize>(), 2_000);
        assert!(b.len() > 10, "{} batches", b.len());
        for batch in b {
            // The largest result the converter could return for it: every file converted to
            // both formats, or failed with the longest message.
            let worst = BatchResult {
                files: batch
                    .files
                    .iter()
                    .map(|f| {
                        let rel = keys::relative("", &f.key).unwrap();
                        let mut r = FileResult::failed(
                            &f.key,
                            u64::MAX,
                            u64::MAX,
                            Error::Internal("é".repeat(1_000)).to_file_error(),
                        );
                        r.outputs = Format::ALL
                            .iter()
                            .map(|&format| OutputRef {
                                format,
                                key: keys::output_key(&out, format, &rel),
                                bytes: u64::MAX,
                            })
                            .collect();
                        r.rows = u64::MAX;
                        r
                    })
                    .collect(),
            };
            let size = serde_json::to_vec(&worst).unwrap().len();
            assert!(size < 256 << 10, "{size} bytes in a result of {} files", batch.files.len());
        }
    }

    #[test]
    fn the_deployment_ceiling_lowers_max_concurrency_and_says_from_what() {
        let config = PlannerConfig { max_concurrency: Some(100), ..PlannerConfig::default() };
        assert_eq!(config.clamp_concurrency(50), (50, None));
        assert_eq!(config.clamp_concurrency(500), (100, Some(500)));
        assert_eq!(config.clamp_concurrency(0), (100, Some(0)), "0 means no limit, which is above any ceiling");
        assert_eq!(PlannerConfig::default().clamp_concurrency(0), (0, None));
    }

    #[test]
    fn run_ids_cannot_escape_the_runs_prefix() {
        assert!(check_run_id("run-2026-11-21T07_30_00Z").is_ok());
        for bad in ["", "..", "a/b", "a b"] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn suffix_filter_ignores_case_and_other_keys() {
        let s = csvlake_contract::payload::default_suffixes();
        assert!(is_input("x/A.CSV", &s));
        assert!(is_input("x/a.tsv.gz", &s));
        assert!(!is_input("x/a.json", &s));
        assert!(!is_input("x/a.csv.bak", &s));
    }
}
