//! A retiring holder's exits, decided: whom it asks when its successor
//! left or went silent, what a successor that rolled back means, how it
//! answers a handover query, and when an "unknown" answer ends retiring.

use crate::{Epoch, RegistrationInfo};

/// Whom a retiring holder asks whether its state arrived, each
/// `pull_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum Ask {
    /// The successor itself: it is still in view.
    Successor,
    /// The newer holder we asked before, the successor gone.
    Newer,
    /// Nobody is left to ask: decide again from the view.
    Nobody,
}

/// The retire timer fired.
pub(in crate::server) fn whom_to_ask(successor_resolves: bool, asked_resolves: bool) -> Ask {
    if successor_resolves {
        Ask::Successor
    } else if asked_resolves {
        Ask::Newer
    } else {
        Ask::Nobody
    }
}

/// How a retiring holder goes on after its successor left before
/// confirming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::server) enum RetireExit {
    /// A newer registration holds: it may have taken the name over from the
    /// successor, stolen it from us, or failed over. Ask it.
    AskNewer(RegistrationInfo),
    /// Nobody newer: we cannot know whether the successor installed our
    /// state and served, so hold the name again at a new epoch as a
    /// failover from it (B7).
    ResumeAsFailover,
}

/// The successor left our view before its `HandoverDone` came (B7, seeds
/// 3373128272 and 3373116214). `registered`: we still hold our own
/// registration.
pub(in crate::server) fn after_successor_left(
    successor: &RegistrationInfo,
    top: Option<&RegistrationInfo>,
    registered: bool,
) -> RetireExit {
    match top {
        Some(top) if registered && top.rank() > successor.rank() => {
            RetireExit::AskNewer(top.clone())
        }
        _ => RetireExit::ResumeAsFailover,
    }
}

/// The successor left our view before its `HandoverDone` came, and before
/// its `HandoverAborted` did: whether it rolled its steal back. On a real
/// cluster the registry's change can overtake the successor's last message
/// (pg events go first), and taking a rollback for a vanished successor made
/// the old holder steal a new epoch and report a failover that never
/// happened. A rollback is a clean departure (`clean`) with nothing newer
/// than the successor in view now (`top`) or ever seen (`newest_seen`): a
/// successor that took over and served, then handed on, leaves a newer
/// registration behind, and we ask or resume as a failover then.
pub(in crate::server) fn successor_rolled_back(
    successor: &RegistrationInfo,
    clean: bool,
    top: Option<&RegistrationInfo>,
    newest_seen: Option<&RegistrationInfo>,
) -> bool {
    let not_newer = |r: Option<&RegistrationInfo>| r.is_none_or(|r| r.rank() <= successor.rank());
    clean && not_newer(top) && not_newer(newest_seen)
}

/// How an instance answers a `HandoverQuery` from `old` about `successor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum QueryAnswer {
    /// We are that successor and installed that state: `HandoverDone` again
    /// (B6: the first one was lost).
    Done,
    /// We hold no state from that handover. Only the successor itself can
    /// confirm, so a newer holder that took over from the successor says
    /// this too (seed 3373122513).
    Unknown,
    /// We are still pulling: our pull ends by itself and says so.
    Silent,
}

/// `took_over`: the last takeover we finished (the old holder, our epoch).
pub(in crate::server) fn answer_query(
    took_over: Option<&(RegistrationInfo, Epoch)>,
    old: &RegistrationInfo,
    successor: &RegistrationInfo,
    pulling: bool,
) -> QueryAnswer {
    if took_over.is_some_and(|(from, epoch)| from == old && *epoch == successor.epoch) {
        QueryAnswer::Done
    } else if pulling {
        QueryAnswer::Silent
    } else {
        QueryAnswer::Unknown
    }
}

/// A `HandoverUnknown` about `answered`, from the instance registered as
/// `answerer`, ends the retirement only if it is about our successor and
/// either the successor is gone or it answered itself: it has no state from
/// our handover, so it never confirms it. (Seed 2324595638: a node that
/// forgot its epochs restarted and registered its crashed puller's very
/// registration again; the old holder, seeing "its successor" alive, asked
/// it forever and never resumed, and its state never came back.) A newer
/// holder's answer while the successor is still in view does not count:
/// the successor may yet confirm.
pub(in crate::server) fn unknown_ends_retiring(
    successor: &RegistrationInfo,
    answered: &RegistrationInfo,
    answerer: Option<&RegistrationInfo>,
    successor_resolves: bool,
) -> bool {
    successor == answered && (!successor_resolves || answerer == Some(successor))
}
