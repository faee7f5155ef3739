//! A run's history, replayed once: which instance held which state when,
//! who crashed, who failed over from whom, which call was applied where.
//! Every invariant (`invariants.rs`) and every known gap's signature
//! (`known_gaps.rs`) reads these facts instead of walking the log again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ractor::ActorId;
use ractor_takeover::event::EventKind;
use ractor_takeover::registry::{NodeName, RegistrationInfo};
use ractor_takeover::status::CheckpointInfo;
use ractor_takeover::*;

use crate::harness::Outcome;
use crate::ledger::{CallId, Entry, LedgerReply};
use crate::NODES;

/// One instance's history as a holder: its state after each logged step,
/// with the number of calls it had handled then.
pub type History = Vec<(u64, BTreeSet<CallId>)>;

/// An instance that ran `go` as a failover.
pub struct Failover {
    /// Its `go`'s position in the log.
    pub at: usize,
    pub by: ActorId,
    pub from: NodeName,
    pub checkpoint: Option<CheckpointInfo>,
    /// The state it started with.
    pub content: BTreeSet<CallId>,
}

/// A time two nodes could not talk (log positions `from..to`; `to` is the
/// log's end if it never ended before the final heal).
#[derive(Clone, Debug)]
pub struct Separation {
    /// The nodes (a paused node is separated from both others).
    pub nodes: (usize, usize),
    pub from: usize,
    pub to: usize,
    /// No heartbeat sees it: an undetected partition (`Fault::Partition`).
    /// A split, a held link and a paused process are detected (the peers
    /// count the other node down after the detection time).
    pub undetected: bool,
    /// A held link (ends at its release), not a split or partition (ends
    /// at a heal of the pair).
    pub held: bool,
}

/// How two holders' answers overlapping a time may be explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apart {
    /// An undetected partition separated them meanwhile: both sides serve,
    /// the documented limit without quorum (issue 10's (ii)).
    Undetected,
    /// Only a detected separation (split, held link, pause): a holder
    /// answered although a peer could have declared it down, what the
    /// holder lease fixes.
    Detected,
    /// Only a detected split or held link of the two nodes, with nothing
    /// between either of them and the third node meanwhile: in quorum mode
    /// both ends see a majority through the third (B12); without quorum,
    /// as `Detected`.
    OneLink,
    /// Nothing separated them.
    Never,
}

/// The facts of one run, from its log and its events.
pub struct Replay<'o> {
    pub outcome: &'o Outcome,
    /// Every instance's state as of its last logged step.
    pub shadow: HashMap<ActorId, BTreeSet<CallId>>,
    pub history: HashMap<ActorId, History>,
    /// Where each instance (last) ran `go`.
    pub go_at: HashMap<ActorId, usize>,
    pub go_start: HashMap<ActorId, StartType>,
    pub go_epoch: HashMap<ActorId, Option<u64>>,
    /// Instances a crash killed: where, and the state they had.
    pub dead: Vec<(ActorId, usize, BTreeSet<CallId>)>,
    pub failovers: Vec<Failover>,
    /// Call -> every (instance, node, epoch) that applied it.
    pub applied: HashMap<CallId, Vec<(ActorId, String, Option<u64>)>>,
    /// Calls an instance applied while its state already had them (the
    /// shadow says so), with the instance and the log position: a second
    /// run in the same lineage, which no retry may cause.
    pub reapplied: Vec<(CallId, ActorId, usize)>,
    /// Epoch -> the instances that ran `go`, applied, read or merged under it.
    pub epoch_insts: BTreeMap<u64, BTreeSet<ActorId>>,
    /// Where each instance stopped holding for good (killed or stopped).
    pub ended: HashMap<ActorId, usize>,
    /// Where each instance last ran go, applied or read.
    pub served_last: HashMap<ActorId, usize>,
    pub normal_starts: Vec<(usize, ActorId)>,
    /// Where nodes crashed: a node's view (and the epochs it has seen) dies
    /// with it.
    pub crashes_at: Vec<usize>,
    pub merges: usize,
    /// What the log showed out of order for invariant 1, in log order (an
    /// instance ran go twice, without an epoch, or applied before go).
    pub log_anomalies: Vec<String>,
    /// Every instance a crash killed.
    pub killed: BTreeSet<ActorId>,
    /// Pullers that reported `StateLost` for an old holder that did not die
    /// (node, epoch): B5's signature.
    pub stranded: BTreeSet<(String, u64)>,
    /// Old holders (node, epoch) whose successor installed their state and
    /// finished, and that never retired: B6's.
    pub unretired: BTreeSet<(String, u64)>,
    /// Old holders (node, epoch) that sent their state to a puller that had
    /// given up: B8's.
    pub abandoned: BTreeSet<(String, u64)>,
    /// Acknowledged call -> the (node, epoch) its acknowledgement named.
    pub acked: BTreeMap<CallId, (String, Option<u64>)>,
    /// Every time two nodes could not talk, in log order.
    pub separations: Vec<Separation>,
}

