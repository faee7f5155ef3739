//! Per-name delivery of registry changes.
//!
//! Why per name: with one stream of every change per node, every instance
//! and every client on a node woke up for every change of every name, so a
//! mass event (a node holding N names goes down) cost about 2N² deliveries
//! per node. A [`NameWatch`] gets the changes of its own name only, plus
//! node up/down (once per watch: a standby may wait on a node that holds
//! nothing of its name), so the same event costs a few deliveries per name.
//!
//! Why unbounded: the old stream was a bounded broadcast, and a receiver
//! that lagged behind (easy with thousands of names) lost changes. A watch
//! sees the few changes of one name; the server's pump hands them on to the
//! instance's mailbox at once (unbounded anyway), and the client's watcher
//! only sets a flag. A bound between them would only add a way to lose a
//! change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::RegistryEvent;

/// The changes to one name in one node's view, and every peer node going up
/// or down or draining, and takeovers back held or released, in the order the view applied them ([`crate::Registry::watch`]).
/// Nothing is ever dropped for a slow reader.
#[derive(Debug)]
pub struct NameWatch {
    rx: mpsc::UnboundedReceiver<RegistryEvent>,
}

impl NameWatch {
    /// The next change; `None` once the node's view is gone (a stopped node).
    pub async fn recv(&mut self) -> Option<RegistryEvent> {
        self.rx.recv().await
    }

    /// A watch that never yields anything (a node that does not exist).
    pub(crate) fn closed() -> Self {
        let (_, rx) = mpsc::unbounded_channel();
        Self { rx }
    }
}

/// A backend's watchers by name: where each change of its view goes.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    by_name: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<RegistryEvent>>>>,
    /// Changes handed to watchers so far: the cost measure of the scale tests.
    delivered: AtomicU64,
}

impl Watchers {
    /// A new watch of `name`.
    pub(crate) fn watch(&self, name: &str) -> NameWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().entry(name.to_string()).or_default().push(tx);
        NameWatch { rx }
    }

    /// Hands `event` to the watchers it concerns: those of its name, or all
    /// of them for a node going up or down. Watches dropped meanwhile are
    /// forgotten here.
    pub(crate) fn emit(&self, event: &RegistryEvent) {
        let mut by_name = self.lock();
        let mut sent = 0u64;
        let mut send = |txs: &mut Vec<mpsc::UnboundedSender<RegistryEvent>>| {
            txs.retain(|tx| tx.send(event.clone()).is_ok());
            sent += txs.len() as u64;
        };
        match event {
            RegistryEvent::Registered(info) | RegistryEvent::Unregistered { info, .. } => {
                if let Some(txs) = by_name.get_mut(&info.name) {
                    send(txs);
                    if txs.is_empty() {
                        by_name.remove(&info.name);
                    }
                }
            }
            RegistryEvent::NodeUp(_)
            | RegistryEvent::NodeDown(_)
            | RegistryEvent::Draining { .. }
            | RegistryEvent::TakebackHold { .. } => {
                by_name.values_mut().for_each(&mut send);
                by_name.retain(|_, txs| !txs.is_empty());
            }
        }
        self.delivered.fetch_add(sent, Ordering::Relaxed);
    }

    /// How many changes were handed to watchers so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<mpsc::UnboundedSender<RegistryEvent>>>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeaveReason, NodeName, RegistrationInfo};

    fn info(name: &str) -> RegistrationInfo {
        RegistrationInfo {
            name: name.into(),
            epoch: 1,
            node: NodeName::new("a"),
        }
    }

    /// A change of one name reaches that name's watches only; a node event
    /// reaches every watch once; a dropped watch is forgotten.
    #[tokio::test]
    async fn changes_reach_their_name_only() {
        let w = Watchers::default();
        let mut x = w.watch("x");
        let mut y = w.watch("y");
        w.emit(&RegistryEvent::Registered(info("x")));
        assert!(matches!(x.recv().await, Some(RegistryEvent::Registered(i)) if i.name == "x"));
        assert!(y.rx.try_recv().is_err());
        assert_eq!(w.delivered(), 1);
        w.emit(&RegistryEvent::NodeDown(NodeName::new("b")));
        assert!(matches!(x.recv().await, Some(RegistryEvent::NodeDown(_))));
        assert!(matches!(y.recv().await, Some(RegistryEvent::NodeDown(_))));
        assert_eq!(w.delivered(), 3);
        drop(y);
        w.emit(&RegistryEvent::Unregistered {
            info: info("y"),
            reason: LeaveReason::InstanceDied,
        });
        assert_eq!(w.delivered(), 3);
        assert!(!w.lock().contains_key("y"));
    }

    /// Nothing is lost for a reader that falls far behind (the old bounded
    /// stream dropped changes past 4096).
    #[tokio::test]
    async fn a_slow_reader_loses_nothing() {
        let w = Watchers::default();
        let mut x = w.watch("x");
        for _ in 0..10_000 {
            w.emit(&RegistryEvent::Registered(info("x")));
        }
        for _ in 0..10_000 {
            assert!(x.recv().await.is_some());
        }
    }
}
