//! The token actor: one per registration, the pg member that remote nodes see.

use std::sync::Arc;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

use crate::{NodeId, RegistrationInfo, Registry};

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
    let node = NodeId::new(parts.next()?);
    let name = parts.next()?.to_string();
    Some(RegistrationInfo { name, epoch, node })
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
}

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
        let Err(refused) = state.instance.send_serialized(msg.0) else {
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
            node: NodeId::new("b"),
        };
        assert_eq!(parse_name(&actor_name(&info)), Some(info));
        assert_eq!(parse_name("something_else"), None);
        assert_eq!(parse_name("ractor_takeover|reg|x|b|n"), None);
    }
}
