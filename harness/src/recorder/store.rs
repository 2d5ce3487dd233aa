//! Where recordings are stored: `responses/<hash>.json` blobs (the source of truth) and the
//! `index.sqlite` index over them.
//!
//! Lookups read the blob named by the key directly, so they cost the same with 100 or 100,000
//! recordings. The index serves queries (nearest recordings for a miss, listings, pruning). When
//! the store opens, the index is checked against the blobs and repaired: a missing, unreadable
//! (e.g. merge-conflicted) or stale index is rebuilt from the blobs. Blob writes are atomic
//! (temporary file and rename); the index runs in WAL mode with a busy timeout, and every write
//! is one short `BEGIN IMMEDIATE` transaction, so several processes can record into one
//! directory at once.
//!
//! Git-friendly: the index is a cache, never committed (the store writes a `.gitignore` into the
//! recordings directory that says so, and rebuilds the index from the blobs when it is missing),
//! so branches that each recorded merge without conflict; and re-recording an answer that did
//! not change, ids, timestamps and timings aside ([`same_but_volatile`]), leaves its blob's bytes
//! as they were. Housekeeping at open: temporary files left by killed writers are removed (and
//! counted in the [`SyncReport`]); blobs are written readable by all (0644).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::error::RecorderError;
use super::format::{Recording, Replayable};
use super::layout;
use super::replay_cache::ReplayCache;

/// Name of the index file inside the recordings directory.
pub const INDEX_FILE: &str = "index.sqlite";
/// Name of the blob directory inside the recordings directory.
pub const RESPONSES_DIR: &str = "responses";
const LOCK_FILE: &str = ".index.lock";
/// What the store keeps out of git, written to the recordings directory's `.gitignore`.
pub const GITIGNORE: &str = "# Written by the harness recorder: the index is a cache rebuilt from the blobs.\n\
index.sqlite\nindex.sqlite-wal\nindex.sqlite-shm\n.index.lock\n.locks/\nresponses/.*.tmp\n";
/// The directory of the per-key recording locks ([`Store::lock_key`]).
const KEY_LOCKS_DIR: &str = ".locks";
/// Temporary blob files older than this are left over by a killed writer.
const STALE_TMP_AGE: Duration = Duration::from_secs(600);
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recordings (
    request_hash  TEXT PRIMARY KEY,
    test_id       TEXT,
    occurrence    INTEGER NOT NULL DEFAULT 0,
    method        TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    model         TEXT,
    timestamp     TEXT NOT NULL,
    is_streaming  BOOLEAN NOT NULL,
    status        INTEGER,
    response_file TEXT NOT NULL,
    blob_size     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_by_endpoint ON recordings (endpoint, model);
CREATE INDEX IF NOT EXISTS recordings_by_test ON recordings (test_id);
";

/// One row of the index.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexRow {
    /// The request key.
    pub request_hash: String,
    /// The test identity.
    pub test_id: Option<String>,
    /// Occurrence index within the test.
    pub occurrence: u32,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub endpoint: String,
    /// Model named in the body.
    pub model: Option<String>,
    /// When it was recorded (RFC 3339).
    pub timestamp: String,
    /// Whether the response is a stream.
    pub is_streaming: bool,
    /// HTTP status (none for a transport error).
    pub status: Option<u16>,
    /// Blob path relative to the recordings directory.
    pub response_file: String,
}

/// What opening the store found and repaired.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    /// The index file was missing or unreadable and was created anew.
    pub recreated: bool,
    /// Rows added for blobs the index did not know.
    pub added: usize,
    /// Rows refreshed because their blob changed.
    pub updated: usize,
    /// Rows removed because their blob is gone.
    pub removed: usize,
    /// Blobs that could not be parsed (left out of the index), with the reason.
    pub invalid: Vec<(PathBuf, String)>,
    /// Temporary files left by writers that were killed (older than 10 minutes), removed.
    pub stale_temp_files: usize,
}

/// A held recording lock of a key ([`Store::lock_key`]); dropping it releases the lock.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

