//! Which blob files changed since the last look: an inotify watch on the recordings directory
//! (Linux), read without blocking.
//!
//! The replay cache ([`super::replay_cache`]) checks that a cached recording's file is unchanged
//! before using it. A `stat` of the blob's path does that, but under load it was about 5% of a
//! replayed request's CPU (the path walk and the call). Once the cache is hot it asks this watch
//! instead: one non-blocking `read` of the inotify descriptor a lookup, which the kernel answers
//! from the event queue without touching the file system. A change made in the directory (by
//! this process, another, `git checkout`, an editor writing in place) is in the queue before the
//! call that made it returns.
//!
//! What inotify does not see, and how it is covered:
//! - changes made by another machine or the host of a VM or container on a network or shared
//!   file system (NFS, SMB, FUSE and virtiofs, 9p, Ceph, AFS...): no watch there, `stat` it is;
//! - the directory swapped for another under its path (a parent renamed and recreated, a
//!   symlink pointed elsewhere): the directory's path is checked against the watched one once a
//!   second ([`RECHECK_DIR`]), and a swap ends the watch;
//! - a blob that is a symlink, or has other hard links, changed through them: the replay cache
//!   goes on checking such a blob with `stat`.
//!
//! No watch (another platform, no inotify instance left, the directory removed, moved or
//! swapped, the file system unmounted) means the cache goes on with `stat`. The `notify` crate
//! was not used: it delivers events on a thread of its own, later than the change, and a lookup
//! would miss the changes not yet delivered.

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

/// How often the watched directory's path is checked to still lead to it.
pub(crate) const RECHECK_DIR: std::time::Duration = std::time::Duration::from_secs(1);

/// An inotify watch on a recordings directory (see the module docs).
#[derive(Debug)]
pub(crate) struct BlobWatch {
    #[cfg(target_os = "linux")]
    inotify: nix::sys::inotify::Inotify,
    #[cfg(target_os = "linux")]
    dir: std::path::PathBuf,
    /// The watched directory's device and inode.
    #[cfg(target_os = "linux")]
    identity: (u64, u64),
    #[cfg(target_os = "linux")]
    checked_at: std::time::Instant,
}

/// File systems on which changes made elsewhere (another machine, the host of a VM or
/// container) raise no inotify event, by their `statfs` magic numbers.
#[cfg(target_os = "linux")]
const SHARED_FILE_SYSTEMS: [u32; 15] = [
    0x6969,      // NFS
    0x517B,      // SMB
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x6573_5546, // FUSE (virtiofs, sshfs...)
    0x0102_1997, // 9p
    0x00C3_6400, // Ceph
    0x5346_414F, // AFS
    0x6B41_4653, // kAFS
    0x7375_7245, // Coda
    0x0116_1970, // GFS2
    0x7461_636F, // OCFS2
    0x4750_4653, // GPFS
    0x0BD0_0BD0, // Lustre
    0x786F_4256, // VirtualBox shared folders
];

/// The device and inode of `dir`.
#[cfg(target_os = "linux")]
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(target_os = "linux")]
impl BlobWatch {
    /// Watches `dir`; `None` when that cannot be done here (then `stat` it is).
    pub(crate) fn start(dir: &Path) -> Option<BlobWatch> {
        use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify};
        // The magic numbers are 32 bits wide, whatever the width of `f_type`.
        let file_system = nix::sys::statfs::statfs(dir).ok()?.filesystem_type().0 as u32;
        if SHARED_FILE_SYSTEMS.contains(&file_system) {
            tracing::debug!(
                target: "harness::recorder",
                "{} is on a shared file system ({file_system:#x}): its blobs are checked with stat",
                dir.display()
            );
            return None;
        }
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
        // The directory's identity around the watch's start: a swap of its path in between
        // would leave the watch on one directory and the checks on another.
        let identity = dir_identity(dir)?;
        inotify.add_watch(dir, changes).ok()?;
        if dir_identity(dir) != Some(identity) {
            return None;
        }
        Some(BlobWatch {
            inotify,
            dir: dir.to_owned(),
            identity,
            checked_at: std::time::Instant::now(),
        })
    }

    /// Hands every change since the last call to `each`, or says the watch is gone.
    pub(crate) fn changes(&mut self, mut each: impl FnMut(Change)) -> Result<(), Lost> {
        use nix::sys::inotify::AddWatchFlags as F;
        if self.checked_at.elapsed() >= RECHECK_DIR {
            if dir_identity(&self.dir) != Some(self.identity) {
                tracing::debug!(
                    target: "harness::recorder",
                    "{} is no longer the watched directory: its blobs are checked with stat",
                    self.dir.display()
                );
                return Err(Lost);
            }
            self.checked_at = std::time::Instant::now();
        }
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::debug!(
                        target: "harness::recorder",
                        "cannot read the watch on {} ({e}): its blobs are checked with stat",
                        self.dir.display()
                    );
                    return Err(Lost);
                }
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
    pub(crate) fn changes(&mut self, _each: impl FnMut(Change)) -> Result<(), Lost> {
        Err(Lost)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn changes(watch: &mut BlobWatch) -> Result<Vec<Change>, Lost> {
        let mut seen = Vec::new();
        watch.changes(|c| seen.push(c))?;
        seen.dedup();
        Ok(seen)
    }

    #[test]
    fn sees_blobs_written_replaced_changed_in_place_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = BlobWatch::start(dir.path()).expect("inotify");
        assert_eq!(changes(&mut watch), Ok(vec![]));

        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        assert_eq!(changes(&mut watch), Ok(vec![Change::Key("a".into())]));

        // As the store writes: a temporary file (not a blob), renamed over the blob.
        let tmp = dir.path().join(".x.tmp");
        std::fs::write(&tmp, "{\"b\":1}").unwrap();
        std::fs::rename(&tmp, dir.path().join("b.json")).unwrap();
        assert_eq!(changes(&mut watch), Ok(vec![Change::Key("b".into())]));

        // Written in place, same size.
        std::fs::write(dir.path().join("b.json"), "{\"b\":2}").unwrap();
        assert_eq!(changes(&mut watch), Ok(vec![Change::Key("b".into())]));

        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert_eq!(changes(&mut watch), Ok(vec![Change::Key("a".into())]));
        assert_eq!(changes(&mut watch), Ok(vec![]));
    }

    #[test]
    fn is_lost_when_its_directory_goes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("responses");
        std::fs::create_dir(&dir).unwrap();
        let mut watch = BlobWatch::start(&dir).expect("inotify");
        std::fs::rename(&dir, parent.path().join("elsewhere")).unwrap();
        assert_eq!(changes(&mut watch), Err(Lost));

        let dir = parent.path().join("again");
        std::fs::create_dir(&dir).unwrap();
        let mut watch = BlobWatch::start(&dir).expect("inotify");
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(changes(&mut watch), Err(Lost));
    }

    #[test]
    fn is_lost_once_its_path_leads_to_another_directory() {
        // Its parent renamed and recreated: the watched directory itself neither moved nor went.
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("rec").join("responses");
        std::fs::create_dir_all(&dir).unwrap();
        let mut watch = BlobWatch::start(&dir).expect("inotify");
        std::fs::rename(top.path().join("rec"), top.path().join("rec.old")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), "{}").unwrap();
        watch.checked_at = std::time::Instant::now();
        assert_eq!(
            changes(&mut watch),
            Ok(vec![]),
            "unseen until the next check"
        );
        watch.checked_at -= RECHECK_DIR;
        assert_eq!(changes(&mut watch), Err(Lost));
    }
}