impl<'o> Replay<'o> {
    /// Replays `o`'s log and events.
    pub fn new(o: &'o Outcome) -> Self {
        let mut r = Replay {
            outcome: o,
            shadow: HashMap::new(),
            history: HashMap::new(),
            go_at: HashMap::new(),
            go_start: HashMap::new(),
            go_epoch: HashMap::new(),
            dead: Vec::new(),
            failovers: Vec::new(),
            applied: HashMap::new(),
            reapplied: Vec::new(),
            epoch_insts: BTreeMap::new(),
            ended: HashMap::new(),
            served_last: HashMap::new(),
            normal_starts: Vec::new(),
            crashes_at: Vec::new(),
            merges: 0,
            log_anomalies: Vec::new(),
            killed: BTreeSet::new(),
            stranded: BTreeSet::new(),
            unretired: BTreeSet::new(),
            abandoned: BTreeSet::new(),
            acked: BTreeMap::new(),
            separations: Vec::new(),
        };
        r.replay_log();
        r.find_separations();
        r.find_stranded_pullers();
        r.find_unfinished_handovers();
        for c in &o.calls {
            if let Ok(LedgerReply::Applied { node, epoch }) = &c.result {
                r.acked.insert(c.call, (node.clone(), *epoch));
            }
        }
        r
    }

