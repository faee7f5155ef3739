//! The instance's dispatch: the one match over its messages, and the one
//! over the handover protocol's, each message sent on to the file of its
//! side; also what a failed instance still answers, and the guard that
//! drops stale timers.

use ractor::{ActorProcessingErr, ActorRef};

use super::calls::Pending;
use super::phase::{self, Timer};
use super::{ServerState, TakeoverServer};
use crate::{Epoch, HandoverMsg, InstanceStatus, TakeoverActor, TakeoverMessage};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// The one enum match over messages: each goes to the file of its role.
    pub(super) async fn dispatch(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        message: TakeoverMessage<A>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(why) = state.failed.clone() {
            return self.dispatch_failed(state, message, why);
        }
        match message {
            TakeoverMessage::HandlerFailed(why) => Err(why.into()),
            TakeoverMessage::Call { msg, reply } => {
                self.on_call(state, Pending { msg, reply }).await
            }
            TakeoverMessage::Go { request, reply } => {
                state.memory.move_reason = Some(crate::event::MoveReason::Requested);
                self.on_go(myself, state, request, reply).await
            }
            TakeoverMessage::Status(reply) => {
                let _ = reply.send(self.status(state));
                Ok(())
            }
            TakeoverMessage::Handover(h) => self.on_handover(myself, state, h).await,
            TakeoverMessage::Registry(event) => self.on_registry(myself, state, event).await,
            TakeoverMessage::PlacementTick => self.place(myself, state).await,
            TakeoverMessage::PullTimeout(epoch) if self.due(state, Timer::Pull, epoch) => {
                self.on_pull_timeout(state).await
            }
            TakeoverMessage::ConflictTick(epoch) if self.due(state, Timer::Conflict, epoch) => {
                self.on_conflict_tick(myself, state).await
            }
            TakeoverMessage::CheckpointTick(epoch) if self.due(state, Timer::Checkpoint, epoch) => {
                self.on_checkpoint_tick(state, epoch);
                Ok(())
            }
            TakeoverMessage::YieldTimeout(epoch) if self.due(state, Timer::Yield, epoch) => {
                self.on_yield_timeout(state).await
            }
            TakeoverMessage::RetireTick(epoch) if self.due(state, Timer::Retire, epoch) => {
                self.on_retire_tick(state, epoch).await
            }
            TakeoverMessage::TransferTick => {
                self.on_transfer_tick(state);
                Ok(())
            }
            TakeoverMessage::LeaseTick => self.on_lease_tick(state).await,
            TakeoverMessage::SyncTick(epoch) => self.on_sync_tick(state, epoch).await,
            TakeoverMessage::MovePermit(permit) => {
                state.awaiting_permit = false;
                state.move_permit = Some(permit);
                self.place(myself, state).await
            }
            TakeoverMessage::Info(own) => self.on_info(state, own).await,
            TakeoverMessage::PullTimeout(_)
            | TakeoverMessage::ConflictTick(_)
            | TakeoverMessage::CheckpointTick(_)
            | TakeoverMessage::YieldTimeout(_)
            | TakeoverMessage::RetireTick(_) => Ok(()),
        }
    }

    /// After the handler failed: answer what is queued, then fail the actor
    /// when the instance's own [`TakeoverMessage::HandlerFailed`] comes.
    fn dispatch_failed(
        &self,
        state: &mut ServerState<A>,
        message: TakeoverMessage<A>,
        why: String,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TakeoverMessage::HandlerFailed(why) => Err(why.into()),
            TakeoverMessage::Call { msg, reply } => {
                self.refuse_stopped(state, Pending { msg, reply }, &why);
                Ok(())
            }
            TakeoverMessage::Go { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(crate::TakeoverErr::InstanceGone));
                }
                Ok(())
            }
            TakeoverMessage::Status(reply) => {
                let _ = reply.send(self.status(state));
                Ok(())
            }
            // The protocol and the timers: the peers' own timeouts cover an
            // instance that stopped.
            _ => Ok(()),
        }
    }

    /// What the instance reports about itself (`TakeoverRef::status`).
    fn status(&self, state: &ServerState<A>) -> InstanceStatus {
        InstanceStatus {
            phase: state.stage.phase(),
            epoch: state.epoch(),
            node: self.registry.node().clone(),
            last_move: state.memory.last_move.clone(),
        }
    }

    /// The one guard for stale timers (see [`phase::timer_current`]).
    fn due(&self, state: &ServerState<A>, timer: Timer, fired: Epoch) -> bool {
        phase::timer_current(timer, state.timer_view(), fired)
    }

    /// A protocol message: each goes to the file of its side.
    async fn on_handover(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        msg: HandoverMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HandoverMsg::StateRequest {
                holder_epoch,
                requester,
                have,
            } => {
                self.on_state_request(state, holder_epoch, requester, have)
                    .await
            }
            HandoverMsg::StateUnchanged {
                requester_epoch,
                holder_epoch,
                seq,
            } => {
                self.on_state_unchanged(state, requester_epoch, holder_epoch, seq)
                    .await
            }
            HandoverMsg::Replica {
                holder,
                seq,
                handled,
                body,
            } => {
                self.on_replica(state, holder, seq, handled, body);
                self.awaited_replica_came(state).await
            }
            HandoverMsg::ReplicaAck {
                holder_epoch,
                seq,
                standby,
                need_full,
            } => {
                self.on_replica_ack(state, holder_epoch, seq, standby, need_full)
                    .await
            }
            HandoverMsg::StateReply {
                requester_epoch,
                result,
            } => self.on_state_reply(state, requester_epoch, result).await,
            HandoverMsg::StatePart {
                of,
                offset,
                total,
                bytes,
            } => {
                self.on_state_part(state, of, offset, total, bytes).await?;
                // A whole-state replica in parts may be the one named.
                self.awaited_replica_came(state).await
            }
            HandoverMsg::StatePartAck {
                of,
                receiver,
                received,
            } => {
                self.on_part_ack(state, of, receiver, received);
                Ok(())
            }
            HandoverMsg::HandoverDone { successor } => {
                self.on_handover_done(myself, state, successor).await
            }
            HandoverMsg::HandoverAborted { successor } => {
                self.on_handover_aborted(state, successor).await
            }
            HandoverMsg::HandoverQuery { old, successor } => {
                self.on_handover_query(state, old, successor);
                Ok(())
            }
            HandoverMsg::HandoverUnknown {
                successor,
                answerer,
            } => self.on_handover_unknown(state, successor, answerer).await,
            HandoverMsg::Rival { claim, want_reply } => {
                self.on_rival(myself, state, claim, want_reply).await
            }
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
            HandoverMsg::MergeDone { loser } => self.on_merge_done(myself, state, loser).await,
            HandoverMsg::Checkpoint {
                holder,
                seq,
                handled,
                bytes,
            } => {
                self.on_checkpoint(state, holder, seq, handled, bytes);
                Ok(())
            }
        }
    }
}
