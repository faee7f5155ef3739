//! The known gaps: bugs in `src/` the suite found and that are not (all)
//! fixed. A violation whose signature matches one exactly (the checks in
//! `invariants.rs` decide which) is counted and listed in the summary, not
//! failed; `regressions.rs` replays a seed for each.

use std::collections::BTreeSet;
use std::fmt;

use ractor::ActorId;
use ractor_takeover::event::EventKind;
use ractor_takeover::status::{InstanceStatus, Phase};
use ractor_takeover::*;

use crate::ledger::{CallId, Entry};
use crate::replay::Replay;
use crate::NODES;

/// A known gap, B1 to B12. The order is the summary's (B1 first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KnownGap {
    /// Known bug B1: two holders get the same epoch. Two causes, the first
    /// fixed: (1) neither node's view had the other's registration (each side
    /// of a split), and both allocated "highest epoch seen + 1"; now every node
    /// allocates in its own class of epochs (`next_epoch`), so two nodes never
    /// take one epoch. (2) Every view that had seen an epoch was lost in crashes
    /// (a node restarted while cut off, or all that knew crashed), and the node
    /// takes an epoch again; a standby then refuses the new holder's checkpoints
    /// as "stale". Fixed where nodes are durable (`FakeCluster::set_durable`,
    /// half of the schedules; `ClusterConfig::state_dir` on the real backend).
    /// Replayed by `known_bug_b1_two_holders_share_an_epoch`.
    B1EpochTie,
    /// Known bug B2: during a split brain both holders acknowledge calls; when
    /// one of them crashes before the heal, its calls are lost and no event
    /// reports it: nobody fails over from it, the other side already has a
    /// holder (and often no live node ever saw its registration). The runtime
    /// has no way to report this; only preventing the second holder from
    /// acknowledging would. Quorum mode does for a *detected* partition (a
    /// holder in a minority holds its calls, `QuorumLost`); what is left there
    /// are undetected partitions, where both sides think they have a majority.
    /// A holder that saw the crashed rival (it suspected a conflict with it)
    /// reports a failover from it.
    /// Replayed by `known_bug_b2_split_brain_holder_crash_is_unreported`.
    B2SplitBrainCrash,
    /// Known bug B3: the `from` of a failover (a standby's `last_holder`) is stale:
    /// `place()` (`server/placement.rs`) records the holder only when it runs to
    /// the end, not while a retry (`retry_at`, after a refused takeover) is
    /// pending, and a view that still shows an older holder (its departure slow on
    /// a link) records that one. The failover after the real holder's crash then
    /// reports the loss as `Failover { from }` naming another node. Since B4's fix,
    /// a fresh instance names the newest registration its node has seen
    /// (`Registry::newest_seen`), which can be a steal that was rolled back (it
    /// never held). Replayed by `known_bug_b3_failover_names_a_stale_holder`.
    B3StaleFrom,
    /// Known bug B4: the holder crashes, no standby fails over (the node comes back
    /// within the failover delay, or quorum mode forbids the survivors), and a
    /// fresh instance (`start`, `server/placement.rs`) then finds the name vacant
    /// and registers it as `Normal` with an empty state. The holder's whole state
    /// is lost and no event says so (no `Failover`, no `StateLost`), although the
    /// registry knows the name had holders (its new epoch is above 1). Replayed by
    /// `known_bug_b4_vacant_name_after_a_crash_starts_normal`. Mostly fixed: a
    /// vacant name is taken as `Failover { from }` when the node has seen a holder
    /// (`Registry::newest_seen`, learned from peers). Left: a node that restarts
    /// cut off from every node that had seen a holder knows nothing (views are not
    /// durable; the same cause as B1's forgotten epochs).
    B4RestartedAsNormal,
    /// Known bug B5: a takeover whose state request is lost (an undetected
    /// partition drops it) leaves the old holder suspecting a conflict; after
    /// `conflict_grace` it wins, re-registers under a new epoch and unregisters the
    /// old one (or, a yielding loser, it merges into a third holder and retires).
    /// The puller takes that unregistration for the old holder's death: it
    /// publishes `StateLost` (wrongly: the state is alive), starts as a `Failover`
    /// holder with an empty state and serves its buffered calls. No registry event
    /// reaches it after that, so it never checks for the conflict (the winner's
    /// wait for its `MergeOffer` never ends either): it stays a second holder,
    /// below the real one, forever, and the calls it acknowledged are lost. Found
    /// in what are now `server.rs` and `server/takeover.rs`: `on_registry`
    /// (`Stage::Pulling` ends the pull as lost on any `Unregistered` of `from`,
    /// whatever the `LeaveReason`) and `finish_pull`/`start_holder` (no
    /// `check_conflict` after becoming holder). Replayed by
    /// `known_bug_b5_puller_stranded_as_a_second_holder`.
    B5StrandedPuller,
    /// Known bug B6: an old holder in `Retiring` waits for `HandoverDone` with no
    /// timeout; if it is lost (an undetected partition), the instance stays
    /// `Retiring` forever after the heal: it keeps its registration and never
    /// becomes a standby again. Worse, when that successor later leaves (it yields
    /// or hands over), the old holder takes it for a failed takeover and resumes
    /// (`HandoverResumed`) as a holder of the state it had already handed over, a
    /// fork, and never checks for the higher registration. In what is now
    /// `server/handover.rs`: `Stage::Retiring` (no timer; `on_registry` does not
    /// notice that its successor holds the name) and `resume` (no
    /// `check_conflict`). Replayed by
    /// `known_bug_b6_lost_handover_done_never_retires`. Fixed
    /// (`server/handover.rs`): a retiring holder asks its successor again every
    /// `pull_timeout` (`HandoverQuery`), and checks for a newer holder when it
    /// resumes.
    B6NeverRetires,
    /// Known bug B7: the new holder installs the state, serves calls, and its node
    /// crashes before its `HandoverDone` reaches the old holder (in flight on a
    /// slow link). The old holder, still `Retiring`, sees its successor vanish and
    /// resumes (`HandoverResumed`) with the state it had sent: the calls the
    /// successor acknowledged are lost, and the events say the takeover failed
    /// instead of reporting a loss. In what is now `server/handover.rs`:
    /// `on_registry` (`Stage::Retiring` resumes on any departure of the successor)
    /// and `resume`. Replayed by
    /// `known_bug_b7_resume_over_a_successor_that_served`. Fixed
    /// (`server/handover.rs`, `resume_after_loss`): the old holder resumes under a
    /// new epoch as `Failover { from: successor's node }`, which reports the loss.
    B7ResumedOverASuccessor,
    /// Known bug B8: a takeover's pull ends as a failover (`StateLost`: the old
    /// holder's node looked down, a detected split), and the state request, delayed
    /// on a slow link, reaches the old holder after the heal. The old holder
    /// answers it as a normal handover: it sends its state and retires
    /// (`Retiring`), but the requester is no longer pulling and drops the reply
    /// ("state reply for no pull of ours"). The old holder's state is lost,
    /// unreported, and it stays `Retiring` forever (or, when that requester later
    /// leaves, resumes as a holder below it, for good). In what are now
    /// `server/handover.rs` and `server/takeover.rs`: `on_state_request` (no check
    /// that the requester still pulls) and the `StateReply` branch of `on_handover`
    /// (drops an unexpected state instead of merging it or sending
    /// `HandoverAborted`). Replayed by
    /// `known_bug_b8_state_sent_to_a_puller_that_gave_up`.
    B8StateSentToNobody,
    /// Known gap B10 (issue 10, "a holder lease"): a holder answers while
    /// a peer can have declared it down, or after it resumed from a pause
    /// (it answers the calls that queued while it hung before it learns of
    /// the failover holder), or on the minority side of a detected split
    /// (without quorum). Two holders then answer in turn, a client can see
    /// the state go backwards, and what the other side acknowledged can be
    /// discarded by the conflict. Signature: the answers in question are
    /// separated by a *detected* separation of the two nodes (a split, a
    /// held link or a pause) and by no undetected partition (which is the
    /// documented limit without quorum, not a gap). The holder lease closed
    /// the paused-holder case: its replay,
    /// `known_gap_b10_a_paused_holder_answers_after_the_failover` (seed 44),
    /// runs clean. What the signature still matches is mostly the two
    /// holders of a detected split without quorum, each of which keeps its
    /// lease by design (`docs/lease.md`); in quorum mode a one-link split is
    /// B12.
    B10AnsweredWhileApart,
    /// Known gap B11: two holders answered in turn with no fault between
    /// their nodes at the time, and the conflict resolution met them later:
    /// a split brain that a lagging view started (a standby took the name
    /// as vacant, or failed over, while its view missed the live holder's
    /// registration, e.g. after a handover it saw only half of). The
    /// conflict ends it (the loser's state is merged), but until then both
    /// answered and a client could see the state go backwards. Signature:
    /// one of the two holders' epochs is a side of a conflict event
    /// (`ConflictSuspected`, `ConflictWon`, `ConflictLost`,
    /// `SplitBrainHealed`) and no separation explains the answers. What
    /// closes it: the lease (a holder answers only while its peers confirm
    /// it) and the start-up rule that an unreached peer is unknown, not
    /// down. Replayed by `known_gap_b11_a_stale_view_starts_a_second_holder`
    /// (seed 552).
    B11SplitBrainFromAStaleView,
    /// Known gap B12 (quorum mode): a one-link split (`x | y` detected,
    /// the third node `z` linked to both) gives both ends a majority
    /// (`x, z` and `y, z`), so quorum does not stop the second holder: the
    /// end that loses sight of the holder sees the name vacant (or its
    /// view of a handover to the other end never arrives) and fails over,
    /// and both serve until the heal; a client of the second one sees its
    /// state go backwards, and the answers interleave across epochs. The
    /// fake's lease does not stop it either (each end's peers answer it).
    /// What would close it: a standby takes a name only when a majority
    /// *agrees* that the holder is down (ask `z`, which sees the holder),
    /// not when a majority is merely live in its own view. Signature: quorum
    /// mode, the answers are separated by a detected split or held link of
    /// the two nodes and by nothing between either of them and the third.
    /// Replayed by `known_gap_b12_a_one_link_split_has_two_quorums`
    /// (seeds 581, 642, 943).
    B12QuorumOnBothEndsOfOneLink,
    /// Known gap B13: a holder took an epoch below one it never saw, and
    /// answered after that newer holder had: the newer holder crashed
    /// before news of its registration reached the node (the node was down
    /// the whole time, or cut off from it, or it crashed since and was not
    /// durable, or the registration was still on a slow link when the
    /// crash dropped it), so the node allocated above the newest epoch it
    /// knew, below the dead one. Nothing is served twice at once (the newer
    /// holder is dead), but answers interleave across epochs (invariant
    /// i). Why it is a limit: a registration travels only from its own
    /// node (ractor_cluster relays no pg membership, and the fake does as
    /// the real backend) and a node learns a peer's newest epoch only when
    /// their session (re)starts, so after the only holder of the news dies
    /// nobody tells. What would close it: a standby asks every live peer
    /// for the newest registration it saw before it takes a vacant name
    /// (the same agreement B12 needs). Durable nodes close the "forgot in
    /// a crash" case only. Found by the 20 000-schedule run from seed
    /// 1506700869 (11 of its 13 failures); replayed by
    /// `known_gap_b13_a_failover_below_an_epoch_it_never_saw` (seed
    /// 1506702967).
    B13EpochNeverSeen,
}