/// The recordings directory.
///
/// ```
/// use harness::recorder::Store;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// assert!(store.rows()?.is_empty());
/// assert!(store.get("0123abcd")?.is_none());
/// assert!(store.blob_path("0123abcd").starts_with(dir.path()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    dir: PathBuf,
    responses: PathBuf,
    index_path: PathBuf,
    conn: Mutex<Connection>,
    report: SyncReport,
    replays: ReplayCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// The index-repair lock of the directory (`.index.lock`), held while the returned file is open.
fn file_lock(dir: &Path) -> Result<File, RecorderError> {
    lock_path(&dir.join(LOCK_FILE))
}

/// Opens (creating) `path` and takes an exclusive lock on it, waiting for other holders.
fn lock_path(path: &Path) -> Result<File, RecorderError> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| RecorderError::io(path, e))?;
    f.lock().map_err(|e| RecorderError::io(path, e))?;
    Ok(f)
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    // Reading the table proves the file is a database with our schema.
    conn.query_row("SELECT count(*) FROM recordings", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the store at `dir`, and repairs the index against the blobs.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, RecorderError> {
        let dir = dir.as_ref().to_path_buf();
        let responses = dir.join(RESPONSES_DIR);
        std::fs::create_dir_all(&responses).map_err(|e| RecorderError::io(&responses, e))?;
        let index_path = dir.join(INDEX_FILE);
        // One process at a time checks and repairs the index; recording itself needs no lock.
        let lock = file_lock(&dir)?;
        ensure_gitignore(&dir)?;
        let mut report = SyncReport {
            stale_temp_files: remove_stale_temp_files(&responses),
            ..SyncReport::default()
        };
        let conn = match open_connection(&index_path) {
            Ok(c) => c,
            Err(first) => {
                tracing::warn!(
                    "recordings index {} is unusable ({first}); rebuilding it from the blobs",
                    index_path.display()
                );
                for suffix in ["", "-wal", "-shm"] {
                    let p = PathBuf::from(format!("{}{suffix}", index_path.display()));
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(RecorderError::io(p, e)),
                    }
                }
                report.recreated = true;
                open_connection(&index_path).map_err(|source| RecorderError::Index {
                    path: index_path.clone(),
                    source,
                })?
            }
        };
        let replays = ReplayCache::watching(&responses);
        let mut store = Store {
            dir,
            responses,
            index_path,
            conn: Mutex::new(conn),
            report,
            replays,
        };
        store.sync()?;
        drop(lock);
        Ok(store)
    }

    /// What opening the store repaired.
    pub fn sync_report(&self) -> &SyncReport {
        &self.report
    }

    /// The recordings directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        support::sync::lock(&self.conn)
    }

    fn index_err(&self, source: rusqlite::Error) -> RecorderError {
        RecorderError::Index {
            path: self.index_path.clone(),
            source,
        }
    }

    /// Path of the blob for a key.
    pub fn blob_path(&self, hash: &str) -> PathBuf {
        self.responses.join(format!("{hash}.json"))
    }

    /// Takes the recording lock of a key, waiting (on a blocking thread) while another recorder,
    /// in this process or another, holds it: the lock under which a key missing from the store
    /// is recorded once, its concurrent requesters then replaying that recording (single
    /// flight). One lock file a key (`.locks/<hash>.lock`, empty, kept out of git): a recorder
    /// holding one key's lock (a stream being read) may request other keys meanwhile without
    /// waiting on itself. Released when the [`KeyLock`] is dropped.
    pub async fn lock_key(&self, hash: &str) -> Result<KeyLock, RecorderError> {
        let dir = self.dir.join(KEY_LOCKS_DIR);
        let name: String = hash.chars().filter(char::is_ascii_hexdigit).collect();
        let path = dir.join(format!("{name}.lock"));
        let wait = move || -> Result<File, RecorderError> {
            std::fs::create_dir_all(&dir).map_err(|e| RecorderError::io(&dir, e))?;
            lock_path(&path)
        };
        let file = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::spawn_blocking(wait).await.map_err(|e| {
                RecorderError::io(&self.dir, std::io::Error::other(e.to_string()))
            })??,
            Err(_) => wait()?,
        };
        Ok(KeyLock { _file: file })
    }

    /// Reads the recording for a key, if there is one.
    pub fn get(&self, hash: &str) -> Result<Option<Recording>, RecorderError> {
        read_blob(&self.blob_path(hash))
    }

    /// Reads only what replay needs of the recording for a key, if there is one; read once
    /// while its blob file is unchanged ([`ReplayCache`]).
    pub fn get_replayable(&self, hash: &str) -> Result<Option<Arc<Replayable>>, RecorderError> {
        let path = self.blob_path(hash);
        self.replays.get_or_read(hash, &path, || read_blob(&path))
    }

    /// Writes a recording (atomically replacing any previous one with the same key) and indexes it.
    /// A recording that equals the stored one but for its volatile parts (ids, timestamps,
    /// timings: [`same_but_volatile`]) is not written: the blob keeps its bytes.
    pub fn put(&self, rec: &Recording) -> Result<(), RecorderError> {
        let path = self.blob_path(&rec.request_hash);
        let mut text = blob_text(rec).map_err(|e| RecorderError::BadRecording {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let depth = nesting_depth(&text);
        if depth > MAX_BLOB_DEPTH {
            let wrapper = BODY_WRAPPER_DEPTH;
            return Err(RecorderError::TooDeep {
                request: super::format::describe_request(
                    &rec.request.method,
                    &rec.request.path,
                    &rec.request_hash,
                    rec.test_id.as_deref(),
                ),
                depth,
                limit: MAX_BLOB_DEPTH,
                body: depth.saturating_sub(wrapper),
                max_body: MAX_BLOB_DEPTH - wrapper,
            });
        }
        text.push(b'\n');
        if let Ok(old) = std::fs::read(&path)
            && same_but_volatile(&old, &text)
        {
            return Ok(());
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".")
            .suffix(".tmp")
            .tempfile_in(&self.responses)
            .map_err(|e| RecorderError::io(&self.responses, e))?;
        tmp.write_all(&text)
            .map_err(|e| RecorderError::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_data()
            .map_err(|e| RecorderError::io(tmp.path(), e))?;
        set_readable(tmp.as_file()).map_err(|e| RecorderError::io(tmp.path(), e))?;
        // The index's write lock is held from before the rename until the row is committed, so
        // two processes replacing the same key leave the blob and the row of the same writer.
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.index_err(e))?;
        tmp.persist(&path)
            .map_err(|e| RecorderError::io(&path, e.error))?;
        upsert(&tx, &row_of(rec), text.len() as u64).map_err(|e| self.index_err(e))?;
        self.replays.forget(&rec.request_hash);
        tx.commit().map_err(|e| self.index_err(e))
    }

    /// Brings the index in line with the blobs: adds, refreshes and removes rows. Runs in one
    /// write transaction taken before the directory is listed, so a concurrent [`Store::put`]
    /// (which renames its blob under the same lock) is wholly before or wholly after it.
    fn sync(&mut self) -> Result<(), RecorderError> {
        let responses = self.responses.clone();
        let index_path = self.index_path.clone();
        let index_err = |source| RecorderError::Index {
            path: index_path.clone(),
            source,
        };
        let mut report = std::mem::take(&mut self.report);
        let mut conn = support::sync::lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(index_err)?;
        let mut on_disk: HashMap<String, u64> = HashMap::new();
        let entries =
            std::fs::read_dir(&responses).map_err(|e| RecorderError::io(&responses, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RecorderError::io(&responses, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hash) = name.strip_suffix(".json") else {
                continue;
            };
            if hash.starts_with('.') {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            on_disk.insert(hash.to_owned(), size);
        }
        let indexed: HashMap<String, u64> = {
            let mut stmt = tx
                .prepare("SELECT request_hash, blob_size FROM recordings")
                .map_err(index_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, checked::<u64>(r, "blob_size")?))
                })
                .map_err(index_err)?;
            rows.collect::<Result<_, _>>().map_err(index_err)?
        };
        for (hash, size) in &on_disk {
            let existed = match indexed.get(hash) {
                None => false,
                Some(s) if s != size => true,
                Some(_) => continue,
            };
            let blob = responses.join(format!("{hash}.json"));
            match read_blob::<Recording>(&blob) {
                Ok(Some(rec)) if rec.request_hash == *hash => {
                    if existed {
                        report.updated += 1;
                    } else {
                        report.added += 1;
                    }
                    upsert(&tx, &row_of(&rec), *size).map_err(index_err)?;
                }
                Ok(Some(rec)) => report.invalid.push((
                    blob,
                    format!(
                        "its request_hash is {} but its file name says {hash}",
                        rec.request_hash
                    ),
                )),
                Ok(None) => {}
                Err(e) => report.invalid.push((blob, e.to_string())),
            }
        }
        for hash in indexed.keys().filter(|h| !on_disk.contains_key(*h)) {
            tx.execute(
                "DELETE FROM recordings WHERE request_hash = ?1",
                params![hash],
            )
            .map_err(index_err)?;
            report.removed += 1;
        }
        tx.commit().map_err(index_err)?;
        drop(conn);
        for (path, why) in &report.invalid {
            tracing::warn!("recording {} left out of the index: {why}", path.display());
        }
        self.report = report;
        Ok(())
    }

    /// Every row of the index, ordered by endpoint, test and occurrence.
    pub fn rows(&self) -> Result<Vec<IndexRow>, RecorderError> {
        self.query(
            "SELECT * FROM recordings ORDER BY endpoint, test_id, occurrence, request_hash",
            params![],
        )
    }

    /// One row by key.
    pub fn row(&self, hash: &str) -> Result<Option<IndexRow>, RecorderError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT * FROM recordings WHERE request_hash = ?1",
            params![hash],
            read_row,
        )
        .optional()
        .map_err(|e| self.index_err(e))
    }

    /// Recordings similar to a request: same method and endpoint (same model first, then same
    /// test, newest first).
    pub fn nearest(
        &self,
        method: &str,
        endpoint: &str,
        model: Option<&str>,
        test_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<IndexRow>, RecorderError> {
        self.query(
            "SELECT * FROM recordings WHERE method = ?1 AND endpoint = ?2
             ORDER BY (model IS ?3) DESC, (test_id IS ?4) DESC, timestamp DESC LIMIT ?5",
            params![
                method,
                endpoint,
                model,
                test_id,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
    }

    /// Deletes recordings by key (blob and row).
    pub fn delete(&self, hashes: &[String]) -> Result<usize, RecorderError> {
        let mut n = 0;
        for h in hashes {
            let path = self.blob_path(h);
            match std::fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RecorderError::io(path, e)),
            }
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.index_err(e))?;
        for h in hashes {
            tx.execute("DELETE FROM recordings WHERE request_hash = ?1", params![h])
                .map_err(|e| self.index_err(e))?;
        }
        tx.commit().map_err(|e| self.index_err(e))?;
        Ok(n)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<IndexRow>, RecorderError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql).map_err(|e| self.index_err(e))?;
        let rows = stmt
            .query_map(params, read_row)
            .map_err(|e| self.index_err(e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| self.index_err(e))
    }

    /// Folds the write-ahead log into `index.sqlite`, so the file alone holds the whole index
    /// (e.g. before committing it). Also done when the store is dropped.
    pub fn checkpoint(&self) -> Result<(), RecorderError> {
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.index_err(e))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::debug!("checkpoint of the recordings index failed: {e}");
        }
    }
}