    fn find_separations(&mut self) {
        use crate::generator::Fault;
        let end = self.outcome.log.len();
        let mut open: Vec<Separation> = Vec::new();
        let pair = |x: usize, y: usize| (x.min(y), x.max(y));
        // Slow dials waiting for their node's next restart: (node, peer, ms).
        let mut dials: Vec<(usize, usize, u64)> = Vec::new();
        let mut down = [false; NODES.len()];
        // Restarts with a slow dial: (where, node, peer, when the dial is done).
        let mut slow: Vec<(usize, usize, usize, u64)> = Vec::new();
        // Frame limits in force: (where set, the pair); and those lifted,
        // with when (ms).
        let mut limited: Vec<(usize, (usize, usize))> = Vec::new();
        let mut lifted: Vec<(usize, (usize, usize), u64)> = Vec::new();
        for (at, e) in self.outcome.log.iter().enumerate() {
            if let Entry::Crash { node, .. } = e {
                down[*node] = true;
            }
            let Entry::Fault { fault, at_ms } = e else {
                continue;
            };
            match *fault {
                Fault::SlowDial(x, y, d) => dials.push((x, y, d)),
                // A restart of a node that was up is no restart (the
                // harness ignores it) and leaves its dials pending.
                Fault::Restart(x) if down[x] => {
                    down[x] = false;
                    for (n, y, d) in std::mem::take(&mut dials) {
                        if n == x {
                            slow.push((at, x, y, at_ms + d));
                        } else {
                            dials.push((n, y, d));
                        }
                    }
                }
                _ => {}
            }
            let mut close = |nodes: (usize, usize), held: bool, open: &mut Vec<Separation>| {
                open.retain(|s| {
                    let done = s.nodes == nodes && s.held == held;
                    if done {
                        self.separations.push(Separation {
                            to: at,
                            ..s.clone()
                        });
                    }
                    !done
                });
            };
            match *fault {
                Fault::Split(x, y) | Fault::Partition(x, y) | Fault::Hold(x, y) => {
                    open.push(Separation {
                        nodes: pair(x, y),
                        from: at,
                        to: end,
                        undetected: matches!(fault, Fault::Partition(..)),
                        held: matches!(fault, Fault::Hold(..)),
                    });
                }
                Fault::Heal(x, y) => close(pair(x, y), false, &mut open),
                Fault::Release(x, y) => close(pair(x, y), true, &mut open),
                Fault::Pause(n) => {
                    for o in (0..NODES.len()).filter(|o| *o != n) {
                        open.push(Separation {
                            nodes: (n, usize::MAX - o),
                            from: at,
                            to: end,
                            undetected: false,
                            held: false,
                        });
                    }
                }
                Fault::Resume(n) => {
                    for o in (0..NODES.len()).filter(|o| *o != n) {
                        close((n, usize::MAX - o), false, &mut open);
                    }
                }
                Fault::FrameLimit(x, y, Some(_)) => limited.push((at, pair(x, y))),
                Fault::FrameLimit(x, y, None) => {
                    limited.retain(|(from, p)| {
                        let done = *p == pair(x, y);
                        if done {
                            lifted.push((*from, *p, *at_ms));
                        }
                        !done
                    });
                }
                _ => {}
            }
        }
        self.separations.extend(open);
        // Detected separations that the log does not time, each lasting
        // until the first fault at or after a time (`None`: the log's end).
        // A frame limit: any frame over it closes the pair's session, both
        // count each other down, and they talk again only at the next dial
        // (`fake::faults::REDIAL_AFTER`, 200 ms): from the limit's start to
        // 200 ms after it was lifted. A slow dial: the restarted node and
        // that peer count each other down and cannot talk until the dial
        // completes (`delay_dial`).
        let timed = lifted
            .into_iter()
            .map(|(from, nodes, lifted_ms)| (from, nodes, Some(lifted_ms + 200)))
            .chain(limited.into_iter().map(|(from, nodes)| (from, nodes, None)))
            .chain(
                slow.into_iter()
                    .map(|(from, x, y, done_ms)| (from, pair(x, y), Some(done_ms))),
            );
        for (from, nodes, until_ms) in timed {
            let to = until_ms
                .and_then(|ms| {
                    self.outcome.log[from..]
                        .iter()
                        .position(|e| matches!(e, Entry::Fault { at_ms, .. } if *at_ms >= ms))
                })
                .map_or(end, |i| from + i);
            self.separations.push(Separation {
                nodes,
                from,
                to,
                undetected: false,
                held: false,
            });
        }
    }

    /// Whether nodes `x` and `y` (names) were apart at some point between
    /// log positions `from` and `to`: a pause of either counts, as does a
    /// split, partition or held link between them.
    pub fn apart(&self, x: &str, y: &str, from: usize, to: usize) -> Apart {
        let idx = |n: &str| NODES.iter().position(|m| *m == n);
        let (Some(x), Some(y)) = (idx(x), idx(y)) else {
            return Apart::Never;
        };
        let mut seen = Apart::Never;
        for s in &self.separations {
            let (p, q) = s.nodes;
            // A pause is stored as (paused, MAX - other).
            let between = if q > NODES.len() {
                let other = usize::MAX - q;
                (p == x && other == y) || (p == y && other == x)
            } else {
                (p, q) == (x.min(y), x.max(y))
            };
            if !between || s.from > to || s.to < from {
                continue;
            }
            if s.undetected {
                return Apart::Undetected;
            }
            seen = Apart::Detected;
        }
        if seen == Apart::Detected && self.one_link(x, y, from, to) {
            Apart::OneLink
        } else {
            seen
        }
    }