impl KnownGap {
    /// The line the summary prints for it (its number first).
    pub fn signature(self) -> &'static str {
        match self {
            KnownGap::B1EpochTie => "B1 two holders with one epoch (different nodes, or a crash forgot it)",
            KnownGap::B2SplitBrainCrash => "B2 a split-brain holder crashed: its acknowledged calls are lost unreported",
            KnownGap::B3StaleFrom => "B3 a failover reported the loss under a stale previous holder's node",
            KnownGap::B4RestartedAsNormal => "B4 after a holder's crash a fresh instance registered as Normal: loss unreported",
            KnownGap::B5StrandedPuller => "B5 a puller took its old holder's re-registration for a death: a second holder forever",
            KnownGap::B6NeverRetires => "B6 an old holder whose HandoverDone was lost stays Retiring forever",
            KnownGap::B7ResumedOverASuccessor => "B7 an old holder resumed after its successor had served and crashed: loss unreported",
            KnownGap::B8StateSentToNobody => "B8 an old holder sent its state to a puller that had given up: the state is lost",
            KnownGap::B11SplitBrainFromAStaleView => "B11 two holders answered in turn with nothing between them; a conflict healed them later (a lagging view started the second)",
            KnownGap::B12QuorumOnBothEndsOfOneLink => "B12 quorum mode: a one-link split gave both ends a majority through the third node, and both served",
            KnownGap::B10AnsweredWhileApart => "B10 a holder answered while a detected split or a pause separated it from the newer holder (no lease yet)",
            KnownGap::B13EpochNeverSeen => "B13 a holder took an epoch below that of a newer holder which crashed before its registration reached the node",
        }
    }
}