/// Writes the recordings directory's `.gitignore` ([`GITIGNORE`]) unless one exists.
fn ensure_gitignore(dir: &Path) -> Result<(), RecorderError> {
    let path = dir.join(".gitignore");
    if path.exists() {
        return Ok(());
    }
    std::fs::write(&path, GITIGNORE).map_err(|e| RecorderError::io(&path, e))
}

/// Removes `responses/.*.tmp` files older than [`STALE_TMP_AGE`] (a writer killed between
/// creating and renaming its blob); younger ones may be in flight. Returns how many.
fn remove_stale_temp_files(responses: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(responses) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_TMP_AGE);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(
                "removed {}, left by a writer that was killed",
                entry.path().display()
            );
            removed += 1;
        }
    }
    removed
}

#[cfg(unix)]
fn set_readable(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &File) -> std::io::Result<()> {
    Ok(())
}

/// Keys whose values change between two recordings of the same answer: ids the provider mints,
/// timestamps, timings, MCP session ids.
const VOLATILE_KEYS: &[&str] = &[
    "id",
    "created",
    "created_at",
    "system_fingerprint",
    "t_ms",
    "recorded_at",
    "harness_version",
    "timings",
    "mcp-session-id",
];

/// Whether two blob texts record the same exchange, their volatile parts
/// ([`VOLATILE_KEYS`], at any depth, also inside stream events' `data:` JSON) aside.
pub fn same_but_volatile(old: &[u8], new: &[u8]) -> bool {
    // The request, most of a large blob's bytes, is byte for byte the same when the same key is
    // recorded again: then only the rest is parsed, with the request left out of both (a
    // syntax pass over two 4 MB texts was a tenth of recording a 4 MB conversation).
    if let Some(span) = layout::member_value_span(new, "request")
        && old.get(..span.end) == new.get(..span.end)
    {
        let without_request =
            |text: &[u8]| [&text[..span.start], b"null", &text[span.end..]].concat();
        return same_members(&without_request(old), &without_request(new));
    }
    same_members(old, new)
}

