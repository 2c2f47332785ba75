//! Listing a bucket directory as S3 lists a bucket: keys in UTF-8 byte order, from a prefix,
//! after a marker, a page at a time.
//!
//! The walk visits each directory's entries in key order (a sub-directory `d` sorts as `d/`,
//! which is where its keys fall among its siblings), so a page is found without listing the
//! bucket: only the directories on the way to the marker and those holding the page are read,
//! entries outside the prefix or at or before the marker are dropped by name before anything
//! is stat'ed, and of a large directory only the entries the page can still take are sorted.
//! A large directory that has not changed for a while keeps its sorted names in a [`DirCache`]
//! between pages, so that paging through a million files in one folder reads it once, not once
//! per page. Symbolic links are followed (a link back to a directory being walked is skipped);
//! names that are not UTF-8, and the endpoint's and s3s-fs's own files ([`is_reserved`]), are
//! not keys. Directories are not objects; with the delimiter `/`, a directory holding at least
//! one object is a common prefix.

use std::cmp::Ordering;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Directories with fewer entries are read again for every page.
const CACHE_MIN_ENTRIES: usize = 4096;

/// How many directories' sorted names a [`DirCache`] keeps.
const CACHE_DIRS: usize = 4;

/// How long a directory must have been unchanged before its names are kept: longer than the
/// granularity of any filesystem's timestamps, so that a change after reading the directory
/// is sure to move its modification time.
const SETTLED: Duration = Duration::from_secs(2);

/// Whether a file or directory name belongs to the storage rather than to a key: the
/// endpoint's scratch directories and files, its sidecar metadata files (all `.csvlake*`), and
/// what s3s-fs keeps beside objects (`.bucket-*.json` metadata, `.tmp.*.internal.part` and
/// `.upload_id-*` upload files). Such names cannot be written as keys either.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(".csvlake")
        || (name.starts_with(".bucket-") && name.ends_with(".json"))
        || (name.starts_with(".tmp.") && name.ends_with(".internal.part"))
        || name.starts_with(".upload_id-")
}

/// What to list.
#[derive(Debug)]
pub struct Query<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Only keys (and common prefixes) after this one.
    pub after: Option<&'a str>,
    /// Whether keys are rolled up into common prefixes at the first `/` after the prefix.
    pub delimited: bool,
    /// The most keys and common prefixes to return.
    pub limit: usize,
}

/// An object found.
#[derive(Debug)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its file's metadata (symbolic links followed).
    pub meta: Metadata,
    /// Its ETag, filled in by the caller (it may read the file).
    pub etag: String,
}

/// One page.
#[derive(Debug, Default)]
pub struct Page {
    /// Objects, in key order.
    pub objects: Vec<Listed>,
    /// Common prefixes (with the delimiter only), in order.
    pub prefixes: Vec<String>,
    /// Whether more keys or common prefixes follow.
    pub truncated: bool,
    /// The last key or common prefix returned, where the next page starts after.
    pub last: Option<String>,
}

/// Lists the bucket directory `bucket` (symbolic links followed), with the sorted names of
/// large directories kept in `cache`.
pub fn list(bucket: &Path, query: &Query<'_>, cache: &DirCache) -> io::Result<Page> {
    let mut walk = Walk { query, cache, page: Page::default(), count: 0, ancestors: Vec::new() };
    if query.limit == 0 {
        return Ok(walk.page);
    }
    // Start in the deepest directory the prefix names: "a/b/c" starts in a/b.
    let mut dir = bucket.to_path_buf();
    let mut key_prefix = String::new();
    if let Some((folders, _)) = query.prefix.rsplit_once('/') {
        for name in folders.split('/') {
            if !is_segment(name) {
                return Ok(walk.page);
            }
            dir.push(name);
            key_prefix.push_str(name);
            key_prefix.push('/');
        }
    }
    // Every key under a/b/ comes before a marker "b".
    if query.after.is_some_and(|a| !a.starts_with(key_prefix.as_str()) && a > key_prefix.as_str()) {
        return Ok(walk.page);
    }
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(walk.page),
        Err(e) if gone(&e) => return Ok(walk.page),
        Err(e) => return Err(e),
    }
    walk.dir(&dir, &key_prefix)?;
    Ok(walk.page)
}

/// Whether an error reading a path means that it is not there (any more).
fn gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Whether `name` may name a directory or file of a key.
pub fn is_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !is_reserved(name)
}

/// The sorted names of large directories that have not changed for a while, kept between the
/// pages of a listing.
#[derive(Debug, Default)]
pub struct DirCache(Mutex<Vec<Cached>>);