impl fmt::Display for KnownGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signature())
    }
}

// The signatures: each says exactly when a violation is a known gap's
// symptom. Anything they do not match fails the suite.

/// B1: the instances that served one epoch are on different nodes, or a
/// node crashed (and forgot the epochs it had seen) between them.
pub fn epoch_shared(r: &Replay, insts: &BTreeSet<ActorId>) -> Option<KnownGap> {
    let first = |i: &ActorId| r.go_at.get(i).copied().unwrap_or(0);
    let b1 = insts.iter().all(|x| {
        insts.iter().all(|y| {
            let (lo, hi) = (first(x).min(first(y)), first(x).max(first(y)));
            x == y
                || r.node_of(x) != r.node_of(y)
                || r.crashes_at.iter().any(|at| *at > lo && *at < hi)
        })
    });
    b1.then_some(KnownGap::B1EpochTie)
}

/// B1, for the order of epochs (invariant i): one of `epochs` was taken
/// twice, with a crash between ([`epoch_shared`]). The epochs' order says
/// nothing then: the crash took the only views that had seen the epoch, so
/// the node that answered next did not know it was there to stay above
/// (seed 600: `a` restarts cut off and takes epoch 1 again after `b`
/// served epoch 2; seed 506: `a` fails over at epoch 16 and crashes before
/// its registration reached anyone, `b` then takes 14, and `a` later takes
/// 16 again).
pub fn epoch_forgotten(r: &Replay, epochs: &[u64]) -> Option<KnownGap> {
    epochs.iter().find_map(|e| {
        let insts = r.epoch_insts.get(e).filter(|i| i.len() > 1)?;
        epoch_shared(r, insts)
    })
}