/// [`same_but_volatile`] member by member.
fn same_members(old: &[u8], new: &[u8]) -> bool {
    use serde_json::value::RawValue;
    // Member by member, so that the bulk (a request's conversation) is compared as text when it
    // is byte for byte the same, which it is unless its layout or its volatile fields changed.
    type Members<'a> = std::collections::BTreeMap<String, &'a RawValue>;
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<Members<'_>>(old),
        serde_json::from_slice::<Members<'_>>(new),
    ) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().all(|(name, a_raw)| {
            let Some(b_raw) = b.get(name) else {
                return false;
            };
            if a_raw.get() == b_raw.get() {
                return true;
            }
            if VOLATILE_KEYS.contains(&name.as_str()) {
                return true;
            }
            match (
                serde_json::from_str::<serde_json::Value>(a_raw.get()),
                serde_json::from_str::<serde_json::Value>(b_raw.get()),
            ) {
                (Ok(mut a), Ok(mut b)) => {
                    mask_volatile(&mut a);
                    mask_volatile(&mut b);
                    a == b
                }
                _ => false,
            }
        })
}

/// Nulls every [`VOLATILE_KEYS`] member, at any depth, also inside stream events' `data:` JSON.
fn mask_volatile(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if VOLATILE_KEYS.contains(&k.as_str()) {
                    *child = serde_json::Value::Null;
                } else {
                    mask_volatile(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_volatile),
        serde_json::Value::String(s) => {
            if let Some(data) = s.strip_prefix("data: ")
                && let Ok(mut inner) = serde_json::from_str::<serde_json::Value>(data.trim())
            {
                mask_volatile(&mut inner);
                *s = format!("data: {inner}");
            }
        }
        _ => {}
    }
}