#[derive(Debug)]
struct Cached {
    path: PathBuf,
    stamp: DirStamp,
    entries: Arc<[Entry]>,
    used: u64,
}

/// What changes when a directory's entries change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DirStamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl DirCache {
    fn get(&self, path: &Path, stamp: DirStamp) -> Option<Arc<[Entry]>> {
        let mut dirs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tick = dirs.iter().map(|c| c.used).max().unwrap_or(0) + 1;
        let i = dirs.iter().position(|c| c.path == path)?;
        if dirs[i].stamp != stamp {
            dirs.swap_remove(i);
            return None;
        }
        dirs[i].used = tick;
        Some(dirs[i].entries.clone())
    }

    fn put(&self, path: &Path, stamp: DirStamp, entries: Arc<[Entry]>) {
        let mut dirs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let tick = dirs.iter().map(|c| c.used).max().unwrap_or(0) + 1;
        dirs.retain(|c| c.path != path);
        if dirs.len() >= CACHE_DIRS
            && let Some(oldest) = dirs.iter().enumerate().min_by_key(|(_, c)| c.used).map(|(i, _)| i)
        {
            dirs.swap_remove(oldest);
        }
        dirs.push(Cached { path: path.to_path_buf(), stamp, entries, used: tick });
    }
}

/// Whether a directory last modified at `meta`'s time is sure to show a later change.
fn settled(meta: &Metadata) -> bool {
    meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).is_some_and(|age| age >= SETTLED)
}

/// A directory entry that may hold keys of the page.
#[derive(Debug)]
struct Entry {
    /// The name, with `/` after it for a directory: the order of siblings.
    segment: String,
    dir: bool,
    /// The metadata, when reading the entry needed it (symbolic links).
    meta: Option<Metadata>,
}

enum Flow {
    More,
    Full,
}

struct Walk<'q, 'a> {
    query: &'q Query<'a>,
    cache: &'q DirCache,
    page: Page,
    count: usize,
    /// (device, inode) of the directories being walked.
    ancestors: Vec<(u64, u64)>,
}

