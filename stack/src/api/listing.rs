//! What the stored-object endpoints share (responses, chat completions): the paging parameters
//! (`limit`, `order`), the OpenAI list object, and running a store call off the async workers.

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::ApiError;
use crate::storage::{Order, StoreError};

/// Default page of a listing.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page of a listing.
pub const MAX_LIMIT: usize = 100;

/// The `limit` (default 20, at most 100) and `order` (`asc` or `desc`) query parameters.
pub fn page(params: &Params, default_order: Order) -> Result<(usize, Order), ApiError> {
    let limit = match params.query("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(
                    format!("'limit' must be an integer from 1 to {MAX_LIMIT}; got '{l}'."),
                    Some("limit"),
                    Some("invalid_value"),
                )
            })?,
    };
    let order = match params.query("order") {
        None => default_order,
        Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(o) => {
            return Err(ApiError::invalid_request(
                format!("'order' must be 'asc' or 'desc'; got '{o}'."),
                Some("order"),
                Some("invalid_value"),
            ));
        }
    };
    Ok((limit, order))
}

/// An OpenAI list object: `data`, `first_id`, `last_id` (null when empty), `has_more`.
pub fn list_object(data: Vec<Value>, has_more: bool) -> Value {
    let id_of = |d: Option<&Value>| d.and_then(|d| d.get("id")).cloned().unwrap_or(Value::Null);
    let (first, last) = (id_of(data.first()), id_of(data.last()));
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

/// Runs a store call on a blocking thread: SQLite may wait (up to its busy timeout) for another
/// process's write, which must not stall an async worker. A failure is a 500 naming the `what`
/// store.
pub async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::new(
                500,
                "server_error",
                format!("the {what} store task failed: {e}"),
                None,
                Some("storage_error"),
            )
        })?
        .map_err(|e| {
            tracing::error!("{what} store: {e}");
            ApiError::new(
                500,
                "server_error",
                e.to_string(),
                None,
                Some("storage_error"),
            )
        })
}
