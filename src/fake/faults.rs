//! The faults real machines have beyond a lost or slow network: a paused
//! process, a frame over a link's size limit, a slow dial after a restart.
//!
//! - `pause(a)` / `resume(a)`: `a` hangs (SIGSTOP, a GC pause, a VM
//!   migration). Nothing reaches it and nothing leaves it: every link into
//!   and out of it stops, and what is sent meanwhile queues, in order. Its
//!   heartbeats stop with it, so each peer sees it down once
//!   [`FakeCluster::set_detection_time`] has passed, as a real node's
//!   heartbeat does; on `resume` it gets everything that queued at once and
//!   what it sent meanwhile goes out, then the peers hear from it again (its
//!   registrations come back to their views, as pg never lost them). Its
//!   lease ([`crate::Registry::lease_until`]) is void while it is paused,
//!   and after the resume until every peer that saw it down re-synced with
//!   it (that peer's answer comes after whatever it sent meanwhile). Its
//!   instances are ordinary actors of this process: a timer of theirs can
//!   still fire during the pause, but whatever it makes them send waits with
//!   the rest, and whatever would reach them from another node too.
//! - `set_frame_limit(a, b, max)`: `b` takes no frame above `max` bytes from
//!   `a`, as ractor_cluster's inbound frame cap: an oversized frame closes
//!   the session, both sides see each other down at once, everything in
//!   flight on it both ways is lost (a call in flight gets no answer), and a
//!   new session syncs both views again [`REDIAL_AFTER`] later (the real
//!   backend's next dial); what crosses meanwhile is lost too.
//! - `set_frame_cap(max)`: every node is configured with this inbound frame
//!   cap (as `ClusterConfig::max_frame_bytes`): every link takes no frame
//!   above it, with the same effect, and every node's registry reports it
//!   ([`crate::Registry::max_frame_bytes`]), so an instance whose part size
//!   cannot fit refuses to start. A `set_frame_limit` is a fault on top that
//!   no node knows of (a peer configured with a smaller cap): a real node
//!   knows only its own configuration, and an instance restarted during
//!   such a fault starts as it would on a real cluster.
//! - `delay_dial(a, b, d)`: the next time `a` restarts, its session with `b`
//!   comes up only `d` later; until then what would cross is dropped and
//!   each side counts the other as down.

use std::collections::HashSet;
use std::time::Duration;

use ractor::message::SerializedMessage;
use tokio::sync::watch;

use super::{pair, FakeCluster, Item, ItemKind, Link, Op, World};
use crate::NodeName;

/// How long a session closed by an oversized frame stays down: the real
/// backend dials the peer again at its next heartbeat tick
/// (`cluster/heartbeat/dial.rs`; 200 ms by default), not at once. Reopened
/// at once, two holders whose merge offers were over a link's limit closed
/// and reopened their session over and over in no time at all: the
/// schedule's clock never moved on (fault seed 186 with retries, which ran
/// out of memory).
pub(super) const REDIAL_AFTER: Duration = Duration::from_millis(200);

impl World {
    /// The switch that stops and starts `link`, set as it should be now.
    pub(super) fn hold_switch(&mut self, link: &Link) -> &watch::Sender<bool> {
        let held = self.link_stopped(link);
        self.held
            .entry(link.clone())
            .or_insert_with(|| watch::channel(held).0)
    }

    fn link_stopped(&self, link: &Link) -> bool {
        self.user_held.contains(link)
            || self.paused.contains_key(&link.0)
            || self.paused.contains_key(&link.1)
    }

    /// Starts or stops `link` after a hold, release, pause or resume.
    pub(super) fn refresh_hold(&mut self, link: &Link) {
        let held = self.link_stopped(link);
        self.hold_switch(link).send_replace(held);
    }

    /// Every link into and out of `node`.
    fn links_of(&self, node: &NodeName) -> Vec<Link> {
        self.nodes
            .keys()
            .filter(|p| *p != node)
            .flat_map(|p| [(node.clone(), p.clone()), (p.clone(), node.clone())])
            .collect()
    }

    /// Ends a pause of `node` (a resume, or a crash of the paused node), and
    /// returns the peers that saw it down meanwhile.
    pub(super) fn unpause(&mut self, node: &NodeName) -> Vec<NodeName> {
        let Some(pause) = self.paused.remove(node) else {
            return Vec::new();
        };
        for link in self.links_of(node) {
            self.refresh_hold(&link);
        }
        pause.seen_down
    }
}

/// A pause in progress.
pub(super) struct Pause {
    /// Which pause, so a detection timer of an earlier one does nothing.
    number: u64,
    /// Peers that saw the node down during it.
    seen_down: Vec<NodeName>,
}

