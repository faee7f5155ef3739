//! Draining a node before it stops: every name it holds moves, by a planned
//! takeover with its state, to the next live node in priority.
//!
//! How it works, on either backend:
//!
//! 1. The node announces that it drains. On a real node that is a marker
//!    actor in the pg group [`crate::cluster::DRAINING_GROUP`] (its spawn
//!    name carries the node's name), so every peer sees it the way it sees
//!    registrations, and it vanishes with the node: a draining node that
//!    dies midway is an ordinary node down (its names fail over), and one
//!    that restarts comes back not draining.
//! 2. Placement on every other node reads it ([`crate::Registry::draining`]):
//!    the first live node in priority that does not drain takes each name
//!    over (steal, pull the state, serve the buffered calls); no name moves
//!    to a draining node, and a draining node's standbys take nothing.
//! 3. The drain waits until no registration of this node is left (each
//!    retiring holder unregisters once its successor confirmed the state),
//!    then until every call that reached this node and went on to a new
//!    holder has been answered back through it: those answers travel
//!    through this process, so it must not exit before. Calls still on
//!    their way from peers that had not yet seen the move are counted too:
//!    a ping round trip to every live peer proves they have arrived (a
//!    session delivers in order), and each lingering registration token
//!    is flushed, so it has counted what it had queued.
//!
//! The node then can stop. A drain is bounded by its timeout; what had not
//! moved by then is in [`DrainErr::Incomplete`].

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::{RegistrationInfo, Registry};

/// What a drain did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Each name the node held, and the registration that holds it now.
    pub moved: Vec<DrainMove>,
    /// The names still held here (or vacant) when the drain gave up.
    pub not_moved: Vec<String>,
    /// Calls forwarded by this node whose answers had not come back when
    /// the drain ended (0 after a complete drain).
    pub relays_in_flight: usize,
    /// From the announcement to the end.
    pub took: Duration,
}

impl DrainReport {
    /// Whether every name moved and every forwarded call was answered.
    pub fn is_complete(&self) -> bool {
        self.not_moved.is_empty() && self.relays_in_flight == 0
    }
}

/// One name a drain moved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainMove {
    /// The name.
    pub name: String,
    /// Its holder now.
    pub to: RegistrationInfo,
}

/// Why a drain did not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainErr {
    /// The timeout passed first: some names did not move (no live node in
    /// their placement that does not drain runs an instance of them, or
    /// their takeovers failed), or some forwarded calls were not answered
    /// yet. The node still drains (placement keeps moving the rest); call
    /// [`crate::cluster::ClusterNode::undrain`] to call it off.
    Incomplete(DrainReport),
    /// The drain could not be announced (its marker did not spawn): nothing
    /// moved. The reason is ractor's.
    Announce(String),
}

impl std::fmt::Display for DrainErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainErr::Incomplete(r) => write!(
                f,
                "the drain timed out after {:?}: {} name(s) not moved ({:?}), {} forwarded call(s) unanswered; \
                 check that another live node in each name's placement runs an instance, or drain longer",
                r.took,
                r.not_moved.len(),
                r.not_moved,
                r.relays_in_flight
            ),
            DrainErr::Announce(why) => write!(f, "the drain could not be announced: {why}"),
        }
    }
}

impl std::error::Error for DrainErr {}

/// What a standby's registration of a name for warm standby is called
/// (`"<name>#standby"`): a drain moves the names, not these (a draining
/// node's standbys leave with the node).
pub(crate) const STANDBY_SUFFIX: &str = "#standby";

/// Whether `name` is a standby's entry (`"<name>#standby"`), not a name.
pub(crate) fn is_standby_entry(name: &str) -> bool {
    name.ends_with(STANDBY_SUFFIX)
}

/// Whether a registration of `name` is one a drain moves.
pub(crate) fn moves(name: &str) -> bool {
    !is_standby_entry(name)
}

