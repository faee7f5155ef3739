//! Where an instance starts, and placement: registering at start when it is
//! first in line, taking a vacant name when it is our turn, taking the name
//! over from a holder of lower priority; and quorum mode, which keeps a
//! holder in a minority from answering.

use std::collections::BTreeSet;
use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::checkpoint::Warm;
use super::phase;
use super::{Holder, ServerState, Stage, TakeoverServer};
use crate::event::MoveReason;
use crate::{
    EventKind, GoRequest, HandoverReport, NodeName, RegistryErr, StartType, TakeoverActor,
    TakeoverErr, TakeoverMessage,
};

/// The live nodes that may take a name: those that do not drain.
fn eligible(
    mut live: std::collections::BTreeSet<crate::NodeName>,
    draining: &std::collections::BTreeSet<crate::NodeName>,
) -> std::collections::BTreeSet<crate::NodeName> {
    live.retain(|n| !draining.contains(n));
    live
}

/// The stage of a standby.
pub(super) struct Standby<A: TakeoverActor> {
    /// Warm standby: our entry in the standby group and the newest
    /// checkpoint received.
    warm: Warm<A>,
    /// Since when the name has been vacant in our view.
    vacant_since: Option<Instant>,
    /// Since when the holder's node has been draining in our view.
    drain_seen: Option<Instant>,
    /// No self-initiated takeover before this (after a failed one).
    retry_at: Option<Instant>,
}

impl<A: TakeoverActor> Default for Standby<A> {
    fn default() -> Self {
        Self {
            warm: Warm::default(),
            vacant_since: None,
            drain_seen: None,
            retry_at: None,
        }
    }
}

impl<A: TakeoverActor> Standby<A> {
    /// A standby again after a rolled-back pull, which keeps its warm
    /// standby and waits until `retry_at` before it tries again.
    /// Warm standby's part, taken along into a pull or a holder.
    pub(super) fn take_warm(&mut self) -> Warm<A> {
        std::mem::take(&mut self.warm)
    }

    /// Warm standby's part.
    pub(super) fn warm(&self) -> &Warm<A> {
        &self.warm
    }

    /// Warm standby's part, for the checkpoints that come.
    pub(super) fn warm_mut(&mut self) -> &mut Warm<A> {
        &mut self.warm
    }

