//! The invariants (1 to 4 in the suite's docs), one function each, over a
//! run's history replayed once (`replay.rs`). A violation that matches a
//! known gap's signature (`known_gaps.rs`) carries it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use ractor::ActorId;
use ractor_takeover::event::EventKind;
use ractor_takeover::*;

use crate::harness::{Outcome, TAKEOVER_TIMEOUT};
use crate::known_gaps::{self, KnownGap};
use crate::ledger::{CallId, Entry, LedgerReply};
use crate::replay::{Apart, Replay};
use crate::NODES;

/// What a run counted (the summary adds them up).
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub calls: usize,
    pub acked: usize,
    pub timed_out: usize,
    pub not_registered: usize,
    pub no_reply: usize,
    pub holder_down: usize,
    pub lost_reported: usize,
    pub applied_unacked: usize,
    pub takeovers_ok: usize,
    pub failovers: usize,
    pub checkpoint_failovers: usize,
    pub merges: usize,
    pub crashes: usize,
}

impl Stats {
    /// Counts `o`'s calls, takeovers, failovers and crashes.
    fn of(r: &Replay) -> Self {
        let o = r.outcome;
        let mut stats = Stats {
            crashes: o.crashes.iter().map(|c| *c as usize).sum(),
            failovers: r.failovers.len(),
            checkpoint_failovers: r
                .failovers
                .iter()
                .filter(|f| f.checkpoint.is_some())
                .count(),
            merges: r.merges,
            calls: o.calls.len(),
            acked: o
                .calls
                .iter()
                .filter(|c| matches!(c.result, Ok(LedgerReply::Applied { .. })))
                .count(),
            takeovers_ok: o.takeovers.iter().filter(|t| t.result.is_ok()).count(),
            ..Stats::default()
        };
        for c in &o.calls {
            match &c.result {
                Err(CallErr::Timeout) => stats.timed_out += 1,
                Err(CallErr::NoReply) => stats.no_reply += 1,
                Err(CallErr::HolderDown { .. }) => stats.holder_down += 1,
                Err(CallErr::NotRegistered(_)) => stats.not_registered += 1,
                _ => {}
            }
        }
        if let Ok(state) = &o.final_state {
            let content = state.content();
            stats.lost_reported = r
                .acked
                .keys()
                .filter(|call| !content.contains(call) && r.crashed_holders_of(call).1)
                .count();
        }
        stats.applied_unacked = o
            .log
            .iter()
            .filter(|e| matches!(e, Entry::Apply { call, .. } if !r.acked.contains_key(call)))
            .count();
        stats
    }

    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &Stats) {
        self.calls += o.calls;
        self.acked += o.acked;
        self.timed_out += o.timed_out;
        self.not_registered += o.not_registered;
        self.no_reply += o.no_reply;
        self.holder_down += o.holder_down;
        self.lost_reported += o.lost_reported;
        self.applied_unacked += o.applied_unacked;
        self.takeovers_ok += o.takeovers_ok;
        self.failovers += o.failovers;
        self.checkpoint_failovers += o.checkpoint_failovers;
        self.merges += o.merges;
        self.crashes += o.crashes;
    }
}

/// One broken property: `check` names which (1 to 4 in the suite's docs).
#[derive(Debug, Clone)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
    /// The known gap this violation is a symptom of, if it matches one's
    /// signature exactly.
    pub known: Option<KnownGap>,
}

/// The violations of one run, in the order the checks run.
#[derive(Default)]
struct Violations(Vec<Violation>);

impl Violations {
    fn push(&mut self, check: &'static str, detail: String, known: Option<KnownGap>) {
        self.0.push(Violation {
            check,
            detail,
            known,
        });
    }

    /// A violation no known gap explains.
    fn fail(&mut self, check: &'static str, detail: String) {
        self.push(check, detail, None);
    }
}

