//! Recordings already read for replay, kept parsed in memory while their blob file is unchanged.
//!
//! A load test or a benchmark replays the same recordings thousands of times a second; reading
//! and parsing the blob every time was the largest part of a replayed request after
//! canonicalization. A cached recording is used only while its file has the stamp it was read
//! with ([`FileStamp`]: size, modification and status-change times, device and inode; one `stat`
//! a request), so a recording written meanwhile by this process, another process or `git
//! checkout` is read again. Once the cache has served [`WATCH_AFTER_HITS`] lookups that way it
//! watches the directory instead ([`BlobWatch`], inotify on Linux): a lookup then reads the
//! watch's queue of changes, which costs less than the `stat` and is as current. Bounded by the
//! blobs' total size ([`CACHE_BYTES`]); least recently used entries go first (`quick_cache`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use support::file_stamp::FileStamp;
use support::sync::lock;

use super::blob_watch::{BlobWatch, Change};
use super::format::Replayable;

/// Lookups checked with `stat` before the cache watches its directory instead: a store that
/// replays a few recordings does not take an inotify instance (128 a user by default).
pub const WATCH_AFTER_HITS: u32 = 1_000;

/// How many bytes of blob files the cache holds at most.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct Entry {
    identity: FileStamp,
    recording: Arc<Replayable>,
    /// Checked against its file after the watch started: every later change to the file is in
    /// the watch's queue. An entry from before may have missed one, and is checked with `stat`.
    watched: bool,
}

#[derive(Clone)]
struct BySize;

impl quick_cache::Weighter<String, Entry> for BySize {
    fn weight(&self, _key: &String, entry: &Entry) -> u64 {
        entry.identity.len().max(1)
    }
}

/// Parsed recordings by key (see the module docs).
pub struct ReplayCache {
    entries: quick_cache::sync::Cache<String, Entry, BySize>,
    /// The blobs' directory, watched once the cache is hot; none: `stat` always.
    dir: Option<PathBuf>,
    /// Lookups checked with `stat` so far, until the watch starts.
    checked: AtomicU32,
    watch_after: u32,
    /// Set when the watch was started; `None` inside once it could not be, or is lost.
    watch: OnceLock<Mutex<Option<BlobWatch>>>,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// The cache's shards. Each holds an equal part of [`CACHE_BYTES`], and a blob larger than its
/// part is never cached: quick_cache's default (four per core) would leave 500 KiB a shard on a
/// 32-core machine. Replay takes a shard's lock for a lookup only, so few shards suffice.
const SHARDS: usize = 4;

impl Default for ReplayCache {
    fn default() -> Self {
        let options = quick_cache::OptionsBuilder::new()
            // Blobs of a few kilobytes.
            .estimated_items_capacity((CACHE_BYTES / 4096) as usize)
            .weight_capacity(CACHE_BYTES)
            .shards(SHARDS)
            .build();
        let entries = match options {
            Ok(options) => quick_cache::sync::Cache::with_options(
                options,
                BySize,
                quick_cache::DefaultHashBuilder::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            // Only a zero capacity or shard count is refused: not these constants.
            Err(_) => quick_cache::sync::Cache::with_weighter(
                (CACHE_BYTES / 4096) as usize,
                CACHE_BYTES,
                BySize,
            ),
        };
        ReplayCache {
            entries,
            dir: None,
            checked: AtomicU32::new(0),
            watch_after: WATCH_AFTER_HITS,
            watch: OnceLock::new(),
        }
    }
}

impl ReplayCache {
    /// A cache of the blobs in `dir`, which it watches once hot (see the module docs).
    pub fn watching(dir: &Path) -> Self {
        ReplayCache {
            dir: Some(dir.to_owned()),
            ..ReplayCache::default()
        }
    }

    /// The recording of `key`, from the cache when `path` is still the file it was read from,
    /// else read with `read` and cached (unless written in the last two seconds). `Ok(None)` when
    /// there is no such file.
    pub fn get_or_read<E>(
        &self,
        key: &str,
        path: &Path,
        read: impl FnOnce() -> Result<Option<Replayable>, E>,
    ) -> Result<Option<Arc<Replayable>>, E> {
        let watched = self.take_changes();
        if watched
            && let Some(entry) = self.entries.get(key)
            && entry.watched
        {
            return Ok(Some(entry.recording));
        }
        let Ok(meta) = std::fs::metadata(path) else {
            // Missing (or unreadable: `read` reports why).
            self.entries.remove(key);
            return read().map(|r| r.map(Arc::new));
        };
        let identity = FileStamp::of(&meta);
        if let Some(entry) = self.entries.get(key)
            && entry.identity == identity
        {
            if watched {
                // Unchanged since before the watch, and watched from now on.
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        watched: true,
                        ..entry.clone()
                    },
                );
            } else {
                self.count_checked_hit();
            }
            return Ok(Some(entry.recording));
        }
        let Some(recording) = read()?.map(Arc::new) else {
            self.entries.remove(key);
            return Ok(None);
        };
        // A file written moments ago may be replaced again within the file system's timestamp
        // granularity, by a file of the same size that reuses the inode: such a "racy" file (as
        // git calls it) is not cached until it is older than that.
        if !identity.is_settled() {
            return Ok(Some(recording));
        }
        // Cached under the identity seen before reading: a file replaced while it was read then
        // differs at the next request and is read again (or its change is in the watch's queue).
        self.entries.insert(
            key.to_owned(),
            Entry {
                identity,
                recording: recording.clone(),
                watched,
            },
        );
        Ok(Some(recording))
    }