/// A recording's blob text: [`layout::to_vec`], with the request spliced in as it was laid out
/// beforehand when it was (see [`Recording::laid_out_request`]).
fn blob_text(rec: &Recording) -> serde_json::Result<Vec<u8>> {
    /// [`Recording`]'s members, in its order, the request left `null` for the laid-out text.
    #[derive(serde::Serialize)]
    struct WithoutRequest<'a> {
        format_version: u32,
        request_hash: &'a str,
        test_id: &'a Option<String>,
        occurrence: u32,
        request: (),
        response: &'a super::format::RecordedResponse,
        metadata: &'a super::format::Metadata,
    }
    let Some(request) = &rec.laid_out_request else {
        return layout::to_vec(rec);
    };
    let rest = layout::to_vec(&WithoutRequest {
        format_version: rec.format_version,
        request_hash: &rec.request_hash,
        test_id: &rec.test_id,
        occurrence: rec.occurrence,
        request: (),
        response: &rec.response,
        metadata: &rec.metadata,
    })?;
    let Some(slot) = layout::member_value_span(&rest, "request") else {
        return layout::to_vec(rec);
    };
    Ok([&rest[..slot.start], request, &rest[slot.end..]].concat())
}

/// The deepest nesting of arrays and objects `serde_json` reads (its recursion limit).
pub const MAX_BLOB_DEPTH: usize = 127;

