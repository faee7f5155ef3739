//! A state sent between instances: a takeover reply, a merge offer or a
//! checkpoint. One size limit, checked on both sides, and one way to move a
//! state bigger than [`crate::TakeoverConfig::state_part_bytes`]: in
//! acknowledged parts, whatever the state is for.
//!
//! ```text
//!   sender                                     receiver
//!     |-- StatePart{of, 0, total} --------------->| `of` wanted here? (stage, epoch)
//!     |-- StatePart{of, p, total} --------------->| the part continues the others?
//!     |<------------- StatePartAck{of, p} --------| keeps the bytes aside
//!     |-- StatePart{of, 2p, total} -------------->|
//!     |   at most PARTS_IN_FLIGHT unacknowledged  |
//!     |-- last part ----------------------------->| complete: handled as the whole
//!     |   frees its copy once the last is out     | message `of` stands for
//! ```
//!
//! Why here and not in each side's file: a frame over the receiver's cap
//! closes the session (and the peer is seen down) whatever the state is for,
//! so the takeover reply, the merge offer and every checkpoint go the same
//! way. The receiver hands a state on only once it is complete: a standby
//! keeps its previous checkpoint until a newer one is entirely in, a pull
//! aborts on a part that does not continue the others. Fencing is the whole
//! message's: `of` carries the epochs it does, and the complete state goes
//! through the same checks as one sent whole. Pacing by acks keeps a big
//! state from holding a link (and the heartbeats behind it) for long. A
//! transfer that makes no progress for a `pull_timeout` is dropped on both
//! sides ([`TakeoverMessage::TransferTick`]).

use std::mem::discriminant;
use std::sync::Arc;

use ractor::ActorProcessingErr;
use tokio::time::Instant;

use super::{ServerState, Stage, TakeoverServer};
use crate::dedup::{self, Window};
use crate::message::deliver;
use crate::{
    EventKind, HandoverMsg, PartOf, Registration, RegistrationInfo, ReplyErr, StateCodecErr,
    TakeoverActor, TakeoverErr, TakeoverMessage,
};

/// How many parts of a state may be on their way, unacknowledged.
const PARTS_IN_FLIGHT: usize = 2;

/// The states in parts an instance is sending and receiving.
#[derive(Default)]
pub(super) struct Transfers {
    outgoing: Vec<Outgoing>,
    incoming: Vec<Incoming>,
    /// Whether a [`TakeoverMessage::TransferTick`] is on its way.
    ticking: bool,
}

/// A state going out in parts.
struct Outgoing {
    to: Registration,
    of: PartOf,
    /// Shared: a checkpoint goes to every standby from one encoded copy.
    bytes: Arc<Vec<u8>>,
    /// How much of `bytes` went out, and how much the receiver acknowledged.
    sent: usize,
    acked: usize,
    last_progress: Instant,
}

/// A state coming in parts.
struct Incoming {
    of: PartOf,
    total: u64,
    got: Vec<u8>,
    last_progress: Instant,
}

/// The sender a transfer comes from, with what kind of state it is: a
/// receiver keeps one state in parts per slot, and a new one (its first
/// part) replaces an unfinished older one.
fn slot(of: &PartOf) -> (std::mem::Discriminant<PartOf>, Option<&RegistrationInfo>) {
    let sender = match of {
        PartOf::StateReply { .. } => None,
        // The sender: a standby offering a gone loser's checkpoint is not
        // the loser, which may be offering its own state at the same time
        // (seed 1074: the two interleaved, each part of one broke the
        // other's, and the merge was dropped).
        PartOf::MergeOffer { loser, via, .. } => Some(via.as_ref().unwrap_or(loser)),
        PartOf::Checkpoint { holder, .. } => Some(holder),
    };
    (discriminant(of), sender)
}