impl Walk<'_, '_> {
    /// Walks `dir`, whose keys start with `key_prefix` (empty or ending in `/`). Every
    /// directory walked either lies within the prefix or holds it, and either lies after the
    /// marker or holds it.
    fn dir(&mut self, dir: &Path, key_prefix: &str) -> io::Result<Flow> {
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if gone(&e) => return Ok(Flow::More),
            Err(e) => return Err(e),
        };
        let id = (meta.dev(), meta.ino());
        if self.ancestors.contains(&id) {
            return Ok(Flow::More);
        }
        let stamp = DirStamp::of(&meta);
        self.ancestors.push(id);
        let flow = match self.cache.get(dir, stamp) {
            Some(sorted) => self.sorted(dir, key_prefix, &sorted),
            None => self.read(dir, key_prefix, &meta, stamp),
        };
        self.ancestors.pop();
        flow
    }

    /// Whether an entry of the directory of `key_prefix` may hold keys of the page.
    fn keeps(&self, key_prefix: &str, segment: &str, is_dir: bool) -> bool {
        // The parts of the prefix and of the marker still to match below this directory.
        let prefix = self.query.prefix.strip_prefix(key_prefix).unwrap_or("");
        let after = self.query.after.and_then(|a| a.strip_prefix(key_prefix));
        let in_prefix = segment.starts_with(prefix) || (is_dir && prefix.starts_with(segment));
        let past = match after {
            None => true,
            Some(a) => segment > a || (is_dir && a.starts_with(segment) && !self.rolled_up(key_prefix, segment)),
        };
        in_prefix && past
    }

    /// Reads `dir` and walks it, keeping its sorted names when it is large and settled.
    fn read(&mut self, dir: &Path, key_prefix: &str, meta: &Metadata, stamp: DirStamp) -> io::Result<Flow> {
        let mut all = Vec::new();
        for_each_entry(dir, |entry| {
            all.push(entry);
            true
        })?;
        if all.len() >= CACHE_MIN_ENTRIES && settled(meta) {
            all.sort_unstable_by(|a, b| a.segment.cmp(&b.segment));
            // Without metadata: links are followed again when their keys are listed.
            let sorted: Arc<[Entry]> = all.into_iter().map(|e| Entry { meta: None, ..e }).collect();
            self.cache.put(dir, stamp, sorted.clone());
            return self.sorted(dir, key_prefix, &sorted);
        }
        let mut entries: Vec<Entry> = all.into_iter().filter(|e| self.keeps(key_prefix, &e.segment, e.dir)).collect();
        self.entries(dir, key_prefix, &mut entries)
    }

    /// Walks the sorted entries of `dir` from the first the page may take.
    fn sorted(&mut self, dir: &Path, key_prefix: &str, sorted: &[Entry]) -> io::Result<Flow> {
        let prefix = self.query.prefix.strip_prefix(key_prefix).unwrap_or("");
        let mut start = sorted.partition_point(|e| e.segment.as_str() < prefix);
        if let Some(after) = self.query.after.and_then(|a| a.strip_prefix(key_prefix)) {
            // Past the marker, or the folder holding it, which comes right before.
            let past = sorted.partition_point(|e| e.segment.as_str() <= after);
            let holder = past.checked_sub(1).filter(|&i| self.keeps(key_prefix, &sorted[i].segment, sorted[i].dir));
            start = start.max(holder.unwrap_or(past));
        }
        for entry in &sorted[start..] {
            if !self.keeps(key_prefix, &entry.segment, entry.dir) {
                if entry.segment.as_str() > prefix && !entry.segment.starts_with(prefix) {
                    break;
                }
                continue;
            }
            if let Flow::Full = self.entry(dir, key_prefix, entry)? {
                return Ok(Flow::Full);
            }
        }
        Ok(Flow::More)
    }

    /// Whether the sub-directory `segment` of the directory of `key_prefix` is a common prefix.
    fn rolled_up(&self, key_prefix: &str, segment: &str) -> bool {
        self.query.delimited && key_prefix.len() + segment.len() > self.query.prefix.len()
    }

    /// Visits `entries` in order, sorting only as many as the page can still take.
    fn entries(&mut self, dir: &Path, key_prefix: &str, entries: &mut Vec<Entry>) -> io::Result<Flow> {
        let by_segment = |a: &Entry, b: &Entry| -> Ordering { a.segment.cmp(&b.segment) };
        while !entries.is_empty() {
            // Room left, and one more to tell whether the page is truncated.
            let room = self.query.limit.saturating_sub(self.count) + 1;
            let mut batch = if entries.len() > room.saturating_mul(2) {
                entries.select_nth_unstable_by(room, by_segment);
                let rest = entries.split_off(room);
                std::mem::replace(entries, rest)
            } else {
                std::mem::take(entries)
            };
            batch.sort_unstable_by(by_segment);
            for entry in &batch {
                if let Flow::Full = self.entry(dir, key_prefix, entry)? {
                    return Ok(Flow::Full);
                }
            }
        }
        Ok(Flow::More)
    }

    fn entry(&mut self, dir: &Path, key_prefix: &str, entry: &Entry) -> io::Result<Flow> {
        let name = entry.segment.strip_suffix('/').unwrap_or(&entry.segment);
        let path = dir.join(name);
        let key = format!("{key_prefix}{}", entry.segment);
        if !entry.dir {
            let meta = match &entry.meta {
                Some(m) => m.clone(),
                None => match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => return Ok(Flow::More),
                    Err(e) if gone(&e) => return Ok(Flow::More),
                    Err(e) => return Err(e),
                },
            };
            if self.full() {
                return Ok(Flow::Full);
            }
            self.count += 1;
            self.page.last = Some(key.clone());
            self.page.objects.push(Listed { key, meta, etag: String::new() });
        } else if self.rolled_up(key_prefix, &entry.segment) {
            if !holds_object(&path, &mut self.ancestors)? {
                return Ok(Flow::More);
            }
            if self.full() {
                return Ok(Flow::Full);
            }
            self.count += 1;
            self.page.last = Some(key.clone());
            self.page.prefixes.push(key);
        } else {
            return self.dir(&path, &key);
        }
        Ok(Flow::More)
    }

    /// Whether the page is full; if so, it is truncated: the caller has found one more.
    fn full(&mut self) -> bool {
        if self.count >= self.query.limit {
            self.page.truncated = true;
        }
        self.page.truncated
    }
}