/// Levels a blob wraps a body in: the recording, `response`, `http`, `body` (the request's
/// `canonical_body` sits one level higher).
const BODY_WRAPPER_DEPTH: usize = 4;

/// How deeply arrays and objects nest in JSON `text` (strings skipped). Our own scan: a
/// recording is checked before it is written, and parsing it again would cost a full parse.
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => {
                i = end_of_string(text, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Where the JSON string whose contents start at `i` ends (just past its closing quote, or the
/// end of `text`). Strings are most of a blob's bytes: they are skipped with SIMD (`memchr`),
/// which took the depth check of a 4 MB recording from 5 ms to a few hundred microseconds.
fn end_of_string(text: &[u8], mut i: usize) -> usize {
    while let Some(rest) = text.get(i..) {
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(j) if rest[j] == b'\\' => i += j + 2,
            Some(j) => return i + j + 1,
            None => break,
        }
    }
    text.len()
}

fn read_blob<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RecorderError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecorderError::io(path, e)),
    };
    let rec: T = serde_json::from_slice(&bytes).map_err(|e| RecorderError::BadRecording {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Some(rec))
}

fn row_of(rec: &Recording) -> IndexRow {
    IndexRow {
        request_hash: rec.request_hash.clone(),
        test_id: rec.test_id.clone(),
        occurrence: rec.occurrence,
        method: rec.request.method.clone(),
        endpoint: rec.request.path.clone(),
        model: rec.request.model.clone(),
        timestamp: rec.metadata.recorded_at.clone(),
        is_streaming: rec.response.is_streaming(),
        status: rec.response.status(),
        response_file: format!("{RESPONSES_DIR}/{}.json", rec.request_hash),
    }
}

/// A value of the index that does not fit its column's type (a damaged or foreign index).
#[derive(Debug, thiserror::Error)]
#[error("column {column} holds {value}, which does not fit its type")]
pub struct ColumnValueError {
    /// The column.
    pub column: &'static str,
    /// The value found.
    pub value: i64,
    /// The failed conversion.
    #[source]
    pub source: std::num::TryFromIntError,
}

/// The integer in `column` of `r`, checked against `T`'s range: an out-of-range value is a
/// [`ColumnValueError`] (the store adds the index file, [`RecorderError::Index`]).
fn checked<T: TryFrom<i64, Error = std::num::TryFromIntError>>(
    r: &rusqlite::Row<'_>,
    column: &'static str,
) -> rusqlite::Result<T> {
    let value: i64 = r.get(column)?;
    T::try_from(value).map_err(|source| {
        let index = r.as_ref().column_index(column).unwrap_or_default();
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            Box::new(ColumnValueError {
                column,
                value,
                source,
            }),
        )
    })
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IndexRow> {
    Ok(IndexRow {
        request_hash: r.get("request_hash")?,
        test_id: r.get("test_id")?,
        occurrence: checked::<u32>(r, "occurrence")?,
        method: r.get("method")?,
        endpoint: r.get("endpoint")?,
        model: r.get("model")?,
        timestamp: r.get("timestamp")?,
        is_streaming: r.get("is_streaming")?,
        status: match r.get::<_, Option<i64>>("status")? {
            Some(_) => Some(checked::<u16>(r, "status")?),
            None => None,
        },
        response_file: r.get("response_file")?,
    })
}