/// Waits, after the node announced its drain at `started`, until none of
/// `names` has a registration on this node any more and no forwarded call
/// is unanswered, or `deadline`.
pub(crate) async fn wait_moved(
    registry: &dyn Registry,
    names: Vec<String>,
    started: Instant,
    deadline: Instant,
) -> Result<DrainReport, DrainErr> {
    let me = registry.node().clone();
    let mut changes = registry.subscribe();
    let mut relays = relay::watch();
    let report = |registry: &dyn Registry| {
        let mut moved = Vec::new();
        let mut not_moved = Vec::new();
        for name in &names {
            let here = registry.members(name).iter().any(|r| *r.node() == me);
            match registry.lookup(name) {
                Some(holder) if !here && *holder.node() != me => moved.push(DrainMove {
                    name: name.clone(),
                    to: holder.info().clone(),
                }),
                _ => not_moved.push(name.clone()),
            }
        }
        DrainReport {
            moved,
            not_moved,
            relays_in_flight: relay::in_flight(),
            took: started.elapsed(),
        }
    };
    loop {
        let now = report(registry);
        if now.is_complete() {
            return Ok(now);
        }
        // Woken by every change of the view and of the relay count; the
        // report is recomputed from the view, so a lagged stream loses
        // nothing.
        let woke = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                r = changes.recv() => !matches!(r, Err(broadcast::error::RecvError::Closed)),
                r = relays.changed() => r.is_ok(),
            }
        })
        .await;
        match woke {
            Ok(true) => {}
            // The view is gone (the node shut down) or the time is up.
            Ok(false) | Err(_) => return Err(DrainErr::Incomplete(report(registry))),
        }
    }
}

/// Calls this process forwarded to another node whose answers come back
/// through it (a retiring holder forwards what still reaches it to its
/// successor, and the answer goes back to the caller through this node's
/// sessions). Counted, so that a drained node does not exit with answers
/// on their way.
pub(crate) mod relay {
    use super::*;

    fn counter() -> &'static watch::Sender<usize> {
        static IN_FLIGHT: OnceLock<watch::Sender<usize>> = OnceLock::new();
        IN_FLIGHT.get_or_init(|| watch::channel(0).0)
    }

    /// Forwarded calls not answered yet, in this process.
    pub(crate) fn in_flight() -> usize {
        *counter().borrow()
    }

    /// Wakes on every change of [`in_flight`].
    pub(crate) fn watch() -> watch::Receiver<usize> {
        counter().subscribe()
    }

    /// A port to forward in place of `port`, which passes the answer on
    /// and counts the call in flight until then (or until the caller's
    /// timeout, or the far side dropped it).
    pub(crate) fn port(port: ractor::RpcReplyPort<Vec<u8>>) -> ractor::RpcReplyPort<Vec<u8>> {
        port_on(counter(), port)
    }

    pub(super) fn port_on(
        count: &'static watch::Sender<usize>,
        port: ractor::RpcReplyPort<Vec<u8>>,
    ) -> ractor::RpcReplyPort<Vec<u8>> {
        let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
        let timeout = port.get_timeout();
        count.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let answer = match timeout {
                Some(t) => tokio::time::timeout(t, rx).await.ok().and_then(Result::ok),
                None => rx.await.ok(),
            };
            if let Some(bytes) = answer {
                let _ = port.send(bytes);
            }
            count.send_modify(|n| *n = n.saturating_sub(1));
        });
        match timeout {
            Some(t) => (tx, t).into(),
            None => tx.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relayed port passes its answer on and counts the call until then;
    /// one whose far side drops it stops counting too. (A counter of the
    /// test's own: other tests of this process forward calls.)
    #[tokio::test]
    async fn a_relay_counts_until_answered() {
        static COUNT: OnceLock<watch::Sender<usize>> = OnceLock::new();
        let count = COUNT.get_or_init(|| watch::channel(0).0);
        let mut w = count.subscribe();
        let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
        let relayed = relay::port_on(count, tx.into());
        let dropped = relay::port_on(count, ractor::concurrency::oneshot::<Vec<u8>>().0.into());
        assert_eq!(*count.borrow(), 2);
        relayed.send(vec![7]).unwrap();
        assert_eq!(rx.await.unwrap(), vec![7]);
        drop(dropped);
        while *w.borrow_and_update() != 0 {
            w.changed().await.unwrap();
        }
    }
}
