//! The stack's SQLite database (rusqlite) at the run config's `storage.db_path`: what every
//! store on it shares (opening with WAL and a busy timeout, the error type, keyset paging).
//!
//! Stores on the file: [`crate::responses::ResponseStore`] (responses, their input items and
//! conversations) and [`chat_completions::ChatCompletionStore`] (Llama Stack's inference store).
//! Each opens its own connection; WAL lets them, and other processes sharing the file, read
//! while one writes.

pub mod chat_completions;
pub mod write_behind;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the stack database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite or the file system said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("stack database {path}: {source}")]
    Query {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value is not what was written.
    #[error("stack database {path}: row '{id}' is damaged: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The row.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Opens (creating when missing, with its directory) the database at `path` and runs `schema`
/// (idempotent `CREATE ... IF NOT EXISTS` statements).
pub fn open(path: &Path, schema: &str) -> Result<Connection, StoreError> {
    let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
        path: path.to_owned(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
    }
    let conn = Connection::open(path).map_err(|e| open_err(Box::new(e)))?;
    // WAL with synchronous=NORMAL: a commit is atomic and the database never corrupts; only the
    // last commits before a power loss (not a process crash) can be lost, and a commit costs no
    // fsync (0.5 ms a response here). Switching the journal mode while another connection opens
    // the same file can answer "database is locked" at once, busy timeout or not: retried for
    // as long as the busy timeout.
    let setup = || {
        conn.busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(schema))
    };
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match setup() {
            Ok(()) => return Ok(conn),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(open_err(Box::new(e))),
        }
    }
}

/// One store's connection to the database file, with the file's path for its errors: what every
/// store on the file holds.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    conn: std::sync::Mutex<Connection>,
}

impl Database {
    /// Opens the database at `path` with `schema` ([`open`]).
    pub fn open(path: &Path, schema: &str) -> Result<Self, StoreError> {
        Ok(Database {
            path: path.to_owned(),
            conn: std::sync::Mutex::new(open(path, schema)?),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one query or transaction.
    pub fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        support::sync::lock(&self.conn)
    }

    /// A failed query, naming the file.
    pub fn query_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Query {
            path: self.path.clone(),
            source,
        }
    }
}

/// How long a store waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// One page of a keyset listing.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// The table, with columns `id`, a creation-time column and a `model` column.
    pub table: &'static str,
    /// The creation-time column (the sort key, ties broken by `id`).
    pub time_column: &'static str,
    /// The column holding each row's JSON text.
    pub json_column: &'static str,
    /// List after this row (exclusive); a row that does not exist gives an empty page.
    pub after: Option<&'a str>,
    /// Page size.
    pub limit: usize,
    /// Sort order.
    pub order: Order,
    /// Only rows of this model.
    pub model: Option<&'a str>,
}

/// Runs a [`PageQuery`]: up to `limit` rows as `(id, json text)`, and whether more follow.
pub fn page(
    conn: &Connection,
    path: &Path,
    q: &PageQuery<'_>,
) -> Result<(Vec<(String, String)>, bool), StoreError> {
    let query_err = |source| StoreError::Query {
        path: path.to_owned(),
        source,
    };
    let (table, time) = (q.table, q.time_column);
    let cursor = match q.after {
        Some(id) => {
            let found = conn
                .query_row(
                    &format!("SELECT {time} FROM {table} WHERE id = ?1"),
                    params![id],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map_err(query_err)?;
            match found {
                Some(t) => Some((t, id.to_owned())),
                None => return Ok((Vec::new(), false)),
            }
        }
        None => None,
    };
    let (cmp, dir) = match q.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    let sql = format!(
        "SELECT id, {json} FROM {table}
         WHERE (?1 IS NULL OR model = ?1)
           AND (?2 IS NULL OR ({time}, id) {cmp} (?2, ?3))
         ORDER BY {time} {dir}, id {dir} LIMIT ?4",
        json = q.json_column
    );
    let fetch = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&sql).map_err(query_err)?;
    let rows = stmt
        .query_map(
            params![
                q.model,
                cursor.as_ref().map(|c| c.0),
                cursor.as_ref().map(|c| c.1.clone()),
                fetch
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .map_err(query_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(query_err)?;
    let has_more = rows.len() > q.limit;
    Ok((rows.into_iter().take(q.limit).collect(), has_more))
}

/// Runs a [`PageQuery`] and parses each row's JSON: up to `limit` objects, and whether more
/// follow.
pub fn page_json(
    conn: &Connection,
    path: &Path,
    q: &PageQuery<'_>,
) -> Result<(Vec<Value>, bool), StoreError> {
    let (rows, has_more) = page(conn, path, q)?;
    let data = rows
        .iter()
        .map(|(id, text)| parse(path, id, text))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((data, has_more))
}

/// Parses a stored JSON text; damage names the row.
pub fn parse(path: &Path, id: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Damaged {
        path: path.to_owned(),
        id: id.to_owned(),
        message: e.to_string(),
    })
}