    /// Whether, between `from` and `to`, nodes `x` and `y` (indices) were
    /// separated only by splits or held links of their own link (no pause
    /// of either), and the third node by nothing from either of them.
    fn one_link(&self, x: usize, y: usize, from: usize, to: usize) -> bool {
        let Some(z) = (0..NODES.len()).find(|n| *n != x && *n != y) else {
            return false;
        };
        let overlaps = |s: &Separation| s.from <= to && s.to >= from;
        let touches = |s: &Separation, n: usize| {
            let (p, q) = s.nodes;
            if q > NODES.len() {
                // A pause (paused, MAX - other).
                p == n || usize::MAX - q == n
            } else {
                p == n || q == n
            }
        };
        self.separations.iter().filter(|s| overlaps(s)).all(|s| {
            let pause = s.nodes.1 > NODES.len();
            let own_link = !pause && s.nodes == (x.min(y), x.max(y));
            own_link || !(touches(s, x) || touches(s, y) || touches(s, z))
        })
    }

    /// `x` and the instances its state moved on to by takeover up to log
    /// position `to`, in order: each successor installed (`StateTransferred`)
    /// the state of the one before it, under any epoch that one served.
    /// Why: a call acknowledged by `x` lives on at `x`'s successor once `x`
    /// handed over; whether a later holder could have known of it depends on
    /// whether that successor and the later holder could talk, not `x`.
    pub fn lineage(&self, x: &ActorId, to: usize) -> Vec<ActorId> {
        let mut chain = vec![*x];
        let mut i = 0;
        while i < chain.len() {
            let z = chain[i];
            i += 1;
            let served = |e: u64| self.epoch_insts.get(&e).is_some_and(|s| s.contains(&z));
            for ev in &self.outcome.events {
                let (EventKind::StateTransferred { from, .. }, Some(epoch)) = (&ev.kind, ev.epoch)
                else {
                    continue;
                };
                if from.node.as_str() != self.node_of(&z) || !served(from.epoch) {
                    continue;
                }
                // The successor's go under that epoch, before `to` (an
                // instance can go twice; with B1 an (epoch, node) may repeat:
                // the latest go wins, as in `find_stranded_pullers`).
                let next = self.outcome.log[..to.min(self.outcome.log.len())]
                    .iter()
                    .rev()
                    .find_map(|e| match e {
                        Entry::Go {
                            inst,
                            epoch: Some(e),
                            ..
                        } if *e == epoch && self.node_of(inst) == ev.node.as_str() => Some(inst),
                        _ => None,
                    });
                if let Some(s) = next {
                    if !chain.contains(s) {
                        chain.push(*s);
                    }
                }
            }
        }
        chain
    }

    /// The instances `x`'s state came from by takeover, back to the first
    /// that did not take over (each installed by `StateTransferred` the
    /// state of the one before it), each with the log position until which
    /// it held that state: its successor's go. Why: a call `x` misses
    /// (or a newer epoch it answers after) can be explained by where its
    /// state lived before `x` took it over, as [`Self::lineage`] explains
    /// by where it went after (seed 1506713272: `a` takes over from `c`,
    /// which a slow dial kept from `b`, the other holder).
    pub fn ancestry(&self, x: &ActorId) -> Vec<(ActorId, usize)> {
        let mut chain: Vec<(ActorId, usize)> = Vec::new();
        let mut cur = *x;
        while let Some(&go) = self.go_at.get(&cur) {
            let Some(Some(epoch)) = self.go_epoch.get(&cur).copied() else {
                break;
            };
            let from = self.outcome.events.iter().find_map(|ev| match &ev.kind {
                EventKind::StateTransferred { from, .. }
                    if ev.epoch == Some(epoch) && ev.node.as_str() == self.node_of(&cur) =>
                {
                    Some(from.clone())
                }
                _ => None,
            });
            // The predecessor: the latest instance of that (epoch, node) to
            // run go before `cur` did.
            let prev = from.and_then(|from| {
                self.epoch_insts
                    .get(&from.epoch)
                    .into_iter()
                    .flatten()
                    .filter(|i| self.node_of(i) == from.node.as_str())
                    .filter(|i| self.go_at.get(*i).is_some_and(|g| *g < go))
                    .max_by_key(|i| self.go_at.get(*i).copied().unwrap_or(0))
                    .copied()
            });
            match prev {
                Some(p) if p != *x && !chain.iter().any(|(c, _)| *c == p) => {
                    chain.push((p, go));
                    cur = p;
                }
                _ => break,
            }
        }
        chain
    }

