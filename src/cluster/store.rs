//! Durable epochs: the newest registration this node has seen per name, kept
//! in a file so that a node whose process restarts does not take an epoch
//! again (`ClusterConfig::state_dir`).
//!
//! Why: epochs are fencing tokens. A node allocates above the newest epoch it
//! has seen, and peers only show it registrations that are still alive; a
//! node restarted while the name is vacant (or cut off from every peer that
//! saw the last holder) would otherwise start over at its first epoch, which
//! a fencing gate downstream refuses, and would report a `Normal` start
//! where a holder's state was lost.
//!
//! The file is postcard (the crate's wire format) of a list of
//! `RegistrationInfo`, rewritten whole on every change (a change is a
//! registration somewhere in the cluster, not a call) through a temporary
//! file, `fsync` and a rename, so a crash leaves the old file or the new one.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::RegistrationInfo;

const FILE: &str = "epochs.postcard";

/// Where one node keeps its newest registrations.
#[derive(Debug)]
pub(crate) struct EpochStore {
    dir: PathBuf,
    /// The version of the snapshot on disk: writers race outside the view's
    /// lock, and an older snapshot must not replace a newer one.
    written: Mutex<u64>,
}

impl EpochStore {
    /// Opens (creating) the directory and reads what a previous run left.
    /// A file that does not decode is an error: starting without it could
    /// reuse epochs.
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, HashMap<String, RegistrationInfo>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let newest = match fs::read(&path) {
            Ok(bytes) => postcard::from_bytes::<Vec<RegistrationInfo>>(&bytes)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?
                .into_iter()
                .map(|info| (info.name.clone(), info))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
                written: Mutex::new(0),
            },
            newest,
        ))
    }

    /// Replaces the file with `newest`, snapshot number `version`, durably;
    /// does nothing if a later snapshot is on disk already.
    pub(crate) fn save(
        &self,
        version: u64,
        newest: &HashMap<String, RegistrationInfo>,
    ) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if version <= *written {
            return Ok(());
        }
        let mut all: Vec<&RegistrationInfo> = newest.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = postcard::to_allocvec(&all)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(FILE))?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        *written = version;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, epoch: u64, node: &str) -> RegistrationInfo {
        RegistrationInfo {
            name: name.into(),
            epoch,
            node: node.into(),
        }
    }

    /// What is saved is what the next open reads, an older snapshot never
    /// replaces a newer one, and a corrupt file is an error, not an empty
    /// start.
    #[test]
    fn saves_and_reopens_and_refuses_a_corrupt_file() {
        let dir = std::env::temp_dir().join(format!(
            "ractor_takeover_store_{}_{}",
            std::process::id(),
            line!()
        ));
        let _ = fs::remove_dir_all(&dir);
        let (store, empty) = EpochStore::open(&dir).expect("open");
        assert!(empty.is_empty());
        let newest: HashMap<_, _> = [info("x", 7, "a"), info("y", 2, "b")]
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        store.save(1, &newest).expect("save");
        let (_, back) = EpochStore::open(&dir).expect("reopen");
        assert_eq!(back, newest);
        // A snapshot no newer than the one on disk (a writer that lost the
        // race) changes nothing.
        store.save(1, &HashMap::new()).expect("stale save");
        let (_, back) = EpochStore::open(&dir).expect("reopen");
        assert_eq!(back, newest);

        fs::write(dir.join(FILE), [0xff, 0xff, 0xff]).expect("corrupt");
        let err = EpochStore::open(&dir).expect_err("a corrupt file");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let _ = fs::remove_dir_all(&dir);
    }
}