    pub(super) fn after_abort(warm: Warm<A>, retry_at: Option<Instant>) -> Self {
        Self {
            warm,
            vacant_since: None,
            drain_seen: None,
            retry_at,
        }
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// The instance's start, in `post_start`: Erlang `global`'s safe whereis
    /// first. An instance restarted on the retiring side of a takeover finds
    /// the new holder here (the steal reached this node before the state
    /// request did) and stays a standby.
    pub(super) async fn start(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        // In line first: a node behind us that sees the name vacant (our
        // registration not made yet, or not yet reached it) waits for us
        // instead of taking it at its own turn (see `phase::vacancy_turn`).
        // Registering as holder below leaves the line again.
        self.join_standbys(state).await;
        let holder = self
            .registry
            .safe_lookup(&self.name, self.config.whereis_timeout)
            .await?;
        if let Some(holder) = holder {
            self.become_standby(state, Some(holder.info().clone()))
                .await;
            return self.place(myself, state).await;
        }
        let first_in_line = match &self.config.placement {
            // Only the first live node in priority order registers at once;
            // the others wait their turn as standbys.
            Some(placement) => {
                let live = eligible(self.registry.live_nodes(), &self.registry.draining());
                let order = placement.order(&live);
                order.first() == Some(self.registry.node())
            }
            None => true,
        };
        // A fresh instance keeps no checkpoint: where another node stands
        // by (it may keep the state of a holder this node never saw, or
        // forgot in a restart), it waits as a standby, which lets that one
        // go first (see `phase::vacancy_turn`, `empty`).
        let others_may_keep_state =
            self.keeps_checkpoints() && self.others_standing_by(&self.standing_by());
        if !first_in_line || !self.has_quorum() || others_may_keep_state {
            self.become_standby(state, None).await;
            return self.place(myself, state).await;
        }
        // Before registering (which makes us the newest registration).
        let start = self.vacant_start(state);
        match self.registry.register(&self.name, myself.get_cell()).await {
            Ok(me) => {
                self.hold_vacant(state, me, start).await?;
                Ok(())
            }
            Err(RegistryErr::AlreadyRegistered { .. }) => {
                let holder = self.registry.lookup(&self.name).map(|r| r.info().clone());
                self.become_standby(state, holder).await;
                self.place(myself, state).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The nodes running a standby of the name (live ones only: a view
    /// ignores the members of a node it counts down).
    fn standing_by(&self) -> BTreeSet<NodeName> {
        self.registry
            .members(&super::checkpoint::standby_name(&self.name))
            .iter()
            .map(|m| m.node().clone())
            .collect()
    }

    /// Whether a node other than this one is in `standing_by`.
    fn others_standing_by(&self, standing_by: &BTreeSet<NodeName>) -> bool {
        standing_by.iter().any(|n| n != self.registry.node())
    }

    /// Whether standbys keep the holder's state (warm or synchronous
    /// standby), so that one that keeps none should not fail over first.
    fn keeps_checkpoints(&self) -> bool {
        self.config.checkpoint.is_some() || self.sync_on()
    }

    /// How a start on a vacant name must be reported (by this instance, or
    /// by its node, which learns the newest registration from its peers).
    fn vacant_start(&self, state: &mut ServerState<A>) -> StartType {
        if state.memory.last_holder.is_none() {
            if let Some(seen) = self.registry.newest_seen(&self.name) {
                self.note_holder(state, &seen);
            }
        }
        phase::vacant_start(state.memory.last_holder.as_ref())
    }

    /// Registers a vacant name and starts as holder with `start`.
    pub(super) async fn take_vacant(
        &self,
        myself: &ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        start: StartType,
    ) -> Result<Result<HandoverReport, TakeoverErr>, ActorProcessingErr> {
        if !self.has_quorum() {
            return Ok(Err(TakeoverErr::NoQuorum));
        }
        match self.registry.register(&self.name, myself.get_cell()).await {
            Ok(me) => {
                let info = me.info().clone();
                let start = self.hold_vacant(state, me, start).await?;
                Ok(Ok(HandoverReport {
                    holder: info,
                    start,
                    state_bytes: 0,
                    pause: Duration::ZERO,
                    buffered: 0,
                }))
            }
            Err(e) => Ok(Err(e.into())),
        }
    }

    /// A standby that registered the vacant name becomes its holder: a
    /// failover starts from the newest checkpoint, if we have one.
    async fn hold_vacant(
        &self,
        state: &mut ServerState<A>,
        me: crate::Registration,
        start: StartType,
    ) -> Result<StartType, ActorProcessingErr> {
        self.set_registration(state, Some(me));
        let mut warm = match &mut state.stage {
            Stage::Standby(s) => s.take_warm(),
            _ => Warm::default(),
        };
        self.enter(state, Stage::Holder(Holder::default()), None);
        let start = match start {
            StartType::Failover { from, .. } => self.failover_start(state, from, &mut warm),
            other => other,
        };
        self.begin_holding(state, start.clone(), warm).await?;
        Ok(start)
    }

    /// Placement, on a standby: take a vacant name when it is our turn, take
    /// the name over from a holder of lower priority. Re-run on every registry
    /// change and on [`TakeoverMessage::PlacementTick`].
    pub(super) async fn place(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(placement) = &self.config.placement else {
            return Ok(());
        };
        if !matches!(state.stage, Stage::Standby(_)) {
            return Ok(());
        }
        let now = Instant::now();
        let holder = self.registry.lookup(&self.name);
        if let Some(holder) = &holder {
            // Before anything else: a failover must name the last holder seen.
            if let Stage::Standby(s) = &mut state.stage {
                s.vacant_since = None;
            }
            self.note_holder(state, holder.info());
        }
        let Stage::Standby(standby) = &mut state.stage else {
            return Ok(());
        };
        if let Some(at) = standby.retry_at {
            if now < at {
                self.timer(state, at - now, TakeoverMessage::PlacementTick);
                return Ok(());
            }
            standby.retry_at = None;
        }
        let me = self.registry.node().clone();
        match holder {
            Some(holder) => {
                if !Self::in_line(state) {
                    // Back in line (we left it to let a standby with the
                    // state fail over), for the holder's checkpoints.
                    self.join_standbys(state).await;
                }
                let Stage::Standby(standby) = &mut state.stage else {
                    return Ok(());
                };
                let members = self.registry.members(&self.name);
                let members = members
                    .iter()
                    .map(|m| (m.cell().get_id() == myself.get_id(), m.node()));
                let draining = self.registry.draining();
                let eligible = eligible(self.registry.live_nodes(), &draining);
                let held = self.registry.takeback_held();
                let decision = phase::move_now(placement, &me, members, &eligible, &draining, held);
                if !matches!(decision, phase::MoveNow::Drain { .. }) {
                    standby.drain_seen = None;
                }
                match decision {
                    phase::MoveNow::Stay => {}
                    phase::MoveNow::Placement => {
                        if !self.move_permit(&myself, state) {
                            tracing::debug!(holder = %holder.node(), "placement: waiting for a move permit");
                            return Ok(());
                        }
                        tracing::info!(holder = %holder.node(), "placement: the holder's node has lower priority; taking over");
                        state.memory.move_reason = Some(MoveReason::Placement);
                        self.on_go(myself, state, GoRequest::Takeover, None).await?;
                    }
                    phase::MoveNow::Drain { rank } => {
                        // The k-th in line gives the ones before it k graces
                        // to take the name (they may run no instance of it).
                        let due = *standby.drain_seen.get_or_insert(now)
                            + placement.standby_grace * rank as u32;
                        if now < due {
                            self.timer(state, due - now, TakeoverMessage::PlacementTick);
                            return Ok(());
                        }
                        // A drain of hundreds of names is a storm of moves
                        // as a return is: it waits its turn the same way.
                        if !self.move_permit(&myself, state) {
                            tracing::debug!(holder = %holder.node(), "placement: waiting for a move permit");
                            return Ok(());
                        }
                        tracing::info!(holder = %holder.node(), "placement: the holder's node drains; taking over");
                        state.memory.move_reason = Some(MoveReason::Drain);
                        self.on_go(myself, state, GoRequest::Takeover, None).await?;
                    }
                }
            }
            None => {
                // A draining node takes no vacant name, and is not waited for.
                let live = eligible(self.registry.live_nodes(), &self.registry.draining());
                let vacant_since = *standby.vacant_since.get_or_insert(now);
                let standing_by = self.standing_by();
                // Empty: no checkpoint kept here (see `phase::vacancy_turn`),
                // whether a holder was seen or not: a node that restarted
                // without a state directory knows none (it would start
                // `Normal`), while its peers' standbys keep the state.
                let empty = self.keeps_checkpoints() && standby.warm().have().is_none();
                if empty && self.others_standing_by(&standing_by) {
                    // Out of the line while we wait: the nodes behind us
                    // wait for a standby ahead of them, and we will not
                    // take first. We join again once the name has a holder.
                    if self.leave_line(state) {
                        tracing::info!("placement: no checkpoint of the name here; letting a standby that keeps one fail over first");
                    }
                }
                match phase::vacancy_turn(
                    placement,
                    &me,
                    &live,
                    &standing_by,
                    now - vacant_since,
                    empty,
                ) {
                    phase::VacancyTurn::NotInLine => return Ok(()),
                    phase::VacancyTurn::WaitUntil(wait) => {
                        self.timer(state, wait, TakeoverMessage::PlacementTick);
                        return Ok(());
                    }
                    phase::VacancyTurn::Take => {}
                }
                let start = self.vacant_start(state);
                tracing::info!(?start, "placement: the name is vacant and it is our turn");
                if let Err(e) = self.take_vacant(&myself, state, start).await? {
                    tracing::info!(error = %e, "placement: could not take the vacant name");
                }
            }
        }
        Ok(())
    }

    /// Whether we hold one of the node's move permits now
    /// ([`crate::TakeoverConfig::move_limit`]), taking a free one. If none
    /// is free, a task waits in line for one and hands it to us in a
    /// message, which runs placement again (the holder may have changed
    /// meanwhile; a permit we do not use goes back at once).
    fn move_permit(
        &self,
        myself: &ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> bool {
        if state.move_permit.is_some() {
            return true;
        }
        if let Some(permit) = self.config.move_limit.try_acquire() {
            state.move_permit = Some(permit);
            return true;
        }
        if !state.awaiting_permit {
            state.awaiting_permit = true;
            let limit = self.config.move_limit.clone();
            let myself = myself.clone();
            // A stopped instance's message fails: the permit drops, back
            // to the next in line.
            tokio::spawn(async move {
                if let Some(permit) = limit.acquire().await {
                    let _ = myself.send_message(TakeoverMessage::MovePermit(permit));
                }
            });
        }
        false
    }

    /// Whether this node may start a holder: always, unless quorum mode is on
    /// and fewer than a majority of the placement's nodes are live.
    pub(super) fn has_quorum(&self) -> bool {
        if !self.config.quorum {
            return true;
        }
        let Some(placement) = &self.config.placement else {
            return true;
        };
        let listed: Vec<_> = placement.groups().iter().flatten().collect();
        let live = self.registry.live_nodes();
        phase::majority(&listed, |n| live.contains(n))
    }

    /// On a holder, quorum mode: whether a majority is live, noting the
    /// change. Without quorum the holder holds its calls (in the buffer), so
    /// a holder cut into a minority acknowledges nothing the majority's new
    /// holder will not know about.
    pub(super) fn quorum_now(&self, state: &mut ServerState<A>) -> bool {
        let quorum = self.has_quorum();
        let Stage::Holder(holder) = &mut state.stage else {
            return quorum;
        };
        if quorum != holder.quorum_lost {
            return quorum;
        }
        holder.quorum_lost = !quorum;
        if quorum {
            tracing::info!("quorum regained; serving the held calls");
            self.publish(state, EventKind::QuorumRegained);
        } else {
            let live: Vec<_> = self.registry.live_nodes().into_iter().collect();
            tracing::warn!(?live, "quorum lost; holding calls");
            self.publish(state, EventKind::QuorumLost { live });
        }
        quorum
    }
}