/// The whole message a complete state in parts stands for.
fn whole(of: PartOf, bytes: Vec<u8>) -> HandoverMsg {
    match of {
        PartOf::StateReply { requester_epoch } => HandoverMsg::StateReply {
            requester_epoch,
            result: Ok(bytes),
        },
        PartOf::MergeOffer {
            loser,
            winner_epoch,
            seq,
            handled,
            ..
        } => HandoverMsg::MergeOffer {
            loser,
            winner_epoch,
            seq,
            handled,
            result: Ok(bytes),
        },
        PartOf::Checkpoint {
            holder,
            seq,
            handled,
        } => HandoverMsg::Checkpoint {
            holder,
            seq,
            handled,
            bytes,
        },
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Encodes our state for another instance (a takeover, a merge or a
    /// checkpoint), with the window of answered calls it has the effect of
    /// (see `crate::dedup::seal`), refusing one over `max_state_bytes`.
    pub(super) fn encode_for_transfer(
        &self,
        user: &A::State,
        answered: &Window,
    ) -> Result<Vec<u8>, StateCodecErr> {
        let bytes = dedup::seal(self.behaviour.encode_state(user)?, answered)?;
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        Ok(bytes)
    }

    /// Decodes a state another instance sent, and its window of answered
    /// calls, refusing one over `max_state_bytes` before decoding it.
    pub(super) fn decode_transferred(
        &self,
        bytes: &[u8],
    ) -> Result<(A::State, Window), StateCodecErr> {
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        let (user, answered) = dedup::open(bytes)?;
        Ok((self.behaviour.decode_state(user)?, answered))
    }

    /// Sends the state `bytes` to `to` as the message `of` stands for: in one
    /// message if it fits in a part, else in parts. A state in parts to `to`
    /// of the same kind still going out is replaced.
    pub(super) fn send_state(
        &self,
        state: &mut ServerState<A>,
        to: &Registration,
        of: PartOf,
        bytes: Arc<Vec<u8>>,
    ) {
        if bytes.len() <= self.config.state_part_bytes {
            let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|shared| (*shared).clone());
            deliver(
                &state.registry,
                to,
                TakeoverMessage::<A>::Handover(whole(of, bytes)),
            );
            return;
        }
        let transfers = &mut state.transfers;
        transfers
            .outgoing
            .retain(|o| !(o.to.info() == to.info() && discriminant(&o.of) == discriminant(&of)));
        tracing::debug!(to = ?to.info(), ?of, bytes = bytes.len(), "state going out in parts");
        transfers.outgoing.push(Outgoing {
            to: to.clone(),
            of: of.clone(),
            bytes,
            sent: 0,
            acked: 0,
            last_progress: Instant::now(),
        });
        self.send_parts(state, &of, to.info());
        self.keep_ticking(state);
    }

    /// Whether a checkpoint in parts to `standby` is still going out.
    pub(super) fn checkpoint_going_to(
        &self,
        state: &ServerState<A>,
        standby: &RegistrationInfo,
    ) -> bool {
        state
            .transfers
            .outgoing
            .iter()
            .any(|o| o.to.info() == standby && matches!(o.of, PartOf::Checkpoint { .. }))
    }

    /// The receiver of `of` has its first `received` bytes: send on. Matched
    /// by the transfer and the receiver's node, not its registration: a
    /// split-brain winner re-registers above the loser while the offer comes.
    pub(super) fn on_part_ack(
        &self,
        state: &mut ServerState<A>,
        of: PartOf,
        receiver: RegistrationInfo,
        received: u64,
    ) {
        let Some(out) = state
            .transfers
            .outgoing
            .iter_mut()
            .find(|o| o.of == of && *o.to.node() == receiver.node)
        else {
            return;
        };
        let received = usize::try_from(received).unwrap_or(usize::MAX);
        if received > out.acked && received <= out.sent {
            out.acked = received;
            out.last_progress = Instant::now();
        }
        self.send_parts(state, &of, &receiver);
    }

    /// Sends the next parts of `of` to `to`, up to [`PARTS_IN_FLIGHT`]
    /// ahead of what it acknowledged, and forgets the state once the last
    /// part is out.
    fn send_parts(&self, state: &mut ServerState<A>, of: &PartOf, to: &RegistrationInfo) {
        let part = self.config.state_part_bytes;
        let transfers = &mut state.transfers;
        let Some(i) = transfers
            .outgoing
            .iter()
            .position(|o| o.of == *of && o.to.node() == &to.node)
        else {
            return;
        };
        let out = &mut transfers.outgoing[i];
        let total = out.bytes.len();
        let limit = out
            .acked
            .saturating_add(PARTS_IN_FLIGHT.saturating_mul(part));
        while out.sent < total && out.sent < limit {
            let end = total.min(out.sent.saturating_add(part));
            let msg = HandoverMsg::StatePart {
                of: out.of.clone(),
                offset: out.sent as u64,
                total: total as u64,
                bytes: out.bytes[out.sent..end].to_vec(),
            };
            out.sent = end;
            deliver(
                &state.registry,
                &out.to,
                TakeoverMessage::<A>::Handover(msg),
            );
        }
        if out.sent >= total {
            transfers.outgoing.swap_remove(i);
        }
    }

    /// The instance that sends `of`, if we want that state now (the same
    /// checks the whole message gets first, so that no state is kept aside
    /// for nothing), to send it our acks.
    fn part_sender(&self, state: &ServerState<A>, of: &PartOf) -> Option<Registration> {
        match (of, &state.stage) {
            (PartOf::StateReply { requester_epoch }, Stage::Pulling(p))
                if p.registration().epoch() == *requester_epoch =>
            {
                Some(p.old_holder())
            }
            (PartOf::MergeOffer { loser, via, .. }, Stage::Holder(_))
                if loser.name == self.name =>
            {
                self.registry.resolve(via.as_ref().unwrap_or(loser))
            }
            (PartOf::Checkpoint { holder, .. }, Stage::Standby(_)) if holder.name == self.name => {
                self.registry.resolve(holder)
            }
            _ => None,
        }
    }

    /// One part of a state. Complete, the state is handled as the whole
    /// message `of` stands for would be.
    pub(super) async fn on_state_part(
        &self,
        state: &mut ServerState<A>,
        of: PartOf,
        offset: u64,
        total: u64,
        bytes: Vec<u8>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(from) = self.part_sender(state, &of) else {
            state.transfers.incoming.retain(|i| i.of != of);
            if let (PartOf::StateReply { requester_epoch }, 0) = (&of, offset) {
                // The first part stands for the whole state here.
                self.on_late_state(state, *requester_epoch, true);
            } else {
                tracing::debug!(?of, offset, "a state part we do not want now; dropped");
            }
            return Ok(());
        };
        let transfers = &mut state.transfers;
        if offset == 0 {
            // A part at 0 starts a state: a newer one from the same sender
            // (the older one will not be finished), or the same one sent
            // again from the start, even under the very same `PartOf` (a
            // split-brain loser whose yield timed out, or that served again
            // and yields again, offers again; read as a continuation, its
            // first part failed the whole offer and the loser's state was
            // dropped: fault seeds 221371574, 221374644 and 2050965744).
            transfers.incoming.retain(|i| slot(&i.of) != slot(&of));
        }
        let at = transfers.incoming.iter().position(|i| i.of == of);
        let got = at.map(|i| {
            let i = &transfers.incoming[i];
            (i.total, i.got.len() as u64)
        });
        let max = self.config.max_state_bytes;
        if let Err(e) = super::phase::check_part(got, offset, total, bytes.len(), max) {
            transfers.incoming.retain(|i| i.of != of);
            return self.part_failed(state, of, e).await;
        }
        let i = match at {
            Some(i) => i,
            None => {
                let size = usize::try_from(total).unwrap_or(usize::MAX);
                let mut got = Vec::new();
                if got.try_reserve_exact(size).is_err() {
                    let e = StateCodecErr::Decode(format!("no memory for a state of {size} bytes"));
                    return self.part_failed(state, of, e).await;
                }
                transfers.incoming.push(Incoming {
                    of: of.clone(),
                    total,
                    got,
                    last_progress: Instant::now(),
                });
                transfers.incoming.len() - 1
            }
        };
        let incoming = &mut transfers.incoming[i];
        incoming.got.extend_from_slice(&bytes);
        incoming.last_progress = Instant::now();
        drop(bytes);
        let received = incoming.got.len() as u64;
        if received == total {
            let done = transfers.incoming.swap_remove(i);
            return self.on_whole_state(state, whole(of, done.got)).await;
        }
        let Some(receiver) = state.registration().map(|m| m.info().clone()).or_else(|| {
            // A standby holds no registration of the name: it acks as the
            // member of the standby group the holder sends to.
            self.standby_registration(state)
        }) else {
            return Ok(());
        };
        let ack = HandoverMsg::StatePartAck {
            of,
            receiver,
            received,
        };
        deliver(&state.registry, &from, TakeoverMessage::<A>::Handover(ack));
        self.keep_ticking(state);
        Ok(())
    }

    /// A complete state in parts, handled as if it had come whole.
    async fn on_whole_state(
        &self,
        state: &mut ServerState<A>,
        msg: HandoverMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HandoverMsg::StateReply {
                requester_epoch,
                result,
            } => self.on_state_reply(state, requester_epoch, result).await,
            HandoverMsg::MergeOffer {
                loser,
                winner_epoch,
                seq,
                handled,
                result,
            } => {
                self.on_merge_offer(state, loser, winner_epoch, (seq, handled), result)
                    .await
            }
            HandoverMsg::Checkpoint {
                holder,
                seq,
                handled,
                bytes,
            } => {
                self.on_checkpoint(state, holder, seq, handled, bytes);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A part that does not continue the others (or no memory for the
    /// state): as a state that does not decode. A pull aborts, a merge offer
    /// is read as unreadable, a checkpoint is refused (the standby keeps
    /// the one it has).
    async fn part_failed(
        &self,
        state: &mut ServerState<A>,
        of: PartOf,
        error: StateCodecErr,
    ) -> Result<(), ActorProcessingErr> {
        match of {
            PartOf::StateReply { .. } => {
                self.abort(state, TakeoverErr::State(error)).await;
                Ok(())
            }
            PartOf::MergeOffer {
                loser,
                winner_epoch,
                seq,
                handled,
                ..
            } => {
                self.on_merge_offer(
                    state,
                    loser,
                    winner_epoch,
                    (seq, handled),
                    Err(ReplyErr::State(error)),
                )
                .await
            }
            PartOf::Checkpoint { .. } => {
                let reason = error.to_string();
                tracing::warn!(%reason, "checkpoint refused");
                self.publish(state, EventKind::CheckpointRejected { reason });
                Ok(())
            }
        }
    }

    /// Keeps one [`TakeoverMessage::TransferTick`] on its way while any state
    /// in parts is.
    fn keep_ticking(&self, state: &mut ServerState<A>) {
        if state.transfers.ticking {
            return;
        }
        state.transfers.ticking = true;
        self.timer(
            state,
            self.config.pull_timeout,
            TakeoverMessage::TransferTick,
        );
    }

    /// Drops the states in parts that made no progress for a
    /// `pull_timeout`: the other side is gone or gave up (a pull of ours
    /// ends by its own timer).
    pub(super) fn on_transfer_tick(&self, state: &mut ServerState<A>) {
        let idle = self.config.pull_timeout;
        let transfers = &mut state.transfers;
        transfers.ticking = false;
        transfers.outgoing.retain(|o| {
            let alive = o.last_progress.elapsed() < idle;
            if !alive {
                tracing::warn!(to = ?o.to.info(), of = ?o.of, sent = o.sent, "no ack for a state in parts; dropped");
            }
            alive
        });
        transfers.incoming.retain(|i| {
            let alive = i.last_progress.elapsed() < idle;
            if !alive {
                tracing::warn!(of = ?i.of, got = i.got.len(), "a state in parts stopped coming; dropped");
            }
            alive
        });
        if !transfers.outgoing.is_empty() || !transfers.incoming.is_empty() {
            self.keep_ticking(state);
        }
    }
}
