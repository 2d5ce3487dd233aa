//! Stored responses: SQLite (rusqlite) at the run config's `storage.db_path`, so retrieve, list,
//! delete, input items and `previous_response_id` work across restarts and across the processes
//! that share the file (WAL mode, a busy timeout).
//!
//! A response is written in one transaction, whole or not at all: its object, its input items
//! and its conversation (every item up to and including its output, which a later response that
//! names it as `previous_response_id` continues).

use std::path::Path;
use std::sync::MutexGuard;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::storage::{self, Database, PageQuery};
pub use crate::storage::{Order, StoreError};

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

/// The responses database.
#[derive(Debug)]
pub struct ResponseStore {
    db: Database,
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
        Ok(Self {
            db: Database::open(path, SCHEMA)?,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.db.conn()
    }

    fn query_err(&self, source: rusqlite::Error) -> StoreError {
        self.db.query_err(source)
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
        let query = PageQuery {
            table: "responses",
            time_column: "created_at",
            json_column: "response",
            after,
            limit,
            order,
            model,
        };
        storage::page_json(&self.conn(), self.db.path(), &query)
    }

    fn parse(&self, id: &str, text: &str) -> Result<Value, StoreError> {
        storage::parse(self.db.path(), id, text)
    }

    fn parse_list(&self, id: &str, text: &str) -> Result<Vec<Value>, StoreError> {
        match self.parse(id, text)? {
            Value::Array(items) => Ok(items),
            _ => Err(StoreError::Damaged {
                path: self.db.path().to_owned(),
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
        assert!(err.contains("cannot open the stack database"), "{err}");
    }
}
