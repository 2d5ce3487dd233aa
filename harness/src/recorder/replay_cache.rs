//! Recordings already read for replay, kept parsed in memory while their blob file is unchanged.
//!
//! A load test or a benchmark replays the same recordings thousands of times a second; reading
//! and parsing the blob every time was the largest part of a replayed request after
//! canonicalization. A cached recording is used only while its file has the stamp it was read
//! with ([`FileStamp`]: size, modification and status-change times, device and inode; one `stat`
//! a request), so a recording written meanwhile by this process, another process or `git
//! checkout` is read again. Bounded by the blobs' total size
//! ([`CACHE_BYTES`]); least recently used entries go first (`quick_cache`).

use std::path::Path;
use std::sync::Arc;

use support::file_stamp::FileStamp;

use super::format::Replayable;

/// How many bytes of blob files the cache holds at most.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct Entry {
    identity: FileStamp,
    recording: Arc<Replayable>,
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
        ReplayCache { entries }
    }
}

impl ReplayCache {
    /// The recording of `key`, from the cache when `path` is still the file it was read from,
    /// else read with `read` and cached (unless written in the last two seconds). `Ok(None)` when
    /// there is no such file.
    pub fn get_or_read<E>(
        &self,
        key: &str,
        path: &Path,
        read: impl FnOnce() -> Result<Option<Replayable>, E>,
    ) -> Result<Option<Arc<Replayable>>, E> {
        let Ok(meta) = std::fs::metadata(path) else {
            // Missing (or unreadable: `read` reports why).
            self.entries.remove(key);
            return read().map(|r| r.map(Arc::new));
        };
        let identity = FileStamp::of(&meta);
        if let Some(entry) = self.entries.get(key)
            && entry.identity == identity
        {
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
        self.entries.insert(
            key.to_owned(),
            Entry {
                identity,
                recording: recording.clone(),
            },
        );
        Ok(Some(recording))
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
}
