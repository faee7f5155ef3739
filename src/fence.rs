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

use crate::{Epoch, NodeName};

/// Who wrote, under which epoch of which name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FencingToken {
    /// The global name.
    pub name: String,
    /// The holder's epoch.
    pub epoch: Epoch,
    /// The holder's node.
    pub node: NodeName,
}

impl FencingToken {
    /// The token of the holder of `name` at `epoch` on `node` (as a
    /// downstream system rebuilds it from what a write carried).
    pub fn new(name: impl Into<String>, epoch: Epoch, node: impl Into<NodeName>) -> Self {
        Self {
            name: name.into(),
            epoch,
            node: node.into(),
        }
    }

    /// The order of tokens: epoch, then node. Why the node: two sides of a
    /// partition can each fail over to the same epoch; the node breaks the
    /// tie the same way the registry does.
    pub fn rank(&self) -> (Epoch, &NodeName) {
        (self.epoch, &self.node)
    }
}

/// A write refused because a newer holder has written already.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleEpochErr {
    /// The refused token.
    pub token: FencingToken,
    /// The newest epoch seen for that name.
    pub newest: Epoch,
    /// The node of the newest token seen.
    pub newest_node: NodeName,
}

impl fmt::Display for StaleEpochErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write from {} at epoch {} of {:?} refused: {} at epoch {} has written since; that holder was replaced",
            self.token.node, self.token.epoch, self.token.name, self.newest_node, self.newest
        )
    }
}

impl std::error::Error for StaleEpochErr {}

/// The downstream check: admits a token ranked (epoch, then node) at least
/// as high as the newest seen for its name, and remembers it.
#[derive(Debug, Default)]
pub struct EpochGate {
    newest: Mutex<HashMap<String, (Epoch, NodeName)>>,
}

impl EpochGate {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits `token` if no newer epoch of its name has been admitted.
    pub fn admit(&self, token: &FencingToken) -> Result<(), StaleEpochErr> {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((epoch, node)) = newest.get(&token.name) {
            if token.rank() < (*epoch, node) {
                return Err(StaleEpochErr {
                    token: token.clone(),
                    newest: *epoch,
                    newest_node: node.clone(),
                });
            }
        }
        newest.insert(token.name.clone(), (token.epoch, token.node.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(epoch: Epoch) -> FencingToken {
        on("a", epoch)
    }

    fn on(node: &str, epoch: Epoch) -> FencingToken {
        FencingToken {
            name: "n".into(),
            epoch,
            node: NodeName::new(node),
        }
    }

    /// Two holders at one epoch (each side of a partition failed over): the
    /// node breaks the tie, so once the higher one wrote the other is refused.
    #[test]
    fn breaks_epoch_ties_by_node() {
        let gate = EpochGate::new();
        assert!(gate.admit(&on("a", 5)).is_ok());
        assert!(gate.admit(&on("c", 5)).is_ok());
        let err = gate.admit(&on("a", 5)).unwrap_err();
        assert_eq!((err.newest, err.newest_node.as_str()), (5, "c"));
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
