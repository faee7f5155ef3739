//! The watcher actor: turns pg changes of the registration groups into
//! registry events, and keeps the newest registration seen per name.
//!
//! Why apart from the heartbeat: a mass move (hundreds of names changing
//! holder at once) is a storm of pg changes, and ractor handles supervision
//! events (pg changes are) before messages. In the heartbeat's own mailbox
//! that storm delayed pings and pongs until live peers looked down. The
//! heartbeat lives in a scope of its own, so it never sees these changes.

use std::sync::Arc;

use ractor::pg::GroupChangeMessage;
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::marks::{self, Mark};
use super::{member_info, Shared, SCOPE};
use crate::RegistryEvent;

pub(crate) enum WatcherMsg {
    /// Answers once every pg change delivered before it was handled: ractor
    /// handles supervision events (pg changes) before messages.
    Sync(RpcReplyPort<()>),
}

impl ractor::Message for WatcherMsg {}

pub(crate) struct Watcher;

impl Actor for Watcher {
    type Msg = WatcherMsg;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<WatcherMsg>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        pg::monitor_scope(SCOPE.to_string(), myself.get_cell());
        Ok(shared)
    }

    async fn handle(
        &self,
        _myself: ActorRef<WatcherMsg>,
        msg: WatcherMsg,
        _shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WatcherMsg::Sync(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<WatcherMsg>,
        event: SupervisionEvent,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ProcessGroupChanged(change) = event else {
            return Ok(());
        };
        match &change {
            GroupChangeMessage::Join(scope, group, cells)
            | GroupChangeMessage::Leave(scope, group, cells)
                if scope == SCOPE =>
            {
                let joined = matches!(change, GroupChangeMessage::Join(..));
                for cell in cells {
                    match marks::mark_of(group, cell) {
                        Some(Mark::Draining(node)) => shared.emit(RegistryEvent::Draining {
                            node,
                            draining: joined,
                        }),
                        Some(Mark::Hold) => shared.emit(RegistryEvent::TakebackHold {
                            held: marks::held(|_| true),
                        }),
                        None => {}
                    }
                }
            }
            _ => {}
        }
        match change {
            GroupChangeMessage::Join(scope, group, cells) if scope == SCOPE => {
                for cell in cells {
                    if let Some(info) = member_info(&cell, &group) {
                        if let Err(e) = shared.saw(&info) {
                            tracing::warn!(?info, error = %e, "could not keep the newest epoch on disk");
                        }
                        shared.emit(RegistryEvent::Registered(info));
                    }
                }
            }
            GroupChangeMessage::Leave(scope, group, cells) if scope == SCOPE => {
                for cell in cells {
                    if let Some(info) = member_info(&cell, &group) {
                        let (recorded, alive) = {
                            let mut s = shared.lock();
                            (
                                s.leaving.remove(&cell.get_id()),
                                s.alive.contains(&info.node),
                            )
                        };
                        let reason = super::token::leave_reason(&cell, &group, recorded, alive);
                        shared.emit(RegistryEvent::Unregistered { info, reason });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