/// Calls `f` with each entry of `dir` that is a key or a folder of keys, until it returns
/// false. A directory that is gone has no entries.
fn for_each_entry(dir: &Path, mut f: impl FnMut(Entry) -> bool) -> io::Result<()> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in read {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else { continue };
        if !is_segment(&name) {
            continue;
        }
        let file_type = match e.file_type() {
            Ok(t) => t,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let (dir, meta) = if file_type.is_symlink() {
            match std::fs::metadata(e.path()) {
                Ok(m) if m.is_dir() => (true, None),
                Ok(m) if m.is_file() => (false, Some(m)),
                // Dangling links, and links to sockets and the like.
                _ => continue,
            }
        } else if file_type.is_dir() {
            (true, None)
        } else if file_type.is_file() {
            (false, None)
        } else {
            continue;
        };
        let mut segment = name;
        if dir {
            segment.push('/');
        }
        if !f(Entry { segment, dir, meta }) {
            break;
        }
    }
    Ok(())
}

/// Whether the directory `dir` holds an object at any depth. Reading stops at the first.
fn holds_object(dir: &Path, ancestors: &mut Vec<(u64, u64)>) -> io::Result<bool> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if gone(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return Ok(false);
    }
    let mut found = false;
    let mut folders = Vec::new();
    for_each_entry(dir, |entry| {
        found = !entry.dir;
        if entry.dir {
            folders.push(entry.segment);
        }
        !found
    })?;
    if found {
        return Ok(true);
    }
    ancestors.push(id);
    let mut found = Ok(false);
    for folder in folders {
        found = holds_object(&dir.join(folder.trim_end_matches('/')), ancestors);
        if !matches!(found, Ok(false)) {
            break;
        }
    }
    ancestors.pop();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, key: &str) {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, key).unwrap();
    }

    fn list(bucket: &Path, query: &Query<'_>) -> io::Result<Page> {
        super::list(bucket, query, &DirCache::default())
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.objects.iter().map(|o| o.key.as_str()).collect()
    }

    fn query<'a>(prefix: &'a str, after: Option<&'a str>, limit: usize) -> Query<'a> {
        Query { prefix, after, delimited: false, limit }
    }

    #[test]
    fn a_folder_sorts_where_its_keys_fall() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["a/b", "a.txt", "a0", "a-", "b/c/d", "b/c.e", "ab/x"] {
            touch(dir.path(), key);
        }
        let page = list(dir.path(), &query("", None, 1000)).unwrap();
        let mut expected = vec!["a/b", "a.txt", "a0", "a-", "b/c/d", "b/c.e", "ab/x"];
        expected.sort_unstable();
        assert_eq!(keys(&page), expected);
        assert!(!page.truncated);
    }

    #[test]
    fn pages_resume_after_the_last_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for i in 0..50 {
            let key = format!("{}/{}/f{i}", i % 3, i % 7);
            touch(dir.path(), &key);
            all.push(key);
        }
        all.sort_unstable();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list(dir.path(), &query("", after.as_deref(), 7)).unwrap();
            assert!(page.objects.len() <= 7);
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            if !page.truncated {
                break;
            }
            after = page.last;
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn a_prefix_inside_a_name_and_a_marker_inside_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["x/ab/1", "x/ab/2", "x/abc", "x/b", "x/a"] {
            touch(dir.path(), key);
        }
        assert_eq!(keys(&list(dir.path(), &query("x/ab", None, 10)).unwrap()), ["x/ab/1", "x/ab/2", "x/abc"]);
        assert_eq!(keys(&list(dir.path(), &query("x/", Some("x/ab/1"), 10)).unwrap()), ["x/ab/2", "x/abc", "x/b"]);
        assert_eq!(keys(&list(dir.path(), &query("nothing/", None, 10)).unwrap()), Vec::<&str>::new());
        assert_eq!(keys(&list(dir.path(), &query("x//", None, 10)).unwrap()), Vec::<&str>::new());
        assert_eq!(keys(&list(dir.path(), &query("x/ab/", Some("y"), 10)).unwrap()), Vec::<&str>::new());
        assert_eq!(keys(&list(dir.path(), &query("x/ab/", Some("x/a"), 10)).unwrap()), ["x/ab/1", "x/ab/2"]);
    }

    #[test]
    fn the_delimiter_rolls_up_folders_that_hold_objects() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["p/a/1", "p/b", "p/c/d/2", "q"] {
            touch(dir.path(), key);
        }
        std::fs::create_dir_all(dir.path().join("p/empty/inner")).unwrap();
        let q = Query { prefix: "p/", after: None, delimited: true, limit: 10 };
        let page = list(dir.path(), &q).unwrap();
        assert_eq!(keys(&page), ["p/b"]);
        assert_eq!(page.prefixes, ["p/a/", "p/c/"]);
        let q = Query { prefix: "p/", after: None, delimited: true, limit: 2 };
        let page = list(dir.path(), &q).unwrap();
        assert!(page.truncated);
        assert_eq!(page.last.as_deref(), Some("p/b"));
        let q = Query { prefix: "p/", after: Some("p/b"), delimited: true, limit: 2 };
        let page = list(dir.path(), &q).unwrap();
        assert_eq!(page.prefixes, ["p/c/"]);
        assert!(!page.truncated);
    }

    #[test]
    fn links_are_followed_but_not_around_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "real/f");
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("real/up")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("dangling")).unwrap();
        let page = list(dir.path(), &query("", None, 1000)).unwrap();
        // real/up leads back to the bucket, which is being walked.
        assert_eq!(keys(&page), ["linked/f", "real/f"]);
    }

    #[test]
    fn reserved_names_are_not_keys() {
        let dir = tempfile::tempdir().unwrap();
        for key in [
            "k",
            ".csvlake.1.2.object",
            "sub/.csvlake.k.metadata.json",
            ".csvlake-s3-x/b/k",
            ".bucket-YQ.object-aw.metadata.json",
            ".tmp.1.internal.part",
            ".upload_id-u.part-1",
            ".hidden",
        ] {
            touch(dir.path(), key);
        }
        let page = list(dir.path(), &query("", None, 1000)).unwrap();
        assert_eq!(keys(&page), [".hidden", "k"]);
    }

    /// Sets a directory's modification time an hour back, as if it had settled.
    fn settle(dir: &Path) {
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::open(dir).unwrap().set_modified(hour_ago).unwrap();
    }

    fn all_pages(bucket: &Path, prefix: &str, after: Option<&str>, cache: &DirCache) -> Vec<String> {
        let mut seen = Vec::new();
        let mut after = after.map(str::to_owned);
        loop {
            let q = Query { prefix, after: after.as_deref(), delimited: false, limit: 97 };
            let page = super::list(bucket, &q, cache).unwrap();
            seen.extend(page.objects.into_iter().map(|o| o.key));
            if !page.truncated {
                return seen;
            }
            after = page.last;
        }
    }

    #[test]
    fn a_large_settled_folder_is_read_once_and_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for i in 0..CACHE_MIN_ENTRIES + 100 {
            all.push(format!("big/f{i:05}"));
        }
        all.extend(["big/f00100x/a", "big/f00100x/b", "big/g/c", "small/s"].map(String::from));
        for key in &all {
            touch(dir.path(), key);
        }
        all.sort_unstable();
        settle(&dir.path().join("big"));
        let cache = DirCache::default();
        assert_eq!(all_pages(dir.path(), "", None, &cache), all);
        let cached: Vec<PathBuf> = cache.0.lock().unwrap().iter().map(|c| c.path.clone()).collect();
        assert_eq!(cached, [dir.path().join("big")]);

        // From the cached names: a marker inside a sub-folder, a prefix, both.
        let after = |all: &[String], a: &str| all.iter().filter(|k| k.as_str() > a).cloned().collect::<Vec<_>>();
        assert_eq!(all_pages(dir.path(), "", Some("big/f00100x/a"), &cache), after(&all, "big/f00100x/a"));
        assert_eq!(all_pages(dir.path(), "", Some("big/f00100"), &cache), after(&all, "big/f00100"));
        let within = |p: &str| all.iter().filter(|k| k.starts_with(p)).cloned().collect::<Vec<_>>();
        assert_eq!(all_pages(dir.path(), "big/f001", None, &cache), within("big/f001"));
        let both: Vec<String> = within("big/f001").into_iter().filter(|k| k.as_str() > "big/f00150").collect();
        assert_eq!(all_pages(dir.path(), "big/f001", Some("big/f00150"), &cache), both);
        let q = Query { prefix: "big/", after: Some("big/f00100x/"), delimited: true, limit: 3 };
        let page = super::list(dir.path(), &q, &cache).unwrap();
        assert_eq!(keys(&page), ["big/f00101", "big/f00102", "big/f00103"]);
        assert!(page.prefixes.is_empty());

        // A change moves the folder's modification time: it is read again.
        touch(dir.path(), "big/f00200z");
        std::fs::remove_file(dir.path().join("big/f00300")).unwrap();
        all.push("big/f00200z".into());
        all.retain(|k| k != "big/f00300");
        all.sort_unstable();
        assert_eq!(all_pages(dir.path(), "", Some("big/f00150"), &cache), after(&all, "big/f00150"));
        // Not settled any more, so not kept.
        assert!(cache.0.lock().unwrap().is_empty());
    }
}
