//! A pull's exits, decided: what a registry change or the pull timeout
//! makes of it (install, fail over, abort), a state part's check, and who
//! owns a state that comes after the pull ended.

use crate::{Epoch, RegistrationInfo, StateCodecErr};

/// How a pull ends early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::server) enum PullExit {
    /// Keep pulling.
    Wait,
    /// The old holder lives but did not send its state in time: roll back.
    AbortTimedOut,
    /// The old holder's registration left, yet the instance is still
    /// registered under a newer epoch (it won a conflict): not a death,
    /// roll back (B5).
    AbortReRegistered,
    /// The old holder is gone: run as a failover, its state is lost.
    FailOver,
}

/// A registry change while pulling: `from_left` if it removed the old
/// holder's registration (or its node), `from_resolves` if that
/// registration is still in view, `old_registered` if the old holder's
/// instance holds any registration of the name.
pub(in crate::server) fn pull_on_change(
    from_left: bool,
    from_resolves: bool,
    old_registered: bool,
) -> PullExit {
    if !from_left || from_resolves {
        PullExit::Wait
    } else if old_registered {
        PullExit::AbortReRegistered
    } else {
        PullExit::FailOver
    }
}

/// The pull timer fired.
pub(in crate::server) fn pull_timed_out(from_resolves: bool, old_registered: bool) -> PullExit {
    if from_resolves || old_registered {
        PullExit::AbortTimedOut
    } else {
        PullExit::FailOver
    }
}

/// Whose state a failover out of a pull loses: the newest holder seen below
/// our own registration, which may not be the one we pulled from (it may
/// have been replaced while our request was lost). One above ours stole the
/// name from us and never had that state.
pub(in crate::server) fn lost_with(
    last_holder: Option<&RegistrationInfo>,
    mine: Option<&RegistrationInfo>,
    from: &RegistrationInfo,
) -> RegistrationInfo {
    match (last_holder, mine) {
        (Some(h), Some(me)) if h.rank() < me.rank() && h.rank() >= from.rank() => h.clone(),
        _ => from.clone(),
    }
}

/// Checks one part of a big state against what came so far (`got`: the
/// announced total and the bytes received). Parts come in order; one that
/// does not continue the others is an error, which aborts the pull.
pub(in crate::server) fn check_part(
    got: Option<(u64, u64)>,
    offset: u64,
    total: u64,
    len: usize,
    max: usize,
) -> Result<(), StateCodecErr> {
    let size = usize::try_from(total).unwrap_or(usize::MAX);
    if size > max {
        return Err(StateCodecErr::TooLarge { bytes: size, max });
    }
    let continues = match got {
        None => offset == 0,
        Some((t, received)) => t == total && received == offset,
    };
    let end = offset.checked_add(len as u64);
    if !continues || len == 0 || end.is_none_or(|end| end > total) {
        return Err(StateCodecErr::Decode(format!(
            "a state part at {offset} of {total} bytes does not continue the parts received"
        )));
    }
    Ok(())
}

/// A state for a pull that already ended. If we gave that pull up as a
/// failover, the old holder sent its state and now forwards to us, waiting
/// for a `HandoverDone` that will not come: returns the old holder, to be
/// told to serve again (B8). Two holders then meet and the conflict
/// resolution decides, instead of the old state being dropped.
pub(in crate::server) fn late_state_owner(
    mine: Option<&RegistrationInfo>,
    abandoned: Option<&RegistrationInfo>,
    requester_epoch: Epoch,
    sent: bool,
) -> Option<RegistrationInfo> {
    match (mine, abandoned) {
        (Some(me), Some(old)) if sent && me.epoch == requester_epoch => Some(old.clone()),
        _ => None,
    }
}