    /// The node an instance ran on ("?" if the harness never spawned it).
    pub fn node_of(&self, id: &ActorId) -> &'static str {
        self.outcome
            .insts
            .get(id)
            .map(|(n, _)| NODES[*n])
            .unwrap_or("?")
    }

    fn replay_log(&mut self) {
        let o = self.outcome;
        let mut handled: HashMap<ActorId, u64> = HashMap::new();
        for (at, e) in o.log.iter().enumerate() {
            if let Entry::Go { inst, .. } | Entry::Apply { inst, .. } | Entry::Read { inst, .. } = e
            {
                self.served_last.insert(*inst, at);
            }
            match e {
                Entry::Go {
                    inst,
                    epoch,
                    start,
                    content,
                } => {
                    self.go_start.insert(*inst, start.clone());
                    let before = self.go_epoch.insert(*inst, *epoch);
                    // A second go is allowed only as a failover under a new
                    // epoch: an old holder whose successor vanished before
                    // confirming the handover resumes that way (`server/handover.rs`).
                    let again_as_failover = matches!(start, StartType::Failover { .. })
                        && before.is_some_and(|b| b.is_some() && b != *epoch);
                    if self.go_at.insert(*inst, at).is_some() && !again_as_failover {
                        self.log_anomalies.push(format!(
                            "instance {inst} on {} ran go twice",
                            self.node_of(inst)
                        ));
                    }
                    self.shadow.insert(*inst, content.clone());
                    let h = *handled.entry(*inst).or_default();
                    self.history
                        .entry(*inst)
                        .or_default()
                        .push((h, content.clone()));
                    match epoch {
                        Some(ep) => {
                            self.epoch_insts.entry(*ep).or_default().insert(*inst);
                        }
                        None => self
                            .log_anomalies
                            .push(format!("instance {inst} ran go without an epoch")),
                    }
                    if *start == StartType::Normal {
                        self.normal_starts.push((at, *inst));
                    }
                    if let StartType::Failover { from, checkpoint } = start {
                        self.failovers.push(Failover {
                            at,
                            by: *inst,
                            from: from.clone(),
                            checkpoint: checkpoint.clone(),
                            content: content.clone(),
                        });
                    }
                }
                Entry::Apply {
                    inst,
                    node,
                    epoch,
                    call,
                } => {
                    match self.shadow.get_mut(inst) {
                        Some(s) => {
                            if !s.insert(*call) {
                                self.reapplied.push((*call, *inst, at));
                            }
                        }
                        None => self
                            .log_anomalies
                            .push(format!("instance {inst} applied {call:?} before it ran go")),
                    }
                    let h = handled.entry(*inst).or_default();
                    *h += 1;
                    let h = *h;
                    if let Some(s) = self.shadow.get(inst) {
                        self.history.entry(*inst).or_default().push((h, s.clone()));
                    }
                    self.applied
                        .entry(*call)
                        .or_default()
                        .push((*inst, node.clone(), *epoch));
                    if let Some(ep) = epoch {
                        self.epoch_insts.entry(*ep).or_default().insert(*inst);
                    }
                }
                Entry::Read { inst, epoch } => {
                    let h = handled.entry(*inst).or_default();
                    *h += 1;
                    let h = *h;
                    if let Some(s) = self.shadow.get(inst) {
                        self.history.entry(*inst).or_default().push((h, s.clone()));
                    }
                    if let Some(ep) = epoch {
                        self.epoch_insts.entry(*ep).or_default().insert(*inst);
                    }
                }
                Entry::Merged {
                    inst,
                    epoch,
                    content,
                    ..
                } => {
                    self.merges += 1;
                    self.shadow.insert(*inst, content.clone());
                    let h = *handled.entry(*inst).or_default();
                    self.history
                        .entry(*inst)
                        .or_default()
                        .push((h, content.clone()));
                    if let Some(ep) = epoch {
                        self.epoch_insts.entry(*ep).or_default().insert(*inst);
                    }
                }
                Entry::Crash { killed, .. } => {
                    self.crashes_at.push(at);
                    for k in killed {
                        self.killed.insert(*k);
                        self.ended.entry(*k).or_insert(at);
                        if let Some(s) = self.shadow.get(k) {
                            self.dead.push((*k, at, s.clone()));
                        }
                    }
                }
                Entry::Stopped { inst } => {
                    self.ended.entry(*inst).or_insert(at);
                }
                Entry::Spawn { .. } | Entry::Fault { .. } => {}
            }
        }
    }

    /// A puller reported `StateLost` for an old holder that did not die (no
    /// crash killed it: it re-registered after winning a conflict, or
    /// retired after a merge).
    fn find_stranded_pullers(&mut self) {
        for lost in &self.outcome.events {
            let (EventKind::StateLost { from }, Some(epoch)) = (&lost.kind, lost.epoch) else {
                continue;
            };
            // With B1 a rank may repeat: the latest instance with it is the one.
            let old = self
                .epoch_insts
                .get(&from.epoch)
                .into_iter()
                .flatten()
                .filter(|i| self.node_of(i) == from.node.as_str())
                .max_by_key(|i| self.go_at.get(*i).copied().unwrap_or(0));
            if old.is_some_and(|i| !self.killed.contains(i)) {
                self.stranded.insert((lost.node.to_string(), epoch));
            }
        }
    }

    /// An old holder sent its state, the new one installed it and finished
    /// (published `HandoverDone`), and the old one never retired; or an old
    /// holder sent its state to a puller that had already given up
    /// (published `StateLost` for it): nobody installs that state.
    fn find_unfinished_handovers(&mut self) {
        let events = &self.outcome.events;
        for sent in events {
            let (EventKind::StateSent { to, .. }, Some(epoch)) = (&sent.kind, sent.epoch) else {
                continue;
            };
            let by_successor = |pred: &dyn Fn(&EventKind) -> bool| {
                events
                    .iter()
                    .any(|d| d.node == to.node && d.epoch == Some(to.epoch) && pred(&d.kind))
            };
            let old = |r: &RegistrationInfo| r.node == sent.node && r.epoch == epoch;
            let gave_up =
                by_successor(&|k| matches!(k, EventKind::StateLost { from } if old(from)));
            let done = by_successor(
                &|k| matches!(k, EventKind::StateTransferred { from, .. } if old(from)),
            ) && by_successor(
                &|k| matches!(k, EventKind::HandoverDone { from, .. } if old(from)),
            );
            let retired = events.iter().any(|r| {
                r.node == sent.node
                    && matches!(&r.kind, EventKind::Retired { to: t, .. } if t == to)
            });
            if gave_up {
                self.abandoned.insert((sent.node.to_string(), epoch));
            } else if done && !retired {
                self.unretired.insert((sent.node.to_string(), epoch));
            }
        }
    }

    /// Did another node's instance hold the name while `x` did (split brain)?
    /// Not when `y` merely handed the name over to `x` (a takeover: `y` then
    /// retires, forwarding, and serves nothing after `x` ran go).
    pub fn split_brain_with(&self, x: &ActorId, crash_at: usize) -> bool {
        let go = self.go_at.get(x).copied().unwrap_or(0);
        self.go_at.iter().any(|(y, y_go)| {
            let y_end = self.ended.get(y).copied().unwrap_or(usize::MAX);
            let handed_over = matches!(self.go_start.get(x),
                Some(StartType::Takeover { from }) if from.as_str() == self.node_of(y))
                && self.served_last.get(y).is_none_or(|last| *last < go);
            self.node_of(y) != self.node_of(x) && *y_go < crash_at && y_end > go && !handed_over
        })
    }

    /// For an acknowledged call missing from the final state: the crashed
    /// instances that had it, and whether a later failover from one of
    /// their nodes reported the loss.
    pub fn crashed_holders_of(&self, call: &CallId) -> (Vec<String>, bool) {
        let mut holders = Vec::new();
        let reported = self.dead.iter().any(|(x, _, had)| {
            if !had.contains(call) {
                return false;
            }
            holders.push(format!("{x} on {}", self.node_of(x)));
            self.failovers.iter().any(|f| {
                f.from.as_str() == self.node_of(x)
                    && f.by != *x
                    && self.go_at.get(x).is_some_and(|g| f.at > *g)
            })
        });
        (holders, reported)
    }
}
