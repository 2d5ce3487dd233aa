//! What tells one version of a file from another, for caches of what was read from a file: the
//! harness's replay cache (parsed recordings) and the stack's extra CA file.
//!
//! A cached reading is used only while the file's stamp is the one it was read with. Length and
//! modification time alone miss a file swapped for one of the same size and time (`cp -p`, a
//! Kubernetes secret update, `git checkout` within a second): the status-change time, device and
//! inode catch those. A file written moments ago may be rewritten again within the timestamps'
//! granularity, unseen (a "racy" file, as git calls it): [`FileStamp::is_settled`] says when a
//! reading may be kept.

use std::time::{Duration, SystemTime};

/// How long ago a file must have been written for a reading of it to be kept.
pub const SETTLED_AFTER: Duration = Duration::from_secs(2);

/// One version of a file (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Status-change time (seconds, nanoseconds); Unix only.
    changed: (i64, i64),
    /// Device and inode; Unix only.
    inode: (u64, u64),
}

impl FileStamp {
    /// The stamp of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (changed, inode) = {
            use std::os::unix::fs::MetadataExt;
            ((meta.ctime(), meta.ctime_nsec()), (meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let (changed, inode) = ((0, 0), (0, 0));
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            changed,
            inode,
        }
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the file was last modified at least [`SETTLED_AFTER`] ago (an unknown time is
    /// not settled).
    pub fn is_settled(&self) -> bool {
        self.modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= SETTLED_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_swapped_for_one_of_the_same_size_and_time_is_another_file() {
        let dir = std::env::temp_dir().join(format!("file-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, other) = (dir.join("a"), dir.join("b"));
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for (p, text) in [(&path, "aaaa"), (&other, "bbbb")] {
            std::fs::write(p, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(an_hour_ago))
                .unwrap();
        }
        let before = FileStamp::of(&std::fs::metadata(&path).unwrap());
        assert!(before.is_settled());
        std::fs::rename(&other, &path).unwrap();
        let after = FileStamp::of(&std::fs::metadata(&path).unwrap());
        assert_eq!((before.len, before.modified), (after.len, after.modified));
        assert_ne!(before, after, "same length and mtime, another inode");
        std::fs::write(&path, "cccc").unwrap();
        let fresh = FileStamp::of(&std::fs::metadata(&path).unwrap());
        assert!(!fresh.is_settled(), "a file written just now is not kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