    /// When the directory is watched: forgets the recordings whose blobs changed since the last
    /// look, and says so (true). False while `stat` is the check (not yet hot, no watch here, or
    /// the watch lost: then everything is forgotten once, as changes may have gone unseen).
    fn take_changes(&self) -> bool {
        let Some(watch) = self.watch.get() else {
            return false;
        };
        // Held while the changes are applied, so that a lookup that finds the queue empty
        // cannot use an entry another lookup has taken the change of but not yet forgotten.
        let mut watch = lock(watch);
        let Some(live) = watch.as_ref() else {
            return false;
        };
        let seen = live.changes(|change| match change {
            Change::Key(key) => {
                self.entries.remove(&key);
            }
            Change::Any => self.entries.clear(),
        });
        if seen.is_err() {
            *watch = None;
            self.entries.clear();
            return false;
        }
        true
    }

    /// Counts a hit checked with `stat`; the one that makes the cache hot starts the watch.
    fn count_checked_hit(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        if self.checked.fetch_add(1, Ordering::Relaxed) + 1 == self.watch_after {
            self.watch.get_or_init(|| Mutex::new(BlobWatch::start(dir)));
        }
    }

    /// Forgets `key` (its recording was just written).
    pub fn forget(&self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn parsed(text: &str) -> Option<Replayable> {
        Some(serde_json::from_str(text).unwrap())
    }

    const BLOB_A: &str = r#"{"request":{"method":"POST","path":"/a"},"response":{"http":{"status":200,"headers":{},"body":{"json":1},"t_ms":1.0}}}"#;
    const BLOB_B: &str = r#"{"request":{"method":"POST","path":"/b"},"response":{"http":{"status":201,"headers":{},"body":{"json":22},"t_ms":1.0}}}"#;

    #[test]
    fn reads_once_while_the_file_is_unchanged_and_again_once_it_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let write_old = |path: &Path, text: &str| {
            std::fs::write(path, text).unwrap();
            let past = SystemTime::now() - std::time::Duration::from_secs(60);
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(past)
                .unwrap();
        };
        write_old(&path, BLOB_A);
        let cache = ReplayCache::default();
        let reads = std::cell::Cell::new(0);
        let read = |text: &'static str| {
            let reads = &reads;
            move || -> Result<_, ()> {
                reads.set(reads.get() + 1);
                Ok(parsed(text))
            }
        };
        let first = cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        let again = cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        assert_eq!(reads.get(), 1);
        assert!(Arc::ptr_eq(&first, &again));

        // Replaced by rename, as the store writes: a new inode.
        let tmp = dir.path().join(".k.tmp");
        write_old(&tmp, BLOB_B);
        std::fs::rename(&tmp, &path).unwrap();
        let new = cache
            .get_or_read("k", &path, read(BLOB_B))
            .unwrap()
            .unwrap();
        assert_eq!(reads.get(), 2);
        assert_eq!(new.request.path, "/b");

        // A file written just now is read every time until it is two seconds old.
        std::fs::write(&path, BLOB_A).unwrap();
        cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        assert_eq!(reads.get(), 4);

        std::fs::remove_file(&path).unwrap();
        let gone = cache.get_or_read("k", &path, || Ok::<_, ()>(None)).unwrap();
        assert!(gone.is_none());
    }
    #[cfg(target_os = "linux")]
    #[test]
    fn once_hot_it_takes_changes_from_the_watch_instead_of_stat() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("responses");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("k.json");
        let old = |path: &Path, text: &str| {
            std::fs::write(path, text).unwrap();
            let past = SystemTime::now() - std::time::Duration::from_secs(60);
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(past).unwrap();
        };
        old(&path, BLOB_A);
        let cache = ReplayCache {
            watch_after: 2,
            ..ReplayCache::watching(&dir)
        };
        let reads = std::cell::Cell::new(0);
        let read = |text: &'static str| {
            let reads = &reads;
            move || -> Result<_, ()> {
                reads.set(reads.get() + 1);
                Ok(parsed(text))
            }
        };
        let get = |path: &Path, text: &'static str| {
            cache.get_or_read("k", path, read(text)).unwrap().unwrap()
        };
        // Read once, then two hits checked with stat: the second starts the watch.
        get(&path, BLOB_A);
        assert!(cache.watch.get().is_none());
        get(&path, BLOB_A);
        get(&path, BLOB_A);
        assert!(cache.watch.get().is_some(), "the watch started");
        // The entry from before the watch is checked with stat once more, then trusted: a
        // path that is not there is not even looked at.
        get(&path, BLOB_A);
        let nowhere = dir.join("nowhere.json");
        assert_eq!(get(&nowhere, BLOB_B).request.path, "/a");
        assert_eq!(reads.get(), 1);

        // Replaced by rename, as the store writes: seen through the watch.
        let tmp = dir.join(".k.tmp");
        old(&tmp, BLOB_B);
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(get(&path, BLOB_B).request.path, "/b");
        assert_eq!(reads.get(), 2);
        assert_eq!(get(&nowhere, BLOB_A).request.path, "/b");
        // Written in place (the same size), then dated back as it was.
        old(&path, BLOB_B);
        get(&path, BLOB_B);
        assert_eq!(reads.get(), 3);

        // The directory moved away: the watch is lost, everything is forgotten, and stat is
        // the check again.
        std::fs::rename(&dir, parent.path().join("moved")).unwrap();
        let gone = cache.get_or_read("k", &path, || Ok::<_, ()>(None)).unwrap();
        assert!(gone.is_none());
        assert!(
            lock(cache.watch.get().unwrap()).is_none(),
            "the watch is lost"
        );
    }
}