/// Checks every invariant of a run and counts what it did.
pub fn check(o: &Outcome) -> (Stats, Vec<Violation>) {
    let r = Replay::new(o);
    let mut v = Violations::default();
    one_holder_per_epoch(&r, &mut v);
    one_holder_after_the_heal(&r, &mut v);
    calls_answered_once(&r, &mut v);
    acknowledged_calls_kept(&r, &mut v);
    failovers_install_the_checkpoint(&r, &mut v);
    takeovers_by_their_deadline(&r, &mut v);
    nothing_fails(&r, &mut v);
    answers_never_interleave_across_epochs(&r, &mut v);
    conflicts_keep_acknowledged_calls(&r, &mut v);
    no_client_sees_its_state_go_backwards(&r, &mut v);
    (Stats::of(&r), v.0)
}

/// (1) At most one instance serves per epoch, and one node per epoch in the
/// events; an instance runs go once (or again as a failover under a new
/// epoch), with an epoch, before it applies anything.
fn one_holder_per_epoch(r: &Replay, v: &mut Violations) {
    const CHECK: &str = "1 one holder per epoch";
    for detail in &r.log_anomalies {
        v.fail(CHECK, detail.clone());
    }
    for (epoch, insts) in &r.epoch_insts {
        if insts.len() > 1 {
            let who: Vec<String> = insts
                .iter()
                .map(|i| format!("{i} on {}", r.node_of(i)))
                .collect();
            v.push(
                CHECK,
                format!("epoch {epoch} served by several instances: {who:?}"),
                known_gaps::epoch_shared(r, insts),
            );
        }
    }
    let mut epoch_nodes: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for ev in &r.outcome.events {
        let holds = matches!(
            ev.kind,
            EventKind::Registered { .. }
                | EventKind::TakeoverStarted { .. }
                | EventKind::ConflictWon { .. }
        );
        if let (true, Some(epoch)) = (holds, ev.epoch) {
            epoch_nodes
                .entry(epoch)
                .or_default()
                .insert(ev.node.to_string());
        }
    }
    for (epoch, nodes) in &epoch_nodes {
        if nodes.len() > 1 {
            v.push(
                CHECK,
                format!("epoch {epoch} taken on several nodes: {nodes:?}"),
                Some(KnownGap::B1EpochTie),
            );
        }
    }
}

/// (1) After the final heal exactly one holder remains, on `a`, in every
/// node's view, and the other nodes' instances are standbys.
fn one_holder_after_the_heal(r: &Replay, v: &mut Violations) {
    if let Err(e) = &r.outcome.quiet {
        v.push(
            "1 exactly one holder after the heal",
            e.clone(),
            known_gaps::not_settled(r),
        );
    }
}