/// B4, for the order of epochs (invariant i): the instance `x` that
/// answered under the older epoch started `Normal` after a crash, on nodes
/// that are not durable: a node that restarted cut off from every node
/// that had seen a holder knows no epoch, registers the vacant name as
/// `Normal` and takes the lowest epoch of its class, below the ones the
/// crashed holder served (seed 2050964561: `a` holds at 4 and crashes, `c`
/// restarts split from `b` and takes epoch 3). Durable nodes remember the
/// epochs they saw and take one above.
pub fn normal_after_a_crash(r: &Replay, x: &ActorId) -> Option<KnownGap> {
    let started = r.go_at.get(x)?;
    let normal = matches!(r.go_start.get(x), Some(StartType::Normal));
    let after_crash = r.crashes_at.iter().any(|c| c < started);
    (normal && after_crash && !r.outcome.durable).then_some(KnownGap::B4RestartedAsNormal)
}

/// B5, B6, B8: the cluster did not settle, and an instance that is not as it
/// should be (`a` holds, `b` and `c` wait) is one those gaps leave behind.
pub fn not_settled(r: &Replay) -> Option<KnownGap> {
    let o = r.outcome;
    let offenders: Vec<&InstanceStatus> = o
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(n, st)| {
            let want = if n == 0 {
                Phase::Holder
            } else {
                Phase::Standby
            };
            let holds = o.view_holder.as_ref().map(|h| h.epoch);
            st.as_ref()
                .filter(|st| st.phase != want || (n == 0 && st.epoch != holds))
        })
        .collect();
    let stuck = |phase: Phase, set: &BTreeSet<(String, u64)>| {
        offenders.iter().any(|st| {
            st.phase == phase
                && st
                    .epoch
                    .is_some_and(|ep| set.contains(&(st.node.to_string(), ep)))
        })
    };
    if stuck(Phase::Holder, &r.stranded) {
        Some(KnownGap::B5StrandedPuller)
    } else if stuck(Phase::Retiring, &r.unretired) || stuck(Phase::Holder, &r.unretired) {
        Some(KnownGap::B6NeverRetires)
    } else if stuck(Phase::Retiring, &r.abandoned) || stuck(Phase::Holder, &r.abandoned) {
        Some(KnownGap::B8StateSentToNobody)
    } else {
        None
    }
}

