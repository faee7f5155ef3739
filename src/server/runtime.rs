//! The ractor actor behind a [`TakeoverServer`]: its private newtype, its
//! hooks (`pre_start` builds the instance's state, the others enter its
//! span and hand on to the dispatch), and the pump that feeds the node's
//! registry changes into its mailbox.

use std::collections::VecDeque;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::Instrument;

use super::placement::Standby;
use super::state::Memory;
use super::transfer::Transfers;
use super::{checkpoint, instance_span, ServerState, Stage, TakeoverServer};
use crate::{RegistryEvent, TakeoverActor, TakeoverCtx, TakeoverMessage};

/// The ractor actor itself: a [`TakeoverServer`] under a name nobody
/// outside the crate can write.
///
/// Why not `impl Actor for TakeoverServer`: an actor's message type is
/// public through its `Actor` impl (`<TakeoverServer<A> as Actor>::Msg`
/// names it, and a type alias of that builds its variants), so anyone could
/// have forged a protocol message or a timer. Behind this private newtype
/// the message type has no public path at all. It derefs to the server, so
/// the hooks below read as methods of the server.
pub(super) struct Runtime<A: TakeoverActor>(pub(super) TakeoverServer<A>);

impl<A: TakeoverActor> std::ops::Deref for Runtime<A> {
    type Target = TakeoverServer<A>;

    fn deref(&self) -> &TakeoverServer<A> {
        &self.0
    }
}

impl<A: TakeoverActor> Actor for Runtime<A> {
    type Msg = TakeoverMessage<A>;
    type State = ServerState<A>;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Before `init`: a setting that cannot work fails the spawn, not a
        // handover later (see `spawn`).
        self.config.validate(self.registry.max_frame_bytes())?;
        self.config.validate_whereis(self.registry.settle_time())?;
        let span = instance_span(&self.name, self.registry.node(), None);
        let ctx = TakeoverCtx {
            myself: myself.clone(),
            name: self.name.clone(),
            node: self.registry.node().clone(),
            registration: None,
            tenure: None,
            timers: Default::default(),
        };
        let user = self
            .behaviour
            .init(&ctx, args)
            .instrument(span.clone())
            .await?;
        let initial = self.behaviour.encode_state(&user);
        self.registry.attach(&myself.get_cell());
        let pump = spawn_pump(
            self.registry.watch(&self.name),
            self.registry.watch(&checkpoint::standby_name(&self.name)),
            myself,
        );
        Ok(ServerState {
            ctx,
            user,
            initial,
            stage: Stage::Standby(Standby::default()),
            registry: self.registry.clone(),
            buffer: VecDeque::new(),
            pump,
            span,
            span_epoch: None,
            memory: Memory::default(),
            failed: None,
            transfers: Transfers::default(),
            lease_recheck: false,
            held: Default::default(),
            answered: Default::default(),
            infos: VecDeque::new(),
            sync: Default::default(),
            move_permit: None,
            awaiting_permit: false,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Instance::new(&self.name, self.registry.node()),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.start(myself, state).instrument(span).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        let done = self.dispatch(myself, message, state).instrument(span).await;
        // A permit counts a pull: whatever ended it (installed, aborted,
        // failed over, or a takeover that never began), it goes back.
        if !matches!(state.stage, Stage::Pulling(_)) {
            state.move_permit = None;
        }
        #[cfg(feature = "metrics")]
        self.sample_metrics(state);
        done
    }

    /// Why not ractor's default (which stops an actor whose linked child
    /// ended): a child that user code links to the instance must not take
    /// the global server down; the behaviour decides (see
    /// [`TakeoverActor::handle_supervisor_evt`]).
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.on_supervisor_evt(state, event).instrument(span).await
    }
}

/// Feeds this node's changes of our name (and node up/down) into the
/// instance's mailbox, so that they are handled between messages like
/// everything else; a change of the name's standby group becomes a
/// placement pass (a standby behind one that left its place may take the
/// name now). The watches drop nothing, so no change is missed.
fn spawn_pump<A: TakeoverActor>(
    mut changes: crate::NameWatch,
    mut standbys: crate::NameWatch,
    myself: ActorRef<TakeoverMessage<A>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut standbys_open = true;
        loop {
            let msg = tokio::select! {
                event = changes.recv() => match event {
                    Some(event) => TakeoverMessage::Registry(event),
                    None => break,
                },
                event = standbys.recv(), if standbys_open => match event {
                    // Node up/down comes through `changes` already.
                    Some(RegistryEvent::Registered(_) | RegistryEvent::Unregistered { .. }) => {
                        TakeoverMessage::PlacementTick
                    }
                    Some(_) => continue,
                    None => {
                        standbys_open = false;
                        continue;
                    }
                },
            };
            if myself.send_message(msg).is_err() {
                break;
            }
        }
    })
}
