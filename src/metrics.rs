//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): install any exporter's recorder (Prometheus, StatsD,
//! OpenTelemetry, ...) and every server of the process records into it.
//!
//! Every metric has the labels `name` (the global name) and `node` (the node
//! of the instance that records it); some have one more.
//!
//! | metric | kind | more labels | unit | what it counts |
//! |---|---|---|---|---|
//! | [`MOVES`] | counter | `reason` | moves | moves of the name to this node, by [`MoveReason`](crate::event::MoveReason) (`drain`, `placement`, `failover`, `conflict`, `requested`); recorded by the new holder, one per [`EventKind::Moved`] |
//! | [`TAKEOVER_PAUSE`] | histogram | | seconds | per takeover, from the steal until the new holder served the calls it buffered meanwhile ([`EventKind::HandoverDone`]'s `pause`; also a pull that ended as a failover, [`EventKind::StateLost`]) |
//! | [`STATE_BYTES`] | histogram | | bytes | per takeover, the encoded state the new holder installed ([`EventKind::StateTransferred`]'s `bytes`; 0 when a synchronous standby had it already) |
//! | [`CALLS_BUFFERED`] | gauge | | calls | calls waiting in the instance's handover buffer (a pull under way, or a holder holding its calls), after each message it handled |
//! | [`CALLS_HELD`] | counter | `cause` | calls | calls a holder put in its buffer because it had no majority in view (`quorum`) or no lease (`lease`, see `docs/lease.md`) |
//! | [`CHECKPOINT_LAG`] | gauge | | calls | with warm or synchronous standby: calls the holder handled since its last checkpoint or replica went out (or since it became holder); what a crash now could lose. 0 on an instance that does not hold |
//! | [`EVENTS`] | counter | `kind` | events | every [`TakeoverEvent`], by kind in snake case (`registered`, `handover_done`, `checkpoint_sent`, ...) |
//!
//! The moves, pauses, bytes and events are recorded when the event is
//! published, so they reach whatever recorder is installed then. The
//! gauges and [`CALLS_HELD`] use handles an instance takes when it spawns
//! (a lookup per call would cost every call): install the recorder before
//! spawning the servers, as exporters expect anyway. An instance that stops
//! sets its gauges to 0.

use ::metrics::{Counter, Gauge, Unit};

use crate::{EventKind, NodeName, TakeoverEvent};

/// Counter: moves of a name to this node, labelled `name`, `node`, `reason`.
pub const MOVES: &str = "ractor_takeover_moves_total";
/// Histogram, seconds: the takeover pause, labelled `name`, `node`.
pub const TAKEOVER_PAUSE: &str = "ractor_takeover_takeover_pause_seconds";
/// Histogram, bytes: the state a takeover moved, labelled `name`, `node`.
pub const STATE_BYTES: &str = "ractor_takeover_state_bytes_moved";
/// Gauge, calls: the handover buffer's length, labelled `name`, `node`.
pub const CALLS_BUFFERED: &str = "ractor_takeover_calls_buffered";
/// Counter, calls: calls held for want of a quorum or a lease, labelled
/// `name`, `node`, `cause` (`quorum`, `lease`).
pub const CALLS_HELD: &str = "ractor_takeover_calls_held_total";
/// Gauge, calls: calls handled since the last checkpoint, labelled `name`,
/// `node`.
pub const CHECKPOINT_LAG: &str = "ractor_takeover_checkpoint_lag_calls";
/// Counter: takeover events, labelled `name`, `node`, `kind`.
pub const EVENTS: &str = "ractor_takeover_events_total";

/// Why a holder held a call, for [`CALLS_HELD`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum HeldFor {
    Quorum,
    Lease,
}

/// Records what `event` says: the moves, the pause and bytes of a takeover,
/// and the event itself.
pub(crate) fn on_event(event: &TakeoverEvent) {
    let at = labels(&event.name, &event.node);
    match &event.kind {
        EventKind::Moved { reason, .. } => {
            let [name, node] = at.clone();
            ::metrics::counter!(MOVES, &[name, node, ("reason", reason.to_string())]).increment(1);
        }
        EventKind::HandoverDone { pause, .. } => {
            ::metrics::histogram!(TAKEOVER_PAUSE, &at).record(pause.as_secs_f64());
        }
        EventKind::StateTransferred { bytes, .. } => {
            ::metrics::histogram!(STATE_BYTES, &at).record(*bytes as f64);
        }
        _ => {}
    }
    let [name, node] = at;
    let kind = ("kind", kind(&event.kind).to_owned());
    ::metrics::counter!(EVENTS, &[name, node, kind]).increment(1);
}