/// (3) Every call returns by its deadline; none is applied twice; none
/// answered "not handled" was applied; every acknowledgement names the
/// holder that applied the call; each client sends in sequence.
fn calls_answered_once(r: &Replay, v: &mut Violations) {
    for c in &r.outcome.calls {
        if c.took > c.timeout + Duration::from_millis(1) {
            v.fail(
                "3 no call past its deadline",
                format!(
                    "call {:?} from {} returned after {:?}, deadline {:?}",
                    c.call, NODES[c.client_node], c.took, c.timeout
                ),
            );
        }
        match &c.result {
            // Each may or may not have been applied: the ledger decides.
            Ok(LedgerReply::Applied { .. })
            | Err(CallErr::Timeout)
            | Err(CallErr::NoReply)
            | Err(CallErr::HolderDown { .. }) => {}
            // A retry the window could not place: it ran once or not at all.
            Err(CallErr::PastDedupWindow { .. }) if r.outcome.retries => {}
            Ok(other) => v.fail(
                "3 answered once",
                format!("call {:?} got a foreign reply {other:?}", c.call),
            ),
            Err(
                e @ (CallErr::NotRegistered(_)
                | CallErr::BufferFull { .. }
                | CallErr::InstanceStopped(_)
                // Synchronous standby, refuse mode: no standby to store it.
                | CallErr::NoStandby),
            ) => {
                if let Some(by) = r.applied.get(&c.call) {
                    v.fail(
                        "3 answered once",
                        format!(
                            "call {:?} was answered {e:?} (not handled) but applied by {by:?}",
                            c.call
                        ),
                    );
                }
            }
            Err(e) => v.fail(
                "3 answered once",
                format!("call {:?} failed with {e:?}", c.call),
            ),
        }
    }
    if r.outcome.retries {
        // With retries a call may run again wherever the state does not
        // hold its first run: lost with a crashed holder, or left on the
        // other side of a split by a failover from `init` or an older
        // checkpoint (seed 4: `c` fails over from `init` after `split a | c`
        // and runs the retry of a call `a` had applied). Its window went
        // with that state, so running it again is right; the final state's
        // check verifies it is there once. Running it in a state that
        // already has it is the bug exactly-once rules out.
        for (call, inst, at) in &r.reapplied {
            v.fail(
                "3 answered once",
                format!(
                    "call {call:?} applied again at log {at} by {inst} on {}, whose state had it: {:?}",
                    r.node_of(inst),
                    r.applied.get(call)
                ),
            );
        }
    } else {
        // Without retries a call is sent once: a second run is a bug
        // wherever it happens.
        for (call, by) in &r.applied {
            if by.len() > 1 {
                v.fail(
                    "3 answered once",
                    format!("call {call:?} applied {} times: {by:?}", by.len()),
                );
            }
        }
    }
    for (call, (node, epoch)) in &r.acked {
        let matches = r
            .applied
            .get(call)
            .is_some_and(|by| by.iter().any(|(_, n, e)| n == node && e == epoch));
        if !matches {
            v.fail(
                "3 answered once",
                format!(
                    "call {call:?} acknowledged by {node} at epoch {epoch:?}, applied by {:?}",
                    r.applied.get(call)
                ),
            );
        }
    }
    let mut sent: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for c in &r.outcome.calls {
        sent.entry(c.call.0).or_default().push(c.call.1);
    }
    for (client, seqs) in sent {
        if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            v.fail(
                "3 per-sender order",
                format!("client {client} did not send in sequence: {seqs:?}"),
            );
        }
    }
}

/// (2) The final state has every acknowledged call, unless a node crash
/// lost it and a later failover from that node reported the loss; (3) it
/// has no call twice, none never applied, and each client's acknowledged
/// calls in increasing order.
fn acknowledged_calls_kept(r: &Replay, v: &mut Violations) {
    const CHECK: &str = "2 acknowledged calls kept";
    let state = match &r.outcome.final_state {
        Err(e) => return v.fail(CHECK, e.clone()),
        Ok(state) => state,
    };
    let content = state.content();
    for (client, seqs) in &state.applied {
        let mut seen = BTreeSet::new();
        let mut prev_acked = 0;
        for s in seqs {
            if !seen.insert(*s) {
                v.fail(
                    "3 answered once",
                    format!("the final state has call {:?} twice", (client, s)),
                );
            }
            if !r.applied.contains_key(&(*client, *s)) {
                v.fail(
                    CHECK,
                    format!("the final state has call {:?}, never applied", (client, s)),
                );
            }
            if r.acked.contains_key(&(*client, *s)) {
                if *s < prev_acked {
                    v.fail(
                        "3 per-sender order",
                        format!(
                            "client {client}: acknowledged call {s} after {prev_acked} in the final state"
                        ),
                    );
                }
                prev_acked = *s;
            }
        }
    }
    for (call, (node, epoch)) in &r.acked {
        if content.contains(call) {
            continue;
        }
        let (holders, reported) = r.crashed_holders_of(call);
        if reported {
            continue;
        }
        if holders.is_empty() {
            v.push(
                CHECK,
                format!(
                    "call {call:?} (acknowledged by {node} at epoch {epoch:?}) is lost, and no crashed instance had it"
                ),
                known_gaps::lost_without_a_crash(r, call, node, *epoch),
            );
        } else {
            let after = failovers_after_crashes_with(r, call);
            v.push(
                CHECK,
                format!(
                    "call {call:?} (acknowledged by {node} at epoch {epoch:?}) was lost with the crash of {holders:?}, and no later failover from that node reported it (later failovers: {after:?})"
                ),
                known_gaps::lost_in_an_unreported_crash(r, call),
            );
        }
    }
}