fn upsert(conn: &Connection, row: &IndexRow, blob_size: u64) -> rusqlite::Result<()> {
    let blob_size = i64::try_from(blob_size)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT OR REPLACE INTO recordings
         (request_hash, test_id, occurrence, method, endpoint, model, timestamp, is_streaming, status, response_file, blob_size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            row.request_hash,
            row.test_id,
            i64::from(row.occurrence),
            row.method,
            row.endpoint,
            row.model,
            row.timestamp,
            row.is_streaming,
            row.status.map(i64::from),
            row.response_file,
            blob_size
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;
    use proptest::prelude::*;

    /// The byte-at-a-time scan `nesting_depth` replaced: the oracle.
    fn depth_byte_by_byte(text: &[u8]) -> usize {
        let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
        for &b in text {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        deepest
    }

    proptest! {
        #[test]
        fn depth_matches_the_byte_by_byte_scan(text in r#"[\[\]{}"\\a ,:]{0,64}"#) {
            prop_assert_eq!(nesting_depth(text.as_bytes()), depth_byte_by_byte(text.as_bytes()));
        }
    }

    /// A blob as [`Store::put`] lays it out: `messages` in the request, `answer` in the response,
    /// `when` as the recording time.
    fn blob(messages: usize, answer: &str, when: &str) -> Vec<u8> {
        super::layout::to_vec(&recording(messages, answer, when)).unwrap()
    }

    fn recording(messages: usize, answer: &str, when: &str) -> super::Recording {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "request_hash": "ab12", "test_id": "t", "occurrence": 0,
            "request": {
                "method": "POST", "path": "/v1/chat/completions", "model": "m",
                "provider": null, "headers": {}, "body": "same_as_canonical",
                "canonical_body": {"model": "m", "messages": (0..messages)
                    .map(|i| serde_json::json!({"role": "user", "content": format!("hi {i}\n}}")}))
                    .collect::<Vec<_>>()},
            },
            "response": {"http": {"status": 200, "headers": {}, "t_ms": 1.5,
                "body": {"json": {"id": when, "choices": [{"message": {"content": answer}}]}}}},
            "metadata": {"recorded_at": when, "provider_base_url": "http://x", "harness_version": "0"},
        }))
        .unwrap()
    }

    #[test]
    fn a_request_laid_out_beforehand_makes_the_same_blob() {
        for messages in [0, 1, 40] {
            let mut rec = recording(messages, "ok \u{e9}\"\n", "2026-01-01");
            let whole = super::blob_text(&rec).unwrap();
            rec.laid_out_request = Some(super::layout::to_vec_at(&rec.request, 1).unwrap());
            assert_eq!(
                String::from_utf8(super::blob_text(&rec).unwrap()).unwrap(),
                String::from_utf8(whole).unwrap()
            );
            // The laid-out text is what goes in: another request's gives that recording's blob.
            let other = recording(messages + 1, "ok \u{e9}\"\n", "2026-01-01");
            rec.laid_out_request = Some(super::layout::to_vec_at(&other.request, 1).unwrap());
            assert_eq!(
                String::from_utf8(super::blob_text(&rec).unwrap()).unwrap(),
                String::from_utf8(super::blob_text(&other).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn a_request_the_same_byte_for_byte_is_left_out_of_the_comparison() {
        let (old, new) = (blob(50, "ok", "2026-01-01"), blob(50, "ok", "2026-02-02"));
        let span = super::layout::member_value_span(&new, "request").unwrap();
        let span_end = span.end;
        assert!(new[span.clone()].starts_with(b"{") && new[span.clone()].ends_with(b"}"));
        // The request is the same byte for byte: the comparison leaves it out.
        assert_eq!(old[..span.end], new[..span.end]);
        let request: serde_json::Value = serde_json::from_slice(&new[span]).unwrap();
        assert_eq!(
            request["canonical_body"]["messages"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
        assert!(super::same_but_volatile(&old, &new));
        assert!(!super::same_but_volatile(
            &blob(50, "no", "2026-01-01"),
            &new
        ));
        assert!(!super::same_but_volatile(
            &blob(51, "ok", "2026-01-01"),
            &new
        ));
        // Cut short after the request: not the same (and not valid JSON).
        assert!(!super::same_but_volatile(&old[..span_end + 3], &new));
        // An older, fully indented blob of the same exchange reads the same.
        let indented: serde_json::Value = serde_json::from_slice(&old).unwrap();
        let indented = serde_json::to_vec_pretty(&indented).unwrap();
        assert!(super::same_but_volatile(&indented, &new));
    }

    #[test]
    fn depth_skips_brackets_in_strings_and_escaped_quotes() {
        assert_eq!(nesting_depth(br#"{"a":["[[\"{",{"b":1}]}"#), 3);
        assert_eq!(nesting_depth(br#"["unterminated \"#), 1);
        assert_eq!(nesting_depth(b""), 0);
    }
}
