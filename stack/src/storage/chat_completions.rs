//! Stored chat completions, Llama Stack's inference store: every chat completion the stack
//! answers (streamed ones assembled from their chunks) with the messages it answered, for
//! `GET /v1/chat/completions` and `GET /v1/chat/completions/{completion_id}`. Unless the run
//! config says `[storage] store_chat_completions = false`.

use std::path::Path;
use std::sync::{Arc, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::write_behind::WriteBehind;
use super::{Database, Order, PageQuery, StoreError};
use crate::providers::RawObject;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chat_completions (
    id TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    model TEXT NOT NULL,
    completion TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_completions_by_time ON chat_completions (created, id);
";

/// The chat completions table. Completions answered by the stack are stored off the request path
/// ([`ChatCompletionStore::put_later`]); reads see every completion stored before them.
#[derive(Debug)]
pub struct ChatCompletionStore {
    table: Arc<Table>,
    queue: WriteBehind<Row>,
}

/// A chat completion as it is stored: its columns, and its JSON text (the completion's fields,
/// then `input_messages`), serialized by the caller: a reference to the completion is all it
/// needs, where queueing the value would cost a copy of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    id: String,
    created: i64,
    model: String,
    json: String,
}

impl Row {
    /// The row of `completion`, answering the messages whose JSON array text is
    /// `input_messages` (a caller holding the messages serializes them: see [`messages_text`]).
    pub fn new(completion: &Value, input_messages: &str) -> Self {
        let text = |key: &str| {
            completion
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let json = match completion.as_object() {
            // The completion's own text, its closing brace replaced by the messages.
            Some(fields) if !fields.is_empty() && !fields.contains_key("input_messages") => {
                with_input_messages(&completion.to_string(), input_messages)
            }
            _ => {
                let mut stored = completion.as_object().cloned().unwrap_or_default();
                let messages = serde_json::from_str(input_messages).unwrap_or(Value::Null);
                stored.insert("input_messages".into(), messages);
                Value::Object(stored).to_string()
            }
        };
        Row {
            id: text("id"),
            created: completion
                .get("created")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            model: text("model"),
            json,
        }
    }

    /// [`Row::new`] of a completion passed through as text: its text, the messages appended.
    pub fn from_raw(completion: &RawObject, input_messages: &str) -> Self {
        let text = completion.text();
        if text.len() <= 2 || completion.get("input_messages").is_some() {
            return Row::new(&completion.to_value(), input_messages);
        }
        let json = with_input_messages(text, input_messages);
        Row {
            id: completion.get_str("id").unwrap_or_default().into_owned(),
            created: completion.get_i64("created").unwrap_or(0),
            model: completion.get_str("model").unwrap_or_default().into_owned(),
            json,
        }
    }
}

/// The text of a non-empty JSON object without `input_messages`, with `input_messages` as its
/// last member (its closing brace replaced).
fn with_input_messages(object: &str, input_messages: &str) -> String {
    let fields = object.strip_suffix('}').unwrap_or(object);
    let mut json = String::with_capacity(object.len() + input_messages.len() + 20);
    json.push_str(fields);
    json.push_str(",\"input_messages\":");
    json.push_str(input_messages);
    json.push('}');
    json
}

/// The JSON array text of a request's `messages` (`[]` when it has none).
pub fn messages_text(request: &Value) -> String {
    match request.get("messages") {
        // As `Provider::post` writes a body: straight into the buffer, not through `Display`.
        Some(m @ Value::Array(_)) => serde_json::to_string(m).unwrap_or_else(|_| m.to_string()),
        _ => "[]".to_owned(),
    }
}

impl ChatCompletionStore {
    /// Opens (creating when missing) the table in the database at `path`, and starts its writer.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let table = Arc::new(Table(Database::open(path, SCHEMA)?));
        let writer = table.clone();
        let queue = WriteBehind::start("chat-completion-store", move |batch| {
            if writer.put_all(&batch).is_ok() {
                return;
            }
            // One bad row must not cost the others of its batch: each on its own.
            for one in batch.chunks(1) {
                if let Err(e) = writer.put_all(one) {
                    tracing::warn!("a chat completion was not stored: {e}");
                }
            }
        })
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source: source.into(),
        })?;
        Ok(Self { table, queue })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.queue.flush();
        self.table.conn()
    }

    fn query_err(&self, source: rusqlite::Error) -> StoreError {
        self.table.query_err(source)
    }

    /// Queues a chat completion to be stored (or to replace the one with its id) with the
    /// messages it answered, as Llama Stack returns it: the completion's fields plus
    /// `input_messages` ([`Row::new`]). Does not wait: a write failure is logged. Every read
    /// afterwards sees it.
    pub fn put_later(&self, row: Row) {
        self.queue.push(row);
    }

    /// A stored chat completion (with its `input_messages`) by id.
    pub fn get(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let text = self
            .conn()
            .query_row(
                "SELECT completion FROM chat_completions WHERE id = ?1",
                params![id],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.query_err(e))?;
        text.map(|t| super::parse(self.table.path(), id, &t))
            .transpose()
    }

    /// Up to `limit` stored completions in `order` of creation, after the completion `after`
    /// (exclusive), of `model` when given; and whether more follow.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        order: Order,
        model: Option<&str>,
    ) -> Result<(Vec<Value>, bool), StoreError> {
        let query = PageQuery {
            table: "chat_completions",
            time_column: "created",
            json_column: "completion",
            after,
            limit,
            order,
            model,
        };
        super::page_json(&self.conn(), self.table.path(), &query)
    }
}