/// The failovers after the `go` of each crashed instance that had `call`.
fn failovers_after_crashes_with(r: &Replay, call: &CallId) -> Vec<String> {
    r.dead
        .iter()
        .filter(|(_, _, had)| had.contains(call))
        .flat_map(|(x, _, _)| {
            r.failovers
                .iter()
                .filter(|f| r.go_at.get(x).is_some_and(|g| f.at > *g))
                .map(|f| format!("{} from {}", r.node_of(&f.by), f.from))
        })
        .collect()
}

/// (2, warm standby) A failover installs exactly the checkpointing holder's
/// state after `handled` calls, so only the updates since then are lost.
fn failovers_install_the_checkpoint(r: &Replay, v: &mut Violations) {
    for f in &r.failovers {
        let Some(cp) = &f.checkpoint else { continue };
        let Some(holders) = r.epoch_insts.get(&cp.holder_epoch) else {
            continue; // the checkpointing holder never ran go or served at that epoch
        };
        // With B1 several instances may share the epoch: any may have sent it.
        let matches = |k: &ractor::ActorId| {
            r.history
                .get(k)
                .into_iter()
                .flatten()
                .any(|(h, snap)| *h == cp.handled && *snap == f.content)
        };
        if !holders.iter().any(matches) {
            let who: Vec<String> = holders
                .iter()
                .map(|k| format!("{k} on {}", r.node_of(k)))
                .collect();
            v.fail(
                "2 at most the updates since the checkpoint",
                format!(
                    "{} failed over from checkpoint {cp:?} of {who:?}, but installed {} calls that match no state of it after {} handled",
                    r.node_of(&f.by),
                    f.content.len(),
                    cp.handled
                ),
            );
        }
    }
}

/// (3) Every manual takeover returns by its deadline.
fn takeovers_by_their_deadline(r: &Replay, v: &mut Violations) {
    for t in &r.outcome.takeovers {
        if t.took > TAKEOVER_TIMEOUT + Duration::from_millis(1) {
            v.fail(
                "3 no call past its deadline",
                format!(
                    "takeover on {} returned after {:?}: {:?}",
                    NODES[t.node], t.took, t.result
                ),
            );
        }
    }
}

/// (4) Only an instance whose node crashed may fail, and not with a panic;
/// nothing panicked on the schedule's thread.
fn nothing_fails(r: &Replay, v: &mut Violations) {
    let o = r.outcome;
    for (id, why) in &o.failures {
        let crashed_since = o.insts.get(id).is_some_and(|(n, at)| o.crashes[*n] > *at);
        if !crashed_since || why.contains("panic") {
            v.fail(
                "4 nothing fails",
                format!("instance {id} on {} failed: {why}", r.node_of(id)),
            );
        }
    }
    if o.panics > 0 {
        v.fail(
            "4 nothing fails",
            format!("{} panic(s) on the schedule's thread", o.panics),
        );
    }
}

/// Whether the apply at `at` of `call` by `node` at `epoch` is the one its
/// acknowledgement names (an OK the client saw).
fn acked_here(r: &Replay, call: &CallId, node: &str, epoch: Option<u64>) -> bool {
    r.acked
        .get(call)
        .is_some_and(|(n, e)| n == node && *e == epoch)
}

