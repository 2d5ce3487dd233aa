//! Recordings already read for replay, kept parsed in memory while their blob file is unchanged.
//!
//! A load test or a benchmark replays the same recordings thousands of times a second; reading
//! and parsing the blob every time was the largest part of a replayed request after
//! canonicalization. A cached recording is used only while its file has the stamp it was read
//! with ([`FileStamp`]: size, modification and status-change times, device and inode; one `stat`
//! a request), so a recording written meanwhile by this process, another process or `git
//! checkout` is read again. Once the cache has served [`WATCH_AFTER_HITS`] lookups that way it
//! watches the directory instead ([`BlobWatch`], inotify on Linux; its module says what it does
//! not see and how that is covered): a lookup then reads the watch's queue of changes, which
//! costs less than the `stat`. Bounded by the blobs' total size ([`CACHE_BYTES`]); least recently
//! used entries go first (`quick_cache`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    /// Set when the watch was started.
    watch: OnceLock<Mutex<Watching>>,
    /// Whether the watch runs: false before it starts, and once it could not or was lost (then
    /// lookups do not take its lock).
    watching: AtomicBool,
}

/// The watch, and how many of its looks found changes.
struct Watching {
    /// `None` once it could not start, or was lost.
    watch: Option<BlobWatch>,
    /// Bumped by every look at the queue that finds a change: an entry read while it did not
    /// move was read after every change made before its insertion was applied.
    generation: u64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Whether `path` (whose metadata, links followed, is `meta`) is a file of its own: not a
/// symlink, and with no other hard link.
fn plain_file(path: &Path, meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() != 1 {
            return false;
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink())
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
            watching: AtomicBool::new(false),
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
        // The watch's generation after its changes were applied: the entry inserted below is
        // trusted without a stat only if no change came in between (see `insert`).
        let seen = self.take_changes();
        if seen.is_some()
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
        // A blob changed through a symlink or another hard link raises no event in the watched
        // directory: such a blob is always checked with stat.
        let seen = seen.filter(|_| plain_file(path, &meta));
        if let Some(entry) = self.entries.get(key)
            && entry.identity == identity
        {
            match seen {
                // Unchanged since before the watch, and watched from now on.
                Some(_) => self.insert(key, entry.clone(), seen),
                None => self.count_checked_hit(),
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
        // differs at the next request and is read again.
        let entry = Entry {
            identity,
            recording: recording.clone(),
            watched: false,
        };
        self.insert(key, entry, seen);
        Ok(Some(recording))
    }

    /// Caches `entry`, checked against its file after the watch's generation `seen` (none: not
    /// to be trusted without a stat). It is trusted without a stat (`watched`) only when no
    /// change came since: another lookup may have taken the change of this very blob off the
    /// queue (and forgotten an entry not yet there) while this one was reading it. Inserted
    /// under the watch's lock, after a last look: a change after that is forgotten by the next
    /// lookup.
    fn insert(&self, key: &str, mut entry: Entry, seen: Option<u64>) {
        entry.watched = false;
        let Some(watch) = seen.and(self.watch.get()) else {
            self.entries.insert(key.to_owned(), entry);
            return;
        };
        let mut watch = lock(watch);
        let now = self.apply_changes(&mut watch);
        entry.watched = now.is_some() && now == seen;
        self.entries.insert(key.to_owned(), entry);
    }

    /// When the directory is watched: forgets the recordings whose blobs changed since the last
    /// look, and gives the watch's generation. `None` while `stat` is the check (not yet hot, no
    /// watch here, or the watch lost).
    fn take_changes(&self) -> Option<u64> {
        if !self.watching.load(Ordering::Acquire) {
            return None;
        }
        let watch = self.watch.get()?;
        // Held while the changes are applied, so that a lookup that finds the queue empty
        // cannot use an entry another lookup has taken the change of but not yet forgotten.
        self.apply_changes(&mut lock(watch))
    }

    /// Applies the changes in the watch's queue (see [`ReplayCache::take_changes`]). A lost
    /// watch forgets everything once, as changes may have gone unseen.
    fn apply_changes(&self, watching: &mut Watching) -> Option<u64> {
        let live = watching.watch.as_mut()?;
        let mut changed = false;
        let seen = live.changes(|change| {
            changed = true;
            match change {
                Change::Key(key) => {
                    self.entries.remove(&key);
                }
                Change::Any => self.entries.clear(),
            }
        });
        if seen.is_err() {
            watching.watch = None;
            self.watching.store(false, Ordering::Release);
            self.entries.clear();
            return None;
        }
        if changed {
            watching.generation += 1;
        }
        Some(watching.generation)
    }

    /// Counts a hit checked with `stat`; the one that makes the cache hot starts the watch.
    fn count_checked_hit(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        if self.watch.get().is_some() {
            return;
        }
        if self.checked.fetch_add(1, Ordering::Relaxed).wrapping_add(1) == self.watch_after {
            self.watch.get_or_init(|| {
                let watch = BlobWatch::start(dir);
                self.watching.store(watch.is_some(), Ordering::Release);
                Mutex::new(Watching {
                    watch,
                    generation: 0,
                })
            });
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

    /// Writes `text` to `path` and dates it a minute back: a settled file, which may be cached.
    fn write_old(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(past).unwrap();
    }

    /// Blob reads, counted: `of(text)` is a reader that parses `text`.
    #[derive(Default)]
    struct Reads(std::cell::Cell<usize>);

    impl Reads {
        fn of(&self, text: &'static str) -> impl FnOnce() -> Result<Option<Replayable>, ()> + '_ {
            move || {
                self.0.set(self.0.get() + 1);
                Ok(parsed(text))
            }
        }

        fn count(&self) -> usize {
            self.0.get()
        }
    }

    #[test]
    fn reads_once_while_the_file_is_unchanged_and_again_once_it_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        write_old(&path, BLOB_A);
        let cache = ReplayCache::default();
        let reads = Reads::default();
        let read = |text| reads.of(text);
        let first = cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        let again = cache
            .get_or_read("k", &path, read(BLOB_A))
            .unwrap()
            .unwrap();
        assert_eq!(reads.count(), 1);
        assert!(Arc::ptr_eq(&first, &again));

        // Replaced by rename, as the store writes: a new inode.
        let tmp = dir.path().join(".k.tmp");
        write_old(&tmp, BLOB_B);
        std::fs::rename(&tmp, &path).unwrap();
        let new = cache
            .get_or_read("k", &path, read(BLOB_B))
            .unwrap()
            .unwrap();
        assert_eq!(reads.count(), 2);
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
        assert_eq!(reads.count(), 4);

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
        write_old(&path, BLOB_A);
        let cache = ReplayCache {
            watch_after: 2,
            ..ReplayCache::watching(&dir)
        };
        let reads = Reads::default();
        let read = |text| reads.of(text);
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
        assert_eq!(reads.count(), 1);

        // Replaced by rename, as the store writes: seen through the watch.
        let tmp = dir.join(".k.tmp");
        write_old(&tmp, BLOB_B);
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(get(&path, BLOB_B).request.path, "/b");
        assert_eq!(reads.count(), 2);
        assert_eq!(get(&nowhere, BLOB_A).request.path, "/b");
        // Written in place (the same size), then dated back as it was.
        write_old(&path, BLOB_B);
        get(&path, BLOB_B);
        assert_eq!(reads.count(), 3);

        // The directory moved away: the watch is lost, everything is forgotten, and stat is
        // the check again.
        std::fs::rename(&dir, parent.path().join("moved")).unwrap();
        let gone = cache.get_or_read("k", &path, || Ok::<_, ()>(None)).unwrap();
        assert!(gone.is_none());
        assert!(
            lock(cache.watch.get().unwrap()).watch.is_none(),
            "the watch is lost"
        );
        assert!(!cache.watching.load(Ordering::Relaxed));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_blob_that_is_a_symlink_is_checked_with_stat_while_watched() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("responses");
        std::fs::create_dir(&dir).unwrap();
        // The blob's bytes live outside the watched directory.
        let target = parent.path().join("elsewhere.json");
        write_old(&target, BLOB_A);
        let path = dir.join("k.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let cache = ReplayCache {
            watch_after: 1,
            ..ReplayCache::watching(&dir)
        };
        let get = |text: &'static str| {
            cache
                .get_or_read("k", &path, move || Ok::<_, ()>(parsed(text)))
                .unwrap()
                .unwrap()
        };
        for _ in 0..3 {
            assert_eq!(get(BLOB_A).request.path, "/a");
        }
        assert!(cache.watching.load(Ordering::Relaxed));
        // Changed through the link: no event in the directory, but the stat sees it.
        write_old(&target, BLOB_B);
        assert_eq!(get(BLOB_B).request.path, "/b");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_entry_read_while_its_change_was_taken_by_another_lookup_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        write_old(&path, BLOB_A);
        let other = dir.path().join("other.json");
        write_old(&other, BLOB_B);
        let cache = ReplayCache {
            watch_after: 1,
            ..ReplayCache::watching(dir.path())
        };
        let read = |text: &'static str| move || -> Result<_, ()> { Ok(parsed(text)) };
        // Hot: the watch runs.
        cache.get_or_read("other", &other, read(BLOB_B)).unwrap();
        cache.get_or_read("other", &other, read(BLOB_B)).unwrap();
        assert!(cache.watching.load(Ordering::Relaxed));

        // A lookup of "k" reads the old blob; meanwhile the blob is replaced and another lookup
        // takes that change off the queue (there was no entry yet to forget).
        let stale = cache
            .get_or_read("k", &path, || {
                let tmp = dir.path().join(".k.tmp");
                write_old(&tmp, BLOB_B);
                std::fs::rename(&tmp, &path).unwrap();
                cache.get_or_read("other", &other, read(BLOB_B)).unwrap();
                Ok::<_, ()>(parsed(BLOB_A))
            })
            .unwrap()
            .unwrap();
        assert_eq!(stale.request.path, "/a", "what was read");
        // The next lookup does not trust it: it checks the file, and reads the new blob.
        let now = cache
            .get_or_read("k", &path, read(BLOB_B))
            .unwrap()
            .unwrap();
        assert_eq!(now.request.path, "/b");
    }
}
