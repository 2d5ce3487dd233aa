//! Which blob files changed since the last look: an inotify watch on the recordings directory
//! (Linux), read without blocking.
//!
//! The replay cache ([`super::replay_cache`]) checks that a cached recording's file is unchanged
//! before using it. A `stat` of the blob's path does that, but under load it was a tenth of a
//! replayed request's CPU (the path walk and the call). Once the cache is hot it asks this watch
//! instead: one non-blocking `read` of the inotify descriptor a lookup, which the kernel answers
//! from the event queue without touching the file system. Every change made to the directory
//! after the watch was added (by this process, another, `git checkout`, an editor writing in
//! place) is in the queue before the call that made it returns, so the answer is as current as a
//! `stat`'s.
//!
//! No watch (another platform, no inotify instance left, the directory removed or moved, the
//! file system unmounted) means the cache goes on with `stat`. The `notify` crate was not used:
//! it delivers events on a thread of its own, later than the change, and a lookup would miss
//! the changes not yet delivered.

use std::path::Path;

/// What the watch saw since the last look.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The blob of this key was written, replaced, changed or removed.
    Key(String),
    /// Events were lost (the kernel's queue overflowed): any blob may have changed.
    Any,
}

/// The watch is gone (its directory was removed, moved or unmounted): from now on only `stat`
/// can tell.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Lost;

/// An inotify watch on a recordings directory (see the module docs).
#[derive(Debug)]
pub(crate) struct BlobWatch {
    #[cfg(target_os = "linux")]
    inotify: nix::sys::inotify::Inotify,
}

#[cfg(target_os = "linux")]
impl BlobWatch {
    /// Watches `dir`; `None` when that cannot be done here (then `stat` it is).
    pub(crate) fn start(dir: &Path) -> Option<BlobWatch> {
        use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let changes = F::IN_CREATE
            | F::IN_MODIFY
            | F::IN_ATTRIB
            | F::IN_CLOSE_WRITE
            | F::IN_MOVED_FROM
            | F::IN_MOVED_TO
            | F::IN_DELETE
            | F::IN_DELETE_SELF
            | F::IN_MOVE_SELF
            | F::IN_ONLYDIR;
        inotify.add_watch(dir, changes).ok()?;
        Some(BlobWatch { inotify })
    }

    /// Hands every change since the last call to `each`, or says the watch is gone.
    pub(crate) fn changes(&self, mut each: impl FnMut(Change)) -> Result<(), Lost> {
        use nix::sys::inotify::AddWatchFlags as F;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err(Lost),
            };
            for event in events {
                if event
                    .mask
                    .intersects(F::IN_IGNORED | F::IN_DELETE_SELF | F::IN_MOVE_SELF | F::IN_UNMOUNT)
                {
                    return Err(Lost);
                }
                if event.mask.contains(F::IN_Q_OVERFLOW) {
                    each(Change::Any);
                    continue;
                }
                if let Some(key) = event
                    .name
                    .as_deref()
                    .and_then(|name| name.to_str())
                    .and_then(|name| name.strip_suffix(".json"))
                {
                    each(Change::Key(key.to_owned()));
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl BlobWatch {
    /// No watch on this platform: `stat` it is.
    pub(crate) fn start(_dir: &Path) -> Option<BlobWatch> {
        None
    }

    /// Never called: there is no watch.
    pub(crate) fn changes(&self, _each: impl FnMut(Change)) -> Result<(), Lost> {
        Err(Lost)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn changes(watch: &BlobWatch) -> Result<Vec<Change>, Lost> {
        let mut seen = Vec::new();
        watch.changes(|c| seen.push(c))?;
        seen.dedup();
        Ok(seen)
    }

    #[test]
    fn sees_blobs_written_replaced_changed_in_place_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let watch = BlobWatch::start(dir.path()).expect("inotify");
        assert_eq!(changes(&watch), Ok(vec![]));

        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        assert_eq!(changes(&watch), Ok(vec![Change::Key("a".into())]));

        // As the store writes: a temporary file (not a blob), renamed over the blob.
        let tmp = dir.path().join(".x.tmp");
        std::fs::write(&tmp, "{\"b\":1}").unwrap();
        std::fs::rename(&tmp, dir.path().join("b.json")).unwrap();
        assert_eq!(changes(&watch), Ok(vec![Change::Key("b".into())]));

        // Written in place, same size.
        std::fs::write(dir.path().join("b.json"), "{\"b\":2}").unwrap();
        assert_eq!(changes(&watch), Ok(vec![Change::Key("b".into())]));

        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert_eq!(changes(&watch), Ok(vec![Change::Key("a".into())]));
        assert_eq!(changes(&watch), Ok(vec![]));
    }

    #[test]
    fn is_lost_when_its_directory_goes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("responses");
        std::fs::create_dir(&dir).unwrap();
        let watch = BlobWatch::start(&dir).expect("inotify");
        std::fs::rename(&dir, parent.path().join("elsewhere")).unwrap();
        assert_eq!(changes(&watch), Err(Lost));

        let dir = parent.path().join("again");
        std::fs::create_dir(&dir).unwrap();
        let watch = BlobWatch::start(&dir).expect("inotify");
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(changes(&watch), Err(Lost));
    }
}
