//! Stable node identities.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The stable identity of a node, such as `"a@127.0.0.1"`.
///
/// Why not ractor's `node_id`: ractor numbers remote nodes with a counter local
/// to each observer, which differs between nodes and changes on reconnect. Epoch
/// ties must be broken the same way on every node, so this crate always orders
/// and compares nodes by this name. (Named `NodeName`, not `NodeId`, so that
/// it does not read as ractor_cluster's `NodeId`, that per-observer number.)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// A node identity from its name.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }

    /// The node's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl From<&str> for NodeName {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for NodeName {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}