/// Classifies two answers (or an answer and a state that lacks one) of the
/// instances `x` and `y` up to log position `to`: `Ok(())` when an
/// undetected partition separated their nodes outside quorum mode (the
/// documented limit), a known gap when only a detected separation did, an
/// error when nothing did. The window starts at the earlier of the two
/// instances' `go`: a holder paused while it held, then resumed, answers
/// the calls queued during its pause after the separation ended, before it
/// learns of the newer holder (the hung-holder gap the lease closes).
fn apart_or_fail(
    r: &Replay,
    x: &ActorId,
    y: &ActorId,
    from: usize,
    to: usize,
) -> Result<(), Option<KnownGap>> {
    let go = |i: &ActorId| r.go_at.get(i).copied().unwrap_or(from);
    let from = from.min(go(x)).min(go(y));
    // Each side with the instances its state moved on to by takeover (see
    // `Replay::lineage`): an answer of `x` lives on at `x`'s successor, and
    // `y` could miss it only if it could not hear from where it lived. (The
    // check compared `x`'s node alone before, and took a holder that failed
    // over while split from `x`'s successor for one that nothing separated.)
    // And each side with the instances its state came from by takeover
    // (`Replay::ancestry`), each only while it held that state.
    let side = |i: &ActorId| {
        let mut s: Vec<(ActorId, usize)> = r.lineage(i, to).into_iter().map(|p| (p, to)).collect();
        s.extend(
            r.ancestry(i)
                .into_iter()
                .map(|(p, until)| (p, until.min(to))),
        );
        s
    };
    let mut each: Vec<Apart> = Vec::new();
    for (p, p_to) in side(x) {
        for (q, q_to) in side(y) {
            let to = p_to.min(q_to);
            if to < from {
                continue;
            }
            let (np, nq) = (r.node_of(&p), r.node_of(&q));
            if np != nq {
                each.push(r.apart(np, nq, from, to));
            } else {
                // Two instances of one node (one retired, a fresh one failed
                // over later): the other side is whichever node held the
                // state then.
                each.extend(
                    NODES
                        .iter()
                        .filter(|n| **n != np)
                        .map(|n| r.apart(np, n, from, to)),
                );
            }
        }
    }
    let apart = [Apart::Undetected, Apart::Detected, Apart::OneLink]
        .into_iter()
        .find(|a| each.contains(a))
        .unwrap_or(Apart::Never);
    let epoch = |i: &ActorId| r.go_epoch.get(i).copied().flatten();
    match known_gaps::answered_while_apart(r, apart) {
        None if apart == Apart::Undetected => Ok(()),
        None => {
            let stranded = |i: &ActorId| {
                epoch(i).is_some_and(|e| r.stranded.contains(&(r.node_of(i).to_string(), e)))
            };
            if stranded(x) || stranded(y) {
                return Err(Some(KnownGap::B5StrandedPuller));
            }
            Err(known_gaps::met_in_conflict(r, epoch(x), epoch(y)))
        }
        known => Err(known),
    }
}

/// (i, issue 10) Answers for the name never interleave across epochs: in
/// the order the holders applied them, no call acknowledged under an epoch
/// comes after one acknowledged under a newer epoch. A conflict winner
/// whose epoch is below the loser's re-registers above it before it serves
/// the held calls, so a healed conflict keeps the order too.
fn answers_never_interleave_across_epochs(r: &Replay, v: &mut Violations) {
    const CHECK: &str = "i answers never interleave across epochs";
    let mut newest: Option<(u64, usize, String, ActorId)> = None;
    let mut reported: BTreeSet<(u64, u64)> = BTreeSet::new();
    for (at, e) in r.outcome.log.iter().enumerate() {
        let Entry::Apply {
            inst,
            node,
            epoch: Some(epoch),
            call,
        } = e
        else {
            continue;
        };
        if !acked_here(r, call, node, Some(*epoch)) {
            continue;
        }
        match &newest {
            Some((top, top_at, top_node, top_inst)) if epoch < top => {
                if !reported.insert((*epoch, *top)) {
                    continue;
                }
                if let Err(known) = apart_or_fail(r, inst, top_inst, *top_at, at) {
                    let known = known
                        .or_else(|| known_gaps::epoch_forgotten(r, &[*epoch, *top]))
                        .or_else(|| known_gaps::normal_after_a_crash(r, inst))
                        .or_else(|| known_gaps::epoch_never_seen(r, inst, top_inst));
                    v.push(
                        CHECK,
                        format!(
                            "call {call:?} acknowledged by {node} at epoch {epoch} after an OK of epoch {top} on {top_node}"
                        ),
                        known,
                    );
                }
            }
            Some((top, ..)) if epoch == top => {
                newest = Some((*epoch, at, node.clone(), *inst));
            }
            _ => newest = Some((*epoch, at, node.clone(), *inst)),
        }
    }
}

