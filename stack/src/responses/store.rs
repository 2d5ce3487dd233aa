//! Stored responses: SQLite (rusqlite) at the run config's `storage.db_path`, so retrieve, list,
//! delete, input items and `previous_response_id` work across restarts and across the processes
//! that share the file (WAL mode, a busy timeout).
//!
//! A response is written in one transaction, whole or not at all: its object, its input items
//! and its conversation (every item up to and including its output, which a later response that
//! names it as `previous_response_id` continues).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the responses database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite or the file system said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("responses database {path}: {source}")]
    Query {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value is not what was written.
    #[error("responses database {path}: row '{id}' is damaged: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The row.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response object.
    pub response: Value,
    /// The items of its `input`, as stored (each with an id).
    pub input_items: Vec<Value>,
    /// Every item of the conversation up to and including its output.
    pub conversation: Vec<Value>,
    /// The first response of its `previous_response_id` chain.
    pub conversation_id: String,
}

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// The responses database.
#[derive(Debug)]
pub struct ResponseStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    model TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_time ON responses (created_at, id);
";

impl ResponseStore {
    /// Opens (creating when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_owned(),
            source: e,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(Box::new(e)))?;
        // WAL with synchronous=NORMAL: a commit is atomic and the database never corrupts; only
        // the last commits before a power loss (not a process crash) can be lost, and a commit
        // costs no fsync (0.5 ms a response here).
        conn.busy_timeout(Duration::from_secs(10))
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| open_err(Box::new(e)))?;
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn query_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Query {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores (or replaces) a response, its input items and its conversation, in one
    /// transaction.
    pub fn put(&self, stored: &StoredResponse) -> Result<(), StoreError> {
        let r = &stored.response;
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let created_at = r.get("created_at").and_then(Value::as_i64).unwrap_or(0);
        let model = r.get("model").and_then(Value::as_str).unwrap_or_default();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.query_err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO responses
             (id, created_at, model, conversation_id, response, input_items, conversation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                created_at,
                model,
                stored.conversation_id,
                r.to_string(),
                json_text(&stored.input_items),
                json_text(&stored.conversation),
            ],
        )
        .map_err(|e| self.query_err(e))?;
        tx.commit().map_err(|e| self.query_err(e))
    }

    /// A stored response by id.
    pub fn get(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT response, input_items, conversation, conversation_id
                 FROM responses WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.query_err(e))?;
        let Some((response, input_items, conversation, conversation_id)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredResponse {
            response: self.parse(id, &response)?,
            input_items: self.parse_list(id, &input_items)?,
            conversation: self.parse_list(id, &conversation)?,
            conversation_id,
        }))
    }

    /// Deletes a response; whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.conn()
            .execute("DELETE FROM responses WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(|e| self.query_err(e))
    }

    /// Up to `limit` responses in `order` of creation, after the response `after` (exclusive),
    /// of `model` when given; and whether more follow.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        order: Order,
        model: Option<&str>,
    ) -> Result<(Vec<Value>, bool), StoreError> {
        let cursor = match after {
            Some(id) => {
                let found = self
                    .conn()
                    .query_row(
                        "SELECT created_at FROM responses WHERE id = ?1",
                        params![id],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()
                    .map_err(|e| self.query_err(e))?;
                match found {
                    Some(t) => Some((t, id.to_owned())),
                    None => return Ok((Vec::new(), false)),
                }
            }
            None => None,
        };
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let sql = format!(
            "SELECT id, response FROM responses
             WHERE (?1 IS NULL OR model = ?1)
               AND (?2 IS NULL OR (created_at, id) {cmp} (?2, ?3))
             ORDER BY created_at {dir}, id {dir} LIMIT ?4"
        );
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.query_err(e))?;
        let rows = stmt
            .query_map(
                params![
                    model,
                    cursor.as_ref().map(|c| c.0),
                    cursor.as_ref().map(|c| c.1.clone()),
                    fetch
                ],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )
            .map_err(|e| self.query_err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.query_err(e))?;
        drop(stmt);
        drop(conn);
        let has_more = rows.len() > limit;
        let data = rows
            .into_iter()
            .take(limit)
            .map(|(id, text)| self.parse(&id, &text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((data, has_more))
    }

    fn parse(&self, id: &str, text: &str) -> Result<Value, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Damaged {
            path: self.path.clone(),
            id: id.to_owned(),
            message: e.to_string(),
        })
    }

    fn parse_list(&self, id: &str, text: &str) -> Result<Vec<Value>, StoreError> {
        match self.parse(id, text)? {
            Value::Array(items) => Ok(items),
            _ => Err(StoreError::Damaged {
                path: self.path.clone(),
                id: id.to_owned(),
                message: "expected a JSON array".into(),
            }),
        }
    }
}

/// A list of items as JSON text (serialized in place, not cloned into a `Value` first).
fn json_text(items: &[Value]) -> String {
    // Serializing a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(id: &str, created_at: i64, model: &str) -> StoredResponse {
        StoredResponse {
            response: json!({"id": id, "object": "response", "created_at": created_at, "model": model}),
            input_items: vec![json!({"type": "message", "id": format!("msg_{id}")})],
            conversation: vec![json!({"type": "message"})],
            conversation_id: id.to_owned(),
        }
    }

    #[test]
    fn responses_survive_a_reopen_and_list_pages_in_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/sql_store.db");
        {
            let store = ResponseStore::open(&path).unwrap();
            for (i, id) in ["r1", "r2", "r3"].iter().enumerate() {
                store
                    .put(&stored(
                        id,
                        100 + i as i64,
                        if i == 1 { "m2" } else { "m1" },
                    ))
                    .unwrap();
            }
        }
        let store = ResponseStore::open(&path).unwrap();
        assert_eq!(store.get("r2").unwrap().unwrap(), stored("r2", 101, "m2"));
        let ids = |page: (Vec<Value>, bool)| {
            (
                page.0
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>(),
                page.1,
            )
        };
        assert_eq!(
            ids(store.list(None, 2, Order::Desc, None).unwrap()),
            (vec!["r3".into(), "r2".into()], true)
        );
        assert_eq!(
            ids(store.list(Some("r2"), 2, Order::Desc, None).unwrap()),
            (vec!["r1".into()], false)
        );
        assert_eq!(
            ids(store.list(Some("r1"), 5, Order::Asc, None).unwrap()),
            (vec!["r2".into(), "r3".into()], false)
        );
        assert_eq!(
            ids(store.list(None, 5, Order::Asc, Some("m1")).unwrap()),
            (vec!["r1".into(), "r3".into()], false)
        );
        assert!(store.delete("r2").unwrap());
        assert!(!store.delete("r2").unwrap());
        assert!(store.get("r2").unwrap().is_none());
    }

    #[test]
    fn a_damaged_row_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = ResponseStore::open(&path).unwrap();
        store.put(&stored("r1", 1, "m")).unwrap();
        store
            .conn()
            .execute("UPDATE responses SET input_items = '{' WHERE id = 'r1'", [])
            .unwrap();
        let err = store.get("r1").unwrap_err().to_string();
        assert!(err.contains("'r1' is damaged"), "{err}");
    }

    #[test]
    fn an_unusable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = ResponseStore::open(&file.join("sub/db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot open the responses database"), "{err}");
    }
}
