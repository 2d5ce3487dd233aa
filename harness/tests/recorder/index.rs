//! The index: rebuilt when deleted, truncated, conflicted or stale; leftovers of killed writers.

use std::path::Path;
use std::time::Duration;

use harness::context::TestContext;
use harness::recorder::{Mode, Store};
use serde_json::json;
use wiremock::MockServer;

use crate::common::{chat, client, mock_json, ok_upstream, post};

async fn record_three(dir: &Path, server: &MockServer) {
    let c = client(Mode::RecordIfMissing, dir);
    for (i, t) in ["a", "b", "c"].into_iter().enumerate() {
        TestContext::new(t)
            .scope(post(&c, &server.uri(), &chat("m", i as f64)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_index_is_rebuilt_when_deleted_truncated_conflicted_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    mock_json(&server, json!({"ok": 1}), 3).await;
    record_three(dir.path(), &server).await;
    let expected = Store::open(dir.path()).unwrap().rows().unwrap();
    assert_eq!(expected.len(), 3);
    let index = dir.path().join("index.sqlite");

    std::fs::remove_file(&index).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.rows().unwrap(), expected, "deleted");
    drop(s);

    let len = std::fs::metadata(&index).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let _ = std::fs::remove_file(dir.path().join("index.sqlite-wal"));
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.rows().unwrap(), expected, "truncated");
    drop(s);

    std::fs::write(
        &index,
        "<<<<<<< HEAD\nbinary\n=======\nother\n>>>>>>> branch\n",
    )
    .unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(s.sync_report().recreated);
    assert_eq!(s.rows().unwrap(), expected, "merge-conflicted");
    drop(s);

    // Stale: an index from before a blob was added (e.g. the other side of a merge), and one
    // that still lists a blob that is gone.
    let old_index = std::fs::read(&index).unwrap();
    let extra = MockServer::start().await;
    mock_json(&extra, json!({"ok": 2}), 1).await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("d")
        .scope(post(&c, &extra.uri(), &chat("m", 9.0)))
        .await
        .unwrap();
    drop(c);
    let with_four = Store::open(dir.path()).unwrap().rows().unwrap();
    assert_eq!(with_four.len(), 4);
    std::fs::write(&index, &old_index).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.sync_report().added, 1);
    assert_eq!(s.rows().unwrap(), with_four, "stale (missing row)");
    drop(s);
    std::fs::remove_file(dir.path().join(&expected[0].response_file)).unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.sync_report().removed, 1);
    assert_eq!(s.rows().unwrap().len(), 3, "stale (row without blob)");
}

#[tokio::test]
async fn killed_writers_leftovers_are_removed_at_open_and_blobs_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = ok_upstream().await;
    let c = client(Mode::RecordIfMissing, dir.path());
    TestContext::new("t")
        .scope(post(&c, &server.uri(), &chat("m", 0.0)))
        .await
        .unwrap();
    let responses = dir.path().join("responses");
    let stale = responses.join(".abc123.tmp");
    let fresh = responses.join(".def456.tmp");
    std::fs::write(&stale, "{\"half\": ").unwrap();
    std::fs::write(&fresh, "{\"in flight\": ").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.sync_report().stale_temp_files, 1);
    assert!(
        !stale.exists() && fresh.exists(),
        "only the old leftover goes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let blob = std::fs::read_dir(&responses)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .unwrap();
        assert_eq!(blob.metadata().unwrap().permissions().mode() & 0o777, 0o644);
    }
}
