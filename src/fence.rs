//! Fencing: epochs carried by side effects, checked downstream.
//!
//! A holder that was partitioned away may not know that it lost the name and
//! keep writing. Give every side effect the holder's [`FencingToken`]
//! ([`crate::TakeoverCtx::fence`]) and let the system that receives them keep
//! an [`EpochGate`]: it refuses any token older than the newest it has seen.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Epoch, NodeId};

/// Who wrote, under which epoch of which name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FencingToken {
    /// The global name.
    pub name: String,
    /// The holder's epoch.
    pub epoch: Epoch,
    /// The holder's node.
    pub node: NodeId,
}

/// A write refused because a newer holder has written already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleEpochErr {
    /// The refused token.
    pub token: FencingToken,
    /// The newest epoch seen for that name.
    pub newest: Epoch,
}

impl fmt::Display for StaleEpochErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write from {} at epoch {} of {:?} refused: epoch {} has written since; that holder was replaced",
            self.token.node, self.token.epoch, self.token.name, self.newest
        )
    }
}

impl std::error::Error for StaleEpochErr {}

/// The downstream check: admits a token whose epoch is at least the newest
/// seen for its name, and remembers it.
#[derive(Debug, Default)]
pub struct EpochGate {
    newest: Mutex<HashMap<String, Epoch>>,
}

impl EpochGate {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits `token` if no newer epoch of its name has been admitted.
    pub fn admit(&self, token: &FencingToken) -> Result<(), StaleEpochErr> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let seen = newest.entry(token.name.clone()).or_default();
        if token.epoch < *seen {
            return Err(StaleEpochErr {
                token: token.clone(),
                newest: *seen,
            });
        }
        *seen = token.epoch;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(epoch: Epoch) -> FencingToken {
        FencingToken {
            name: "n".into(),
            epoch,
            node: NodeId::new("a"),
        }
    }

    /// Equal or newer epochs pass; an older one is refused with the newest.
    #[test]
    fn refuses_older_epochs() {
        let gate = EpochGate::new();
        assert!(gate.admit(&token(3)).is_ok());
        assert!(gate.admit(&token(3)).is_ok());
        assert_eq!(gate.admit(&token(2)).unwrap_err().newest, 3);
        assert!(gate.admit(&token(4)).is_ok());
        assert_eq!(gate.admit(&token(3)).unwrap_err().newest, 4);
    }
}