/// The labels every metric has.
fn labels(name: &str, node: &NodeName) -> [(&'static str, String); 2] {
    [
        ("name", name.to_owned()),
        ("node", node.as_str().to_owned()),
    ]
}

/// An instance's own handles: its gauges and held-calls counters.
pub(crate) struct Instance {
    buffered: Gauge,
    lag: Gauge,
    held_quorum: Counter,
    held_lease: Counter,
}

impl Instance {
    /// The handles of the instance of `name` on `node`, from the recorder
    /// installed now. Describes the metrics to it too: describing is
    /// idempotent, and a recorder installed after an earlier instance
    /// would otherwise never learn the units.
    pub(crate) fn new(name: &str, node: &NodeName) -> Self {
        describe();
        let at = labels(name, node);
        let held = |cause: &str| {
            let [name, node] = at.clone();
            ::metrics::counter!(CALLS_HELD, &[name, node, ("cause", cause.to_owned())])
        };
        Self {
            buffered: ::metrics::gauge!(CALLS_BUFFERED, &at),
            lag: ::metrics::gauge!(CHECKPOINT_LAG, &at),
            held_quorum: held("quorum"),
            held_lease: held("lease"),
        }
    }

    /// Sets the gauges: `buffered` calls wait, `lag` calls since the last
    /// checkpoint (`None`: no standby gets checkpoints, no gauge).
    pub(crate) fn sample(&self, buffered: usize, lag: Option<u64>) {
        self.buffered.set(buffered as f64);
        if let Some(lag) = lag {
            self.lag.set(lag as f64);
        }
    }

    /// A holder put a call in its buffer for `cause`.
    pub(crate) fn held(&self, cause: HeldFor) {
        match cause {
            HeldFor::Quorum => self.held_quorum.increment(1),
            HeldFor::Lease => self.held_lease.increment(1),
        }
    }
}

impl Drop for Instance {
    /// A stopped instance buffers nothing and holds no state to lose: its
    /// gauges must not keep the last values it set.
    fn drop(&mut self) {
        self.buffered.set(0.0);
        self.lag.set(0.0);
    }
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("metrics::Instance").finish_non_exhaustive()
    }
}

/// The units and help texts, for exporters that print them.
fn describe() {
    ::metrics::describe_counter!(MOVES, "moves of the name to this node, by reason");
    ::metrics::describe_histogram!(
        TAKEOVER_PAUSE,
        Unit::Seconds,
        "per takeover, from the steal until the buffered calls were served"
    );
    ::metrics::describe_histogram!(
        STATE_BYTES,
        Unit::Bytes,
        "per takeover, the encoded state the new holder installed"
    );
    ::metrics::describe_gauge!(
        CALLS_BUFFERED,
        Unit::Count,
        "calls waiting in the handover buffer"
    );
    ::metrics::describe_counter!(
        CALLS_HELD,
        Unit::Count,
        "calls held for want of a quorum or a lease"
    );
    ::metrics::describe_gauge!(
        CHECKPOINT_LAG,
        Unit::Count,
        "calls handled since the last checkpoint went to the standbys"
    );
    ::metrics::describe_counter!(EVENTS, "takeover events, by kind");
}

/// The `kind` label of an event. An exhaustive match: a new kind does not
/// compile until it has a label.
fn kind(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Registered { .. } => "registered",
        EventKind::Standby { .. } => "standby",
        EventKind::TakeoverStarted { .. } => "takeover_started",
        EventKind::StateSent { .. } => "state_sent",
        EventKind::StateTransferred { .. } => "state_transferred",
        EventKind::HandoverDone { .. } => "handover_done",
        EventKind::TakeoverAborted { .. } => "takeover_aborted",
        EventKind::StateLost { .. } => "state_lost",
        EventKind::HandoverResumed { .. } => "handover_resumed",
        EventKind::Retired { .. } => "retired",
        EventKind::ConflictSuspected { .. } => "conflict_suspected",
        EventKind::ConflictWon { .. } => "conflict_won",
        EventKind::ConflictLost { .. } => "conflict_lost",
        EventKind::MergeMissed { .. } => "merge_missed",
        EventKind::SplitBrainHealed { .. } => "split_brain_healed",
        EventKind::CheckpointSent { .. } => "checkpoint_sent",
        EventKind::CheckpointStored { .. } => "checkpoint_stored",
        EventKind::CheckpointRejected { .. } => "checkpoint_rejected",
        EventKind::SyncLost { .. } => "sync_lost",
        EventKind::SyncRestored => "sync_restored",
        EventKind::BufferFull { .. } => "buffer_full",
        EventKind::QuorumLost { .. } => "quorum_lost",
        EventKind::QuorumRegained => "quorum_regained",
        EventKind::TakeoverFailed { .. } => "takeover_failed",
        EventKind::HandlerFailed { .. } => "handler_failed",
        EventKind::LeaseLost => "lease_lost",
        EventKind::LeaseRegained => "lease_regained",
        EventKind::Moved { .. } => "moved",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::registry::RegistrationInfo;

    /// A takeover pause goes in seconds, as the name says: 250 ms is 0.25.
    /// Why here and not in `tests/metrics.rs`: there the pause is measured,
    /// so only its presence can be checked without a timed assertion.
    #[test]
    fn a_takeover_pause_is_recorded_in_seconds() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let event = TakeoverEvent {
            name: "n".into(),
            node: NodeName::new("b"),
            epoch: Some(3),
            kind: EventKind::HandoverDone {
                from: RegistrationInfo {
                    name: "n".into(),
                    epoch: 1,
                    node: NodeName::new("a"),
                },
                pause: Duration::from_millis(250),
                buffered: 0,
            },
        };
        ::metrics::with_local_recorder(&recorder, || on_event(&event));
        let pauses: Vec<f64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == TAKEOVER_PAUSE)
            .flat_map(|(.., value)| match value {
                DebugValue::Histogram(xs) => xs.into_iter().map(|x| x.into_inner()).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(pauses, vec![0.25]);
    }
}
