//! The token actor: one per registration, the pg member that remote nodes see.

use std::sync::Arc;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

use crate::{LeaveReason, NodeName, RegistrationInfo, Registry};

const PREFIX: &str = "ractor_takeover|reg|";

/// The token's spawn name: it carries the registration to every node, since a
/// remote proxy keeps its actor's spawn name and pg keeps nothing else.
pub(crate) fn actor_name(info: &RegistrationInfo) -> String {
    format!("{PREFIX}{}|{}|{}", info.epoch, info.node, info.name)
}

/// Reads a registration back from a token's name. The name comes last, so it
/// may contain anything; node names must not contain `|`.
pub(crate) fn parse_name(name: &str) -> Option<RegistrationInfo> {
    let mut parts = name.strip_prefix(PREFIX)?.splitn(3, '|');
    let epoch = parts.next()?.parse().ok()?;
    let node = NodeName::new(parts.next()?);
    let name = parts.next()?.to_string();
    Some(RegistrationInfo { name, epoch, node })
}

/// The tombstone group of `name`: a registration that leaves `name` cleanly
/// (it retired, or rolled a steal back) joins it first.
///
/// Why: pg's Leave carries no reason, and a remote node must tell a clean
/// unregistration from an instance or node gone (a puller whose old holder
/// left cleanly has lost nothing). Both pg changes travel on the same
/// session, in order, so by the time a peer sees the Leave its pg already
/// has the token in the tombstone group; a token that died, or whose node
/// did, never joined it. The token leaves it by itself when it stops, after
/// `ClusterConfig::token_linger`.
pub(crate) fn tombstone(name: &str) -> String {
    format!("{name}|{TOMBSTONE}")
}

const TOMBSTONE: &str = "ractor_takeover|left";

/// Why a registration's token left `group` (see [`tombstone`]): as its own
/// node recorded it (`recorded`, for a token of this node; one that left
/// without a record died), clean if the token is in the tombstone group,
/// otherwise gone with its instance, or with its node if the heartbeat
/// already counts that node down. A node lost at this very moment may be
/// reported `InstanceDied` (its session closed before the heartbeat
/// noticed): either way, not a clean leave.
pub(crate) fn leave_reason(
    token: &ActorCell,
    group: &str,
    recorded: Option<LeaveReason>,
    node_alive: bool,
) -> LeaveReason {
    if token.get_id().is_local() {
        return recorded.unwrap_or(LeaveReason::InstanceDied);
    }
    let tombstoned = ractor::pg::get_scoped_members(&super::SCOPE.to_string(), &tombstone(group))
        .iter()
        .any(|c| c.get_id() == token.get_id());
    if tombstoned {
        LeaveReason::Unregistered
    } else if node_alive {
        LeaveReason::InstanceDied
    } else {
        LeaveReason::NodeDown
    }
}

/// Passes every message on to the instance, still serialized: the token does
/// not know the instance's message type, and does not need to.
///
/// Why it outlives its registration for a while (see `ClusterNode::unregister`):
/// a remote caller's pending reply ports live in its proxy of this token, and
/// ractor_cluster drops them when the token stops. A retiring instance has
/// just forwarded calls whose replies come back this way.
pub(crate) struct Token;

pub(crate) struct TokenArgs {
    pub(crate) instance: ActorCell,
    pub(crate) info: RegistrationInfo,
    pub(crate) registry: Arc<dyn Registry>,
    /// Set once the registration left (the token lingers): every call
    /// that still reaches it is counted until answered (see
    /// `crate::drain`), since its answer comes back through this process.
    pub(crate) lingering: Arc<std::sync::atomic::AtomicBool>,
}

/// The variant of a call a drain sends a lingering token: answered at
/// once, it proves that the token handled (and counted) every message
/// queued before it.
pub(crate) const FLUSH: &str = "ractor_takeover|flush";

pub(crate) struct TokenMsg(SerializedMessage);

impl ractor::Message for TokenMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(self.0)
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        Ok(Self(bytes))
    }
}

impl Actor for Token {
    type Msg = TokenMsg;
    type State = TokenArgs;
    type Arguments = TokenArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TokenMsg>,
        args: TokenArgs,
    ) -> Result<TokenArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<TokenMsg>,
        msg: TokenMsg,
        state: &mut TokenArgs,
    ) -> Result<(), ActorProcessingErr> {
        let msg = match msg.0 {
            SerializedMessage::Call { variant, reply, .. } if variant == FLUSH => {
                let _ = reply.send(Vec::new());
                return Ok(());
            }
            SerializedMessage::Call {
                variant,
                args,
                reply,
                metadata,
            } if state.lingering.load(std::sync::atomic::Ordering::Acquire) => {
                SerializedMessage::Call {
                    variant,
                    args,
                    reply: crate::drain::relay::port(reply),
                    metadata,
                }
            }
            other => other,
        };
        let Err(refused) = state.instance.send_serialized(msg) else {
            return Ok(());
        };
        // The instance retired or died: it handled nothing, so a call goes
        // on to whoever holds the name now, as on every backend.
        if let ractor::MessagingErr::SendErr(msg) = *refused {
            tracing::debug!(token = ?myself.get_name(), "instance gone; re-routing");
            crate::message::routing::reroute(
                &state.registry,
                &state.info.name,
                state.instance.get_id(),
                msg,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names round-trip, a name with the separator in it included; other
    /// actors' names are not tokens.
    #[test]
    fn names_round_trip() {
        let info = RegistrationInfo {
            name: "lock|manager".into(),
            epoch: 42,
            node: NodeName::new("b"),
        };
        assert_eq!(parse_name(&actor_name(&info)), Some(info));
        assert_eq!(parse_name("something_else"), None);
        assert_eq!(parse_name("ractor_takeover|reg|x|b|n"), None);
    }

    /// A token of this node left for the reason its node recorded, or died;
    /// a remote one that is not in the tombstone group is gone, with its
    /// node if that is known down.
    #[tokio::test]
    async fn leave_reasons() {
        let (token, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let cell = token.get_cell();
        assert_eq!(
            leave_reason(&cell, "g", Some(LeaveReason::Unregistered), true),
            LeaveReason::Unregistered
        );
        assert_eq!(
            leave_reason(&cell, "g", None, true),
            LeaveReason::InstanceDied
        );
        assert_ne!(tombstone("g"), "g");
        assert!(parse_name(&tombstone("g")).is_none());
    }

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }
}