/// B5, B8: an acknowledged call is lost and no crashed instance had it.
pub fn lost_without_a_crash(
    r: &Replay,
    call: &CallId,
    node: &str,
    epoch: Option<u64>,
) -> Option<KnownGap> {
    let b5 = epoch.is_some_and(|ep| r.stranded.contains(&(node.to_string(), ep)));
    // B8: an instance whose state went to nobody had it.
    // (Any of its epochs: a conflict won re-registers it.)
    let b8 = r.shadow.iter().any(|(x, had)| {
        had.contains(call)
            && r.epoch_insts.iter().any(|(ep, insts)| {
                insts.contains(x) && r.abandoned.contains(&(r.node_of(x).to_string(), *ep))
            })
    });
    if b5 {
        Some(KnownGap::B5StrandedPuller)
    } else if b8 {
        Some(KnownGap::B8StateSentToNobody)
    } else {
        None
    }
}

/// B7, B2, B3, B4 (checked in that order): an acknowledged call was lost
/// with a crash that no later failover reported.
pub fn lost_in_an_unreported_crash(r: &Replay, call: &CallId) -> Option<KnownGap> {
    // B2's signature: an instance that had the call crashed while another
    // node's instance held the name too.
    let split_brain = r
        .dead
        .iter()
        .any(|(x, crash_at, had)| had.contains(call) && r.split_brain_with(x, *crash_at));
    // B7's: the crashed instance had taken over (and served), and its
    // predecessor then resumed as holder.
    let resumed_over = r.dead.iter().any(|(x, _, had)| {
        had.contains(call)
            && matches!(r.go_start.get(x), Some(StartType::Takeover { .. }))
            && r.outcome.events.iter().any(|e| {
                matches!(&e.kind, EventKind::HandoverResumed { successor }
                    if successor.node.as_str() == r.node_of(x)
                        && Some(successor.epoch) == r.go_epoch.get(x).copied().flatten())
            })
    });
    // B3's: a failover after the crash reported a loss, but named another
    // node as the previous holder's.
    let misnamed = r.dead.iter().any(|(x, crash_at, had)| {
        had.contains(call)
            && r.failovers
                .iter()
                .any(|f| f.at > *crash_at && f.from.as_str() != r.node_of(x))
    });
    // B4's: after the crash, a fresh instance found the name vacant and
    // registered it as `Normal`.
    let normal_again = r.dead.iter().any(|(_, crash_at, had)| {
        had.contains(call) && r.normal_starts.iter().any(|(at, _)| at > crash_at)
    });
    if resumed_over {
        Some(KnownGap::B7ResumedOverASuccessor)
    } else if split_brain {
        Some(KnownGap::B2SplitBrainCrash)
    } else if misnamed {
        Some(KnownGap::B3StaleFrom)
    } else if normal_again {
        Some(KnownGap::B4RestartedAsNormal)
    } else {
        None
    }
}

/// B10: two holders' answers (or an answer and a state missing it) were
/// separated by a detected split, held link or pause of their nodes; an
/// undetected partition is no gap (`None` here, the caller allows it when
/// it may). In quorum mode an undetected partition counts as B10 too: both
/// sides may see a majority of a stale view, and only the lease stops that.
pub fn answered_while_apart(r: &Replay, apart: crate::replay::Apart) -> Option<KnownGap> {
    use crate::replay::Apart;
    match apart {
        Apart::OneLink if r.outcome.quorum => Some(KnownGap::B12QuorumOnBothEndsOfOneLink),
        Apart::OneLink => Some(KnownGap::B10AnsweredWhileApart),
        Apart::Detected => Some(KnownGap::B10AnsweredWhileApart),
        Apart::Undetected if r.outcome.quorum => Some(KnownGap::B10AnsweredWhileApart),
        Apart::Undetected | Apart::Never => None,
    }
}

/// B11: the holder at epoch `x` or the one at `y` was a split-brain
/// holder that a conflict met later (see
/// [`KnownGap::B11SplitBrainFromAStaleView`]): its epoch is one side of a
/// conflict event. (The other side may be a successor of the other holder,
/// when the name moved on meanwhile.)
pub fn met_in_conflict(r: &Replay, x: Option<u64>, y: Option<u64>) -> Option<KnownGap> {
    let ours = |e: Option<u64>| e.is_some() && (e == x || e == y);
    let met = r.outcome.events.iter().any(|ev| {
        let other = match &ev.kind {
            EventKind::ConflictSuspected { other } => other,
            EventKind::ConflictWon { loser } | EventKind::SplitBrainHealed { loser, .. } => loser,
            EventKind::ConflictLost { winner } => winner,
            _ => return false,
        };
        ours(ev.epoch) || ours(Some(other.epoch))
    });
    met.then_some(KnownGap::B11SplitBrainFromAStaleView)
}