/// The chat completions table on its database.
#[derive(Debug)]
struct Table(Database);

impl std::ops::Deref for Table {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.0
    }
}

impl Table {
    /// Stores `rows` in one transaction.
    fn put_all(&self, rows: &[Row]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.query_err(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO chat_completions (id, created, model, completion)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|e| self.query_err(e))?;
            for row in rows {
                insert
                    .execute(params![row.id, row.created, row.model, row.json])
                    .map_err(|e| self.query_err(e))?;
            }
        }
        tx.commit().map_err(|e| self.query_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_is_the_completion_with_its_input_messages_last() {
        let messages = json!([{"role": "user", "content": "hi \"there\""}]);
        let old_way = |completion: &Value| {
            let mut stored = completion.as_object().cloned().unwrap_or_default();
            stored.insert("input_messages".into(), messages.clone());
            Value::Object(stored).to_string()
        };
        for completion in [
            json!({"id": "c", "created": 7, "model": "m", "choices": [{"x": 1.5}], "z": null}),
            json!({}),
            json!({"id": "c", "input_messages": "theirs", "model": "m"}),
            json!("not an object"),
        ] {
            let row = Row::new(&completion, &messages.to_string());
            assert_eq!(row.json, old_way(&completion), "{completion}");
            if let Ok(raw) = RawObject::parse(completion.to_string().as_bytes()) {
                assert_eq!(
                    Row::from_raw(&raw, &messages.to_string()),
                    row,
                    "{completion}"
                );
            }
            let parsed: Value = serde_json::from_str(&row.json).unwrap();
            assert_eq!(parsed["input_messages"], messages);
        }
        let row = Row::new(&json!({"id": "c", "created": 7, "model": "m"}), "[]");
        assert_eq!(
            (row.id.as_str(), row.created, row.model.as_str()),
            ("c", 7, "m")
        );
    }

    #[test]
    fn completions_are_stored_with_their_input_and_listed_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChatCompletionStore::open(&dir.path().join("s.db")).unwrap();
        for (i, model) in ["a/m", "b/m", "a/m"].iter().enumerate() {
            let completion = json!({"id": format!("c{i}"), "object": "chat.completion",
                                    "created": 100 + i, "model": model, "choices": []});
            let messages = json!([{"role": "user", "content": format!("q{i}")}]);
            store.put_later(Row::new(&completion, &messages.to_string()));
        }
        let got = store.get("c1").unwrap().unwrap();
        assert_eq!(got["model"], "b/m");
        assert_eq!(got["input_messages"][0]["content"], "q1");
        assert!(store.get("nope").unwrap().is_none());
        let ids = |(data, more): (Vec<Value>, bool)| {
            (
                data.iter()
                    .map(|c| c["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>(),
                more,
            )
        };
        assert_eq!(
            ids(store.list(None, 2, Order::Desc, None).unwrap()),
            (vec!["c2".into(), "c1".into()], true)
        );
        assert_eq!(
            ids(store.list(Some("c1"), 5, Order::Desc, None).unwrap()),
            (vec!["c0".into()], false)
        );
        assert_eq!(
            ids(store.list(None, 5, Order::Asc, Some("a/m")).unwrap()),
            (vec!["c0".into(), "c2".into()], false)
        );
    }
}
