//! A real node's drain and takeback hold: the marks in pg that other
//! nodes' placement reads (see `marks`), the wait for this node's names to
//! move, and the flush of calls still on their way here. What a drain
//! reports, and the wait itself, are the public [`crate::drain`]'s.

use std::collections::BTreeSet;
use std::time::Duration;

use ractor::ActorCell;
use tokio::time::Instant;

use super::heartbeat::HeartbeatMsg;
use super::{marks, token, ClusterErr, ClusterNode, TakebackHold};
use crate::registry::takes_messages;

impl ClusterNode {
    /// Drains the node before it stops: every name it holds moves, by a
    /// planned takeover with its state, to the first live node in the
    /// name's placement that does not drain; placement moves no name here
    /// until [`undrain`](Self::undrain). Returns once each move is
    /// confirmed (this node's registration of the name is gone, its
    /// successor holds) and every call this node forwarded meanwhile has
    /// been answered (the answers travel through this process), or fails
    /// with [`DrainErr::Incomplete`] when `timeout` passes first, saying
    /// what did not move. The node keeps draining after either: stop it, or
    /// call [`undrain`](Self::undrain).
    ///
    /// How others learn of it: a marker actor of this node in the pg group
    /// [`DRAINING_GROUP`](super::DRAINING_GROUP), which dies with the node,
    /// so a node that dies midway leaves no mark and its names fail over as
    /// from any node that died (see [`crate::drain`]). Only servers with a
    /// [`crate::Placement`] move; one without stays until the node stops.
    ///
    /// [`DrainErr::Incomplete`]: crate::drain::DrainErr::Incomplete
    pub async fn drain(
        &self,
        timeout: Duration,
    ) -> Result<crate::drain::DrainReport, crate::drain::DrainErr> {
        let started = Instant::now();
        let deadline = started + timeout;
        // The names held now: a takeover to this node that lands after the
        // mark is a name the placement of its node did not see us drain in.
        let names: BTreeSet<String> = self
            .shared()
            .lock()
            .local
            .values()
            .map(|(info, _, _)| info.name.clone())
            .collect();
        self.mark_draining()
            .await
            .map_err(|e| crate::drain::DrainErr::Announce(e.to_string()))?;
        tracing::info!(names = names.len(), "draining");
        let names = names
            .into_iter()
            .filter(|n| crate::drain::moves(n))
            .collect();
        let mut report = crate::drain::wait_moved(self, names, started, deadline).await;
        if report.is_ok() {
            self.flush_callers(deadline).await;
            let names = report.map(|r| r.moved.into_iter().map(|m| m.name).collect());
            report = match names {
                Ok(names) => crate::drain::wait_moved(self, names, started, deadline).await,
                Err(e) => Err(e),
            };
        }
        match &report {
            Ok(r) => tracing::info!(moved = r.moved.len(), took = ?r.took, "drained"),
            Err(e) => tracing::warn!(error = %e, "drain incomplete"),
        }
        report
    }

    /// After the names moved: makes sure that every call a peer sent to
    /// one of this node's registrations before it saw the registration
    /// leave is counted (see `crate::drain::relay`), so that the drain waits
    /// for its answer. A ping round trip to every live peer first: a
    /// session delivers in order, so once a peer answers, it has applied
    /// our registrations' leaves (it sends no more calls here) and every
    /// call it sent before has reached this process's mailboxes. Then each
    /// lingering token answers a flush call: it handled, and counted,
    /// every call queued before. Bounded by `deadline`: the wait for the
    /// answers that follows reports what is left.
    async fn flush_callers(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .inner
            .heartbeat
            .call(HeartbeatMsg::Barrier, Some(left))
            .await;
        let tokens: Vec<ActorCell> = {
            let mut s = self.shared().lock();
            s.lingering.retain(|_, (token, _)| takes_messages(token));
            s.lingering.values().map(|(t, _)| t.clone()).collect()
        };
        for token in tokens {
            let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
            let flush = ractor::message::SerializedMessage::Call {
                variant: token::FLUSH.to_string(),
                args: Vec::new(),
                reply: tx.into(),
                metadata: None,
            };
            if token.send_serialized(flush).is_ok() {
                let _ = tokio::time::timeout_at(deadline, rx).await;
            }
        }
    }

    async fn mark_draining(&self) -> Result<(), ractor::SpawnErr> {
        if self.is_draining() {
            return Ok(());
        }
        let marker = marks::start_drain(&self.inner.config.node).await?;
        let mut slot = self
            .inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &*slot {
            // Two drains at once: keep the first mark.
            Some(_) => marker.stop(None),
            None => *slot = Some(marker),
        }
        Ok(())
    }

    /// Calls a drain off: placement may move names here again.
    pub fn undrain(&self) {
        let marker = self
            .inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(marker) = marker {
            marker.stop(None);
        }
    }

    /// Whether this node drains (its mark is set).
    pub fn is_draining(&self) -> bool {
        self.inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Holds takeovers back on every node until the returned hold is
    /// dropped: a standby of higher priority than its name's holder does
    /// not take the name back meanwhile (vacant names and names on a
    /// draining node still move). For a rolling restart: hold, then drain
    /// and restart each node in turn, then release, so each name moves once
    /// per restart of its holder's node instead of back to every node that
    /// returns. Any node may hold, a client-only one too; the hold dies
    /// with its node, so a wave whose driver crashes does not hold forever.
    pub async fn hold_takeback(&self) -> Result<TakebackHold, ClusterErr> {
        let marker = marks::start_hold(&self.inner.config.node).await?;
        Ok(TakebackHold::new(marker))
    }
}
