//! What both heartbeat paths record in the view they share: the detector's
//! rule, the numbered ping rounds whose send times the lease counts, a
//! peer coming up or going down, and the stall rule (a node whose own
//! timer fired far late, or whose runtime resumed, fences its lease and
//! gives every peer a fresh detection window). The beacon's thread and the
//! session actor call the same functions, so a sign of life on either
//! path counts alike.

use tokio::time::Instant;

use crate::cluster::{detector, ClusterConfig, Shared};
use crate::{NodeName, RegistryEvent};

/// The detector's rule with these settings.
pub(crate) fn rule(config: &ClusterConfig) -> detector::Rule {
    detector::Rule {
        floor: config.detection_time(),
        ceiling: config.effective_max_detection(),
        phi: config.phi_threshold,
        // A quarter of the interval: scheduling jitter on a quiet host is
        // far below it, so regular beats keep detection at the floor.
        min_std_dev: config.heartbeat_interval / 4,
    }
}

/// A new ping round, sent on either path: its number, with its send time
/// kept for the lease.
pub(crate) fn next_round(shared: &Shared, config: &ClusterConfig) -> u64 {
    let now = Instant::now();
    let mut s = shared.lock();
    s.seq += 1;
    let seq = s.seq;
    s.sent.push_back((seq, now));
    // A pong older than the detection time gives no lease anyway.
    let keep = config.effective_max_detection() * 2;
    while s
        .sent
        .front()
        .is_some_and(|(_, at)| now.duration_since(*at) > keep)
    {
        s.sent.pop_front();
    }
    seq
}

/// `node` gave a sign of life (`beat`: a ping, of its own rhythm, else a
/// pong). It is up once it also has a session with us (its registrations
/// reach us there). Returns whether it just came up.
pub(crate) fn heard(
    shared: &Shared,
    config: &ClusterConfig,
    node: &NodeName,
    beat: bool,
    client: bool,
) -> bool {
    let now = Instant::now();
    let new = {
        let mut s = shared.lock();
        let arrivals = s.arrivals.entry(node.clone()).or_default();
        if beat {
            arrivals.beat(now, config.effective_max_detection());
        } else {
            arrivals.heard(now);
        }
        if client {
            s.clients.insert(node.clone());
        } else {
            s.clients.remove(node);
        }
        if !s.sessions.contains(node) {
            return false;
        }
        s.known_down.remove(node);
        s.alive.insert(node.clone())
    };
    if new {
        tracing::info!(node = %config.node, peer = %node, client, "peer up");
        shared.emit(RegistryEvent::NodeUp(node.clone()));
        shared.bump();
    }
    new
}

/// `node` answered ping `seq`: its lease evidence is that ping's send time,
/// unless `node` declared us down since it last synced with us on the
/// session (`downs` above what we accounted for): then a standby of its may
/// have taken a name of ours, and only a pong on the session, which comes
/// after its registrations, lets us count it again.
pub(crate) fn answered(
    shared: &Shared,
    node: &NodeName,
    seq: u64,
    inc: u64,
    downs: u64,
    on_session: bool,
) {
    let mut s = shared.lock();
    let Some(&(_, sent)) = s.sent.iter().find(|(n, _)| *n == seq) else {
        return;
    };
    let accounted = match s.accounted.get(node) {
        Some(&(i, d)) if i == inc => d,
        _ => 0,
    };
    if on_session {
        s.accounted
            .insert(node.clone(), (inc, accounted.max(downs)));
    } else if downs > accounted {
        return;
    }
    if s.alive.contains(node) {
        let at = s.answered.entry(node.clone()).or_insert(sent);
        *at = (*at).max(sent);
    }
}

/// Declares `node` down (if it was up). Returns whether it was.
pub(crate) fn declare_down(
    shared: &Shared,
    config: &ClusterConfig,
    node: &NodeName,
    why: &str,
) -> bool {
    let was = {
        let mut s = shared.lock();
        s.answered.remove(node);
        s.arrivals.remove(node);
        s.known_down.insert(node.clone());
        let was = s.alive.remove(node);
        if was {
            *s.downs.entry(node.clone()).or_default() += 1;
        }
        was
    };
    if was {
        tracing::warn!(node = %config.node, peer = %node, why, "peer down");
        shared.emit(RegistryEvent::NodeDown(node.clone()));
        shared.bump();
    }
    was
}

/// This process's beacon timer fired far late (`gap` after the previous
/// tick): the whole process stalled (stopped, starved or swapped; the
/// beacon's thread runs whatever the runtime does). Its sockets may hold
/// fresh pongs (and pg changes) it has not read, so it suspects itself
/// before anyone else: every peer gets a fresh detection window from now,
/// and the lease counts only pongs to pings sent from now on.
pub(crate) fn stalled(
    shared: &Shared,
    config: &ClusterConfig,
    gap: std::time::Duration,
    now: Instant,
) {
    tracing::warn!(node = %config.node, ?gap, "this node stalled: re-syncing before judging peers");
    {
        let mut s = shared.lock();
        for arrivals in s.arrivals.values_mut() {
            arrivals.refresh(now);
        }
        s.fence = Some(now);
    }
    shared.bump();
}

/// This node's runtime runs again after a wedge (the beacon fell silent
/// for it: see `liveness`). Peers may have declared this node down and let
/// a standby take its names, and the runtime has not yet read what they
/// sent meanwhile: the lease counts only pongs to pings sent from now on,
/// as after a stall. (The pongs before the silence have run out by now;
/// this is the belt to that brace.)
pub(crate) fn runtime_resumed(shared: &Shared, config: &ClusterConfig, now: Instant) {
    tracing::debug!(node = %config.node, "runtime resumed: lease fenced until peers answer again");
    shared.lock().fence = Some(now);
    shared.bump();
}