/// Every instance's state after each log position, replayed as the
/// ledger's hooks logged it (go installs, apply adds, merge replaces).
fn states_along(
    r: &Replay,
    mut each: impl FnMut(usize, &Entry, &HashMap<ActorId, BTreeSet<CallId>>),
) {
    let mut states: HashMap<ActorId, BTreeSet<CallId>> = HashMap::new();
    for (at, e) in r.outcome.log.iter().enumerate() {
        each(at, e, &states);
        match e {
            Entry::Go { inst, content, .. } | Entry::Merged { inst, content, .. } => {
                states.insert(*inst, content.clone());
            }
            Entry::Apply { inst, call, .. } => {
                states.entry(*inst).or_default().insert(*call);
            }
            _ => {}
        }
    }
}

/// Where each call was (first) applied in the log.
fn applied_at(r: &Replay) -> BTreeMap<CallId, usize> {
    let mut at = BTreeMap::new();
    for (i, e) in r.outcome.log.iter().enumerate() {
        if let Entry::Apply { call, .. } = e {
            at.entry(*call).or_insert(i);
        }
    }
    at
}

/// (ii, issue 10) No acknowledged call is discarded by a conflict: every
/// call acknowledged that was in the loser's state when the winner merged
/// it is in the winner's state after the merge, unless both sides answered
/// calls during an undetected partition (outside quorum mode; in quorum
/// mode, never: B10 until the lease).
fn conflicts_keep_acknowledged_calls(r: &Replay, v: &mut Violations) {
    const CHECK: &str = "ii conflicts keep acknowledged calls";
    let applied = applied_at(r);
    let mut found: Vec<(ActorId, ActorId, CallId, usize, usize)> = Vec::new();
    states_along(r, |at, e, states| {
        let Entry::Merged {
            inst,
            loser,
            content,
            ..
        } = e
        else {
            return;
        };
        let losers = r
            .epoch_insts
            .get(&loser.epoch)
            .into_iter()
            .flatten()
            .filter(|l| r.node_of(l) == loser.node.as_str() && *l != inst);
        for l in losers {
            for call in states.get(l).into_iter().flatten() {
                if r.acked.contains_key(call) && !content.contains(call) {
                    let from = applied.get(call).copied().unwrap_or(0);
                    found.push((*l, *inst, *call, from, at));
                }
            }
        }
    });
    for (l, w, call, from, at) in found {
        let (loser, winner) = (r.node_of(&l), r.node_of(&w));
        if let Err(known) = apart_or_fail(r, &l, &w, from, at) {
            v.push(
                CHECK,
                format!(
                    "call {call:?}, acknowledged and in {loser}'s state, was discarded when {winner} merged it"
                ),
                known,
            );
        }
    }
}

/// (iii, issue 10) A client never sees its state go backwards: the state a
/// call is acknowledged on has the client's previous acknowledged call,
/// unless a crash lost that one (invariant 2 checks that loss is
/// reported), or the two answers were apart as in (i).
fn no_client_sees_its_state_go_backwards(r: &Replay, v: &mut Violations) {
    const CHECK: &str = "iii no client sees its state go backwards";
    let applied = applied_at(r);
    let mut prev: BTreeMap<u32, (CallId, ActorId)> = BTreeMap::new();
    let mut found: Vec<(CallId, ActorId, CallId, ActorId, usize)> = Vec::new();
    states_along(r, |at, e, states| {
        let Entry::Apply {
            inst,
            node,
            epoch,
            call,
        } = e
        else {
            return;
        };
        if !acked_here(r, call, node, *epoch) {
            return;
        }
        if let Some((p, p_inst)) = prev.insert(call.0, (*call, *inst)) {
            let has = states.get(inst).is_some_and(|s| s.contains(&p));
            if !has && r.crashed_holders_of(&p).0.is_empty() {
                found.push((p, p_inst, *call, *inst, at));
            }
        }
    });
    for (p, p_inst, call, inst, at) in found {
        let Some((p_node, p_epoch)) = r.acked.get(&p) else {
            continue;
        };
        let node = r.node_of(&inst);
        let from = applied.get(&p).copied().unwrap_or(0);
        if let Err(known) = apart_or_fail(r, &p_inst, &inst, from, at) {
            v.push(
                CHECK,
                format!(
                    "call {call:?} acknowledged by {node} on a state without the client's previous acknowledged call {p:?} (by {p_node} at epoch {p_epoch:?})"
                ),
                known,
            );
        }
    }
}