impl Item {
    /// The bytes this item takes on a real link, if a frame limit applies
    /// to it (registry changes are small and not counted).
    pub(super) fn frame_size(&self) -> Option<usize> {
        match &self.kind {
            ItemKind::Wire { msg, .. } => Some(match msg {
                SerializedMessage::Call {
                    variant,
                    args,
                    metadata,
                    ..
                }
                | SerializedMessage::Cast {
                    variant,
                    args,
                    metadata,
                } => variant.len() + args.len() + metadata.as_ref().map_or(0, Vec::len),
                _ => 0,
            }),
            ItemKind::Answer(_, bytes) => Some(bytes.len()),
            ItemKind::Op(_) => None,
        }
    }
}

impl FakeCluster {
    /// How long peers take to see a paused node down (1 s by default, as a
    /// real node's default heartbeat, 200 ms x 5).
    pub fn set_detection_time(&self, detection: Duration) {
        self.world().detection = detection;
    }

    /// Pauses `node` (see the module docs): its links stop both ways and its
    /// peers see it down after the detection time.
    pub fn pause(&self, node: &str) {
        tracing::info!("--- pause {node}");
        let id: NodeName = node.into();
        let mut w = self.world();
        if !w.nodes.get(&id).is_some_and(|n| n.up) || w.paused.contains_key(&id) {
            return;
        }
        w.pauses += 1;
        let number = w.pauses;
        w.paused.insert(
            id.clone(),
            Pause {
                number,
                seen_down: Vec::new(),
            },
        );
        for link in w.links_of(&id) {
            w.refresh_hold(&link);
        }
        let detection = w.detection;
        drop(w);
        let cluster = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(detection).await;
            cluster.pause_detected(&id, number);
        });
    }

    /// The peers' heartbeats have missed a paused node for the detection time.
    fn pause_detected(&self, id: &NodeName, number: u64) {
        let mut w = self.world();
        if w.paused.get(id).is_none_or(|p| p.number != number) {
            return;
        }
        let peers: Vec<NodeName> = w
            .nodes
            .iter()
            .filter(|(p, n)| {
                *p != id && n.up && !w.paused.contains_key(*p) && !w.cut.contains(&pair(id, p))
            })
            .map(|(p, _)| p.clone())
            .collect();
        tracing::info!("--- {id} seen down by {peers:?} (paused)");
        for peer in &peers {
            if let Some(n) = w.nodes.get_mut(peer) {
                n.apply(Op::NodeDown(id.clone()));
            }
        }
        if let Some(p) = w.paused.get_mut(id) {
            p.seen_down = peers;
        }
    }

    /// Resumes a paused `node`: what queued is delivered both ways, in order,
    /// and the peers that saw it down hear from it again.
    pub fn resume(&self, node: &str) {
        tracing::info!("--- resume {node}");
        let id: NodeName = node.into();
        let mut w = self.world();
        let seen_down = w.unpause(&id);
        if !w.nodes.get(&id).is_some_and(|n| n.up) {
            return;
        }
        for peer in seen_down {
            // After whatever it sent while paused, on the same link.
            let sync = Op::Sync {
                from: id.clone(),
                entries: w.nodes[&id].entries_of(&id),
                newest: w.nodes[&id].newest(),
                marks: w.nodes[&id].own,
                restarted: false,
            };
            self.enqueue(&mut w, &id, &peer, ItemKind::Op(sync));
            let reachable = w.nodes.get(&peer).is_some_and(|p| p.up)
                && !w.cut.contains(&pair(&id, &peer))
                && !w.dialing.contains_key(&pair(&id, &peer));
            if !reachable {
                continue;
            }
            // The peer's answer, after whatever it sent meanwhile (a newer
            // registration of a name we held, say): until it arrives, the
            // lease stays void, so the resumed node's holders see that
            // registration before they may answer again.
            if let Some(n) = w.nodes.get_mut(&id) {
                n.fencing.insert(peer.clone());
            }
            let answer = Op::Sync {
                from: peer.clone(),
                entries: w.nodes[&peer].entries_of(&peer),
                newest: w.nodes[&peer].newest(),
                marks: w.nodes[&peer].own,
                restarted: false,
            };
            self.enqueue(&mut w, &peer, &id, ItemKind::Op(answer));
        }
    }

    /// Whether `node` is paused.
    pub fn is_paused(&self, node: &str) -> bool {
        self.world().paused.contains_key(&NodeName::new(node))
    }

    /// Sets the largest frame `to` takes from `from` (`None`: no limit).
    pub fn set_frame_limit(&self, from: &str, to: &str, max: Option<usize>) {
        let link: Link = (from.into(), to.into());
        let mut w = self.world();
        match max {
            Some(max) => w.frame_limit.insert(link, max),
            None => w.frame_limit.remove(&link),
        };
    }

    /// Sets the inbound frame cap every node is configured with (`None`: no
    /// cap; see the module docs).
    pub fn set_frame_cap(&self, max: Option<usize>) {
        self.world().frame_cap = max;
    }

    /// The frame cap every node is configured with.
    pub(super) fn frame_cap(&self) -> Option<usize> {
        self.world().frame_cap
    }

    /// An oversized frame reached `to` from `from`: the session between them
    /// closes (everything in flight on it is lost), both see each other down
    /// at once, and a new session syncs both views [`REDIAL_AFTER`] later.
    /// Caller holds the lock.
    pub(super) fn close_session(&self, w: &mut World, from: &NodeName, to: &NodeName, size: usize) {
        tracing::info!("--- a {size}-byte frame from {from} to {to} closes their session");
        *w.session.entry(pair(from, to)).or_default() += 1;
        for (me, other) in [(from, to), (to, from)] {
            if let Some(n) = w.nodes.get_mut(me).filter(|n| n.up) {
                n.apply(Op::NodeDown(other.clone()));
            }
        }
        if w.cut.contains(&pair(from, to)) {
            return;
        }
        let dial = begin_dial(w, from, to);
        let (cluster, from, to) = (self.clone(), from.clone(), to.clone());
        tokio::spawn(async move {
            tokio::time::sleep(REDIAL_AFTER).await;
            cluster.reopen_session(&from, &to, dial);
        });
    }

    /// The dial after an oversized frame completed (unless a crash, a cut or
    /// a later dial made it moot): a new session syncs both views.
    fn reopen_session(&self, from: &NodeName, to: &NodeName, dial: u64) {
        let mut w = self.world();
        if !end_dial(&mut w, from, to, dial) || w.cut.contains(&pair(from, to)) {
            return;
        }
        for (a, b) in [(from, to), (to, from)] {
            if !w.nodes.get(a).is_some_and(|n| n.up) {
                continue;
            }
            let sync = Op::Sync {
                from: a.clone(),
                entries: w.nodes[a].entries_of(a),
                newest: w.nodes[a].newest(),
                marks: w.nodes[a].own,
                restarted: false,
            };
            self.enqueue(&mut w, a, b, ItemKind::Op(sync));
        }
    }

    /// Every message to a standby-group entry (a standby's registration,
    /// which replicas and checkpoints go to) reaches its instance `delay`
    /// after it reached the node, in order among themselves, while
    /// messages to the instance's other registration come straight. The
    /// real backend relays each registration's messages through a token
    /// actor of its own, so two messages a holder sent in order, one to a
    /// standby's entry and one to the same instance as a puller, can be
    /// handled in either order.
    pub fn delay_standby_entries(&self, delay: Duration) {
        self.world().entry_delay = delay;
    }

    /// The next restart of `node` completes its session with `peer` only
    /// `delay` later (a slow or failing dial).
    pub fn delay_dial(&self, node: &str, peer: &str, delay: Duration) {
        self.world()
            .dial_delay
            .insert((node.into(), peer.into()), delay);
    }

    /// At a restart of `node`: the peers whose session dials slowly, now
    /// counted down and cut until their dial completes. Caller holds the lock.
    pub(super) fn start_slow_dials(&self, w: &mut World, node: &NodeName) -> HashSet<NodeName> {
        let slow: Vec<(NodeName, Duration)> = w
            .dial_delay
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|((_, p), d)| (p.clone(), *d))
            .collect();
        let mut out = HashSet::new();
        for (peer, delay) in slow {
            w.dial_delay.remove(&(node.clone(), peer.clone()));
            let dial = begin_dial(w, node, &peer);
            out.insert(peer.clone());
            let cluster = self.clone();
            let node = node.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                cluster.dial_done(&node, &peer, dial);
            });
        }
        out
    }

    /// A slow dial completed: the session syncs both views, as at a restart.
    fn dial_done(&self, node: &NodeName, peer: &NodeName, dial: u64) {
        let mut w = self.world();
        // Only the dial still pending on this pair ends here. One that a
        // crash of either side made moot must leave alone the slow dial a
        // later restart started on the same pair: ending that one would
        // open the link without the sync, and the views would never meet
        // (fault seed 2324582863).
        if !end_dial(&mut w, node, peer, dial) {
            return;
        }
        let both_up = [node, peer]
            .iter()
            .all(|n| w.nodes.get(*n).is_some_and(|s| s.up));
        if !both_up || w.cut.contains(&pair(node, peer)) {
            return;
        }
        tracing::info!("--- {node} completes its session with {peer}");
        self.sync_restarted(&mut w, node, peer);
    }
}

/// Starts a dial between `a` and `b`: until it ends, what would cross their
/// link is dropped, as a cut does. Returns its number, which only that dial
/// ends with (see [`end_dial`]).
fn begin_dial(w: &mut World, a: &NodeName, b: &NodeName) -> u64 {
    w.dials += 1;
    w.dialing.insert(pair(a, b), w.dials);
    w.dials
}

/// Ends dial `dial` between `a` and `b` if it is still the pair's pending
/// one; whether it was. A dial that a crash made moot, or that a later dial
/// replaced, ends nothing.
fn end_dial(w: &mut World, a: &NodeName, b: &NodeName, dial: u64) -> bool {
    if w.dialing.get(&pair(a, b)) != Some(&dial) {
        return false;
    }
    w.dialing.remove(&pair(a, b));
    true
}