/// B13 (see [`KnownGap::B13EpochNeverSeen`]), for the order of epochs
/// (invariant i): `x` answered under an epoch below `top`'s after `top`
/// had answered, and `x`'s node could not have learned of `top`'s
/// registration before `x` took its epoch. Each reason is checked on the
/// log, so a view that missed a registration it should have had still
/// fails the suite. `top` must have died in a crash before `x` ran go; over
/// `top`'s tenure (its go to that crash), `x`'s node `n`:
/// - was down throughout (seed 1506713538: `c` restarts after `b`@17,
///   which only `b` saw, died), or
/// - crashed after `top` went and before `x` did, on nodes that are not
///   durable (seed 1506700933: `b` saw `c`@3, crashed, forgot it), or
/// - was separated from `top`'s node throughout (a split, partition, held
///   link, pause or slow dial), or
/// - got `top`'s registration over a link delayed by more than `top`
///   lived (from the last fault before its go to its crash), which the
///   crash dropped (seed 1506702967: `b -> a` delayed 57 ms, `b`@8 dies
///   46 ms after it took over). The fake drops what a crashed node still
///   has on a link, as a real node's unsent socket buffer dies with it.
///
/// If `x` is on `top`'s own node, only a node that is not durable forgets.
pub fn epoch_never_seen(r: &Replay, x: &ActorId, top: &ActorId) -> Option<KnownGap> {
    use crate::generator::Fault;
    let o = r.outcome;
    let (&go, &x_go) = (r.go_at.get(top)?, r.go_at.get(x)?);
    let died = *r
        .ended
        .get(top)
        .filter(|at| r.killed.contains(top) && **at < x_go)?;
    let (n, t) = (o.insts.get(x)?.0, o.insts.get(top)?.0);
    let crashed_in = |node: usize, lo: usize, hi: usize| {
        o.log[lo..hi]
            .iter()
            .any(|e| matches!(e, Entry::Crash { node: c, .. } if *c == node))
    };
    if n == t {
        return (!o.durable && crashed_in(n, go, x_go)).then_some(KnownGap::B13EpochNeverSeen);
    }
    // Down throughout: crashed before `top`'s go (or down from the start
    // of the log: never), and no restart until its death.
    let mut down = false;
    for e in &o.log[..died] {
        match e {
            Entry::Crash { node, .. } if *node == n => down = true,
            Entry::Fault {
                fault: Fault::Restart(m),
                ..
            } if *m == n => down = false,
            _ => {}
        }
    }
    let restarted_in = o.log[go..died]
        .iter()
        .any(|e| matches!(e, Entry::Fault { fault: Fault::Restart(m), .. } if *m == n));
    let down_throughout = down && !restarted_in && !crashed_in(n, go, died);
    let forgot = !o.durable && crashed_in(n, go, x_go);
    let cut_off = r.separations.iter().any(|s| {
        // A held link stops one direction only: `top`'s news goes t -> n.
        let held_the_other_way = s.held
            && !matches!(o.log.get(s.from), Some(Entry::Fault { fault: Fault::Hold(from, to), .. })
                if *from == t && *to == n);
        if held_the_other_way {
            return false;
        }
        let (p, q) = s.nodes;
        let between = if q > NODES.len() {
            let other = usize::MAX - q;
            (p == n && other == t) || (p == t && other == n)
        } else {
            (p, q) == (n.min(t), n.max(t))
        };
        between && s.from <= go && s.to >= died
    });
    let ms_at = |at: usize| {
        o.log[..at].iter().rev().find_map(|e| match e {
            Entry::Fault { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
    };
    let delay = o.log[..died].iter().rev().find_map(|e| match e {
        Entry::Fault {
            fault: Fault::Delay(from, to, d),
            ..
        } if *from == t && *to == n => Some(*d),
        _ => None,
    });
    let in_flight = match (delay, ms_at(go), ms_at(died + 1)) {
        // `went` is the last fault before the go, so the registration left
        // at `went` or later and arrived at `went + d` or later: a crash at
        // that very instant may have dropped it too (seed 4024874669: a
        // 36 ms delay, the crash 36 ms after the fault before the go).
        (Some(d), Some(went), Some(crashed)) => d >= crashed.saturating_sub(went),
        _ => false,
    };
    (down_throughout || forgot || cut_off || in_flight).then_some(KnownGap::B13EpochNeverSeen)
}
