//! [`ClusterNode`] as a [`Registry`]: the view of a name's members in pg
//! (our own tokens mapped to their instances, a silent peer's ignored),
//! registering and stealing by a token actor under a fresh epoch, leaving
//! (with the tombstone of a clean leave), and the safe lookup's two waits:
//! for every configured peer to be known, and for a shared ping round.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::{pg, Actor, ActorCell};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::heartbeat::HeartbeatMsg;
use super::token::{self, Token};
use super::watcher::WatcherMsg;
use super::{marks, member_info, ClusterNode, SCOPE};
use crate::registry::{takes_messages, BoxFuture};
use crate::{
    LeaveReason, NameWatch, NodeName, Registration, RegistrationInfo, Registry, RegistryErr,
    RegistryEvent,
};

impl ClusterNode {
    /// Waits until every configured peer is known: heard from, or known
    /// down (declared down, or refusing connections). A peer whose session
    /// has not completed is unknown until `startup_timeout` has passed since
    /// the start: taking it for down would show its names as vacant.
    async fn peers_known(&self, deadline: Instant) -> bool {
        let shared = self.shared();
        let mut changed = shared.changed.subscribe();
        let config = &self.inner.config;
        let give_up = shared.started + config.startup_timeout;
        loop {
            let now = Instant::now();
            let (known, wake) = {
                let s = shared.lock();
                let known = |node: &NodeName| {
                    s.alive.contains(node)
                        || s.known_down.contains(node)
                        || s.clients.contains(node)
                };
                let configured = now >= give_up
                    || config
                        .peers
                        .iter()
                        .chain(&config.seeds)
                        .all(|p| known(&p.node));
                // A member learnt from a seed or a peer is waited for as
                // long, from when it was learnt.
                let learnt = s
                    .members
                    .iter()
                    .all(|(node, (_, at))| known(node) || now >= *at + config.startup_timeout);
                let next = s
                    .members
                    .values()
                    .map(|(_, at)| *at + config.startup_timeout)
                    .filter(|at| *at > now)
                    .chain([give_up])
                    .min()
                    .unwrap_or(give_up);
                (configured && learnt, next.max(now).min(deadline))
            };
            if known {
                return true;
            }
            match tokio::time::timeout_at(wake, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return false,
                Err(_) if Instant::now() >= deadline => return false,
                Err(_) => {}
            }
        }
    }

    /// A ping round trip to every live peer begun after this call, shared
    /// with the safe lookups that wait meanwhile; `false` if it did not
    /// complete by `deadline`.
    ///
    /// Why shared: every instance's start runs a safe lookup, and one round
    /// of pings per lookup made the start-up of N names N rounds to every
    /// peer, on the heartbeat's own path. A round begun after a lookup asked
    /// proves for it what its own would have (every pg change a peer made
    /// before answering has reached us), so the lookups that asked while a
    /// round was out share the next one: at most two rounds per burst.
    async fn barrier(&self, deadline: Instant) -> bool {
        let rounds = &self.inner.barriers;
        let ticket = rounds.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let Ok(mut covered) = tokio::time::timeout_at(deadline, rounds.covered.lock()).await else {
            return false;
        };
        if *covered >= ticket {
            return true;
        }
        // Every ticket handed out so far asked before this round begins.
        let upto = rounds.asked.load(Ordering::SeqCst);
        let barrier = self
            .inner
            .heartbeat
            .call(
                HeartbeatMsg::Barrier,
                Some(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        tracing::debug!(ok = barrier.is_ok(), upto, "safe_lookup: barrier done");
        match barrier {
            Ok(ractor::rpc::CallResult::Success(())) => {
                *covered = upto;
                true
            }
            _ => false,
        }
    }

    fn add(
        &self,
        name: &str,
        instance: ActorCell,
        only_if_free: bool,
    ) -> BoxFuture<'_, Result<Registration, RegistryErr>> {
        let name = name.to_string();
        Box::pin(async move {
            if self.inner.config.client_only {
                return Err(RegistryErr::ClientOnly(self.inner.config.node.clone()));
            }
            if only_if_free {
                if let Some(holder) = self.lookup(&name) {
                    return Err(RegistryErr::AlreadyRegistered {
                        name,
                        holder: holder.node().clone(),
                        epoch: holder.epoch(),
                    });
                }
            }
            let in_view = self
                .members(&name)
                .iter()
                .map(|r| r.epoch())
                .max()
                .unwrap_or(0);
            let seen = self
                .shared()
                .lock()
                .newest
                .get(&name)
                .map_or(0, |i| i.epoch);
            let nodes: Vec<NodeName> = std::iter::once(self.inner.config.node.clone())
                .chain(self.inner.config.peers.iter().map(|p| p.node.clone()))
                .collect();
            let epoch =
                crate::registry::next_epoch(seen.max(in_view), &self.inner.config.node, &nodes);
            let info = RegistrationInfo {
                name: name.clone(),
                epoch,
                node: self.inner.config.node.clone(),
            };
            // On disk before anyone can see it: a restart never reuses it.
            self.shared()
                .saw(&info)
                .map_err(|e| RegistryErr::Backend(format!("could not keep the epoch: {e}")))?;
            let lingering = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let args = token::TokenArgs {
                instance: instance.clone(),
                info: info.clone(),
                registry: self.registry(),
                lingering: lingering.clone(),
            };
            let (token, _) = Actor::spawn(Some(token::actor_name(&info)), Token, args)
                .await
                .map_err(|e| RegistryErr::Backend(e.to_string()))?;
            {
                let mut s = self.shared().lock();
                s.local.insert(
                    token.get_id(),
                    (info.clone(), instance.clone(), token.get_cell()),
                );
                s.local_by_info.insert(info.clone(), token.get_id());
                s.linger_flags.insert(token.get_id(), lingering);
            }
            pg::join_scoped(SCOPE.to_string(), name, vec![token.get_cell()]);
            Ok(Registration::new(info, instance))
        })
    }
}

impl Registry for ClusterNode {
    fn node(&self) -> &NodeName {
        &self.inner.config.node
    }

    fn newest_seen(&self, name: &str) -> Option<RegistrationInfo> {
        self.shared().lock().newest.get(name).cloned()
    }

    fn note_seen(&self, info: &RegistrationInfo) {
        if let Err(e) = self.shared().saw(info) {
            // The next steal still goes above it while this process lives.
            tracing::warn!(error = %e, ?info, "could not keep an epoch learnt from a peer");
        }
    }

    fn max_frame_bytes(&self) -> Option<usize> {
        usize::try_from(self.inner.config.max_frame_bytes).ok()
    }

    fn settle_time(&self) -> Option<Duration> {
        Some(self.inner.config.settle_time())
    }

    fn members(&self, name: &str) -> Vec<Registration> {
        let cells = pg::get_scoped_members(&SCOPE.to_string(), &name.to_string());
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        let mut out: Vec<Registration> = cells
            .into_iter()
            .filter_map(|cell| {
                if let Some((info, instance, _)) = s.local.get(&cell.get_id()) {
                    return takes_messages(instance)
                        .then(|| Registration::new(info.clone(), instance.clone()));
                }
                let info = member_info(&cell, name)?;
                // A member of ours that is not in `local` is a leftover; one of
                // a silent peer is ignored until the peer is heard again.
                let live = info.node != *me && s.alive.contains(&info.node);
                (live && takes_messages(&cell)).then(|| Registration::new(info, cell))
            })
            .collect();
        out.sort_by(|a, b| a.info().rank().cmp(&b.info().rank()));
        out
    }

    fn safe_lookup<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<Registration>, RegistryErr>> {
        Box::pin(async move {
            let started = Instant::now();
            let deadline = started + timeout;
            let not_settled = || RegistryErr::NotSettled {
                waited: started.elapsed(),
            };
            // Again whenever the round trip taught us members (a peer tells
            // them before its pong): names may be held there.
            loop {
                let learnt = self.shared().lock().learnt;
                tracing::debug!("safe_lookup: waiting for peers");
                if !self.peers_known(deadline).await {
                    return Err(not_settled());
                }
                if !self.barrier(deadline).await {
                    return Err(not_settled());
                }
                if self.shared().lock().learnt == learnt {
                    break;
                }
            }
            // The watcher records the newest registrations (`newest_seen`)
            // from pg changes; let it catch up with what the barrier let in.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inner.watcher.call(WatcherMsg::Sync, Some(left)).await {
                Ok(ractor::rpc::CallResult::Success(())) => {}
                _ => return Err(not_settled()),
            }
            self.purge_dead(name);
            Ok(self.lookup(name))
        })
    }

    fn register<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        self.add(name, cell, true)
    }

    fn steal<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        self.add(name, cell, false)
    }

    fn unregister(&self, info: &RegistrationInfo, reason: LeaveReason) {
        let token = {
            let mut s = self.shared().lock();
            let id = s.local_by_info.remove(info);
            let token = id
                .and_then(|id| s.local.remove(&id))
                .map(|(_, _, token)| token);
            if let Some(token) = &token {
                s.leaving.insert(token.get_id(), reason.clone());
                if let Some(flag) = s.linger_flags.remove(&token.get_id()) {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    s.lingering.insert(token.get_id(), (token.clone(), flag));
                }
            }
            token
        };
        if let Some(token) = token {
            // A clean leave is told apart by a tombstone (see `token::tombstone`).
            if reason == LeaveReason::Unregistered {
                pg::join_scoped(
                    SCOPE.to_string(),
                    token::tombstone(&info.name),
                    vec![token.clone()],
                );
            }
            pg::leave_scoped(SCOPE.to_string(), info.name.clone(), vec![token.clone()]);
            // Out of the group at once (no new lookup finds it), but alive a
            // while longer: remote callers' reply ports hang off their proxies
            // of this token (see `token::Token`).
            ractor::time::exit_after(self.inner.config.token_linger, token);
        }
    }

    fn live_nodes(&self) -> BTreeSet<NodeName> {
        let mut live = self.shared().lock().alive.clone();
        live.insert(self.inner.config.node.clone());
        live
    }

    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared().events.subscribe()
    }

    fn watch(&self, name: &str) -> NameWatch {
        self.shared().watchers.watch(name)
    }

    fn lease_until(&self) -> Option<Instant> {
        ClusterNode::lease_until(self)
    }

    fn draining(&self) -> BTreeSet<NodeName> {
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        marks::draining(|n| n == me || s.alive.contains(n))
    }

    fn takeback_held(&self) -> bool {
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        marks::held(|n| n == me || s.alive.contains(n))
    }
}

impl crate::registry::Transport for ClusterNode {
    fn send_wire(
        &self,
        to: &Registration,
        msg: ractor::message::SerializedMessage,
    ) -> Result<(), Option<ractor::message::SerializedMessage>> {
        // `to` is our proxy of the registration's token: ractor_cluster
        // carries the message to its node, where the token hands it on.
        to.cell().send_serialized(msg).map_err(|e| match *e {
            ractor::MessagingErr::SendErr(msg) => Some(msg),
            _ => None,
        })
    }
}

impl ClusterNode {
    /// Unregisters our own registrations of `name` whose instance died
    /// (normally the instance does it as it stops; this covers a kill).
    /// Why one name: every instance's start runs a safe lookup, and a purge
    /// of every registration of the node made a start-up of N names cost
    /// N² checks; pg keeps our own members by group, so this reads only
    /// the few of `name`.
    fn purge_dead(&self, name: &str) {
        let tokens = pg::get_scoped_local_members(&SCOPE.to_string(), &name.to_string());
        let dead: Vec<RegistrationInfo> = {
            let s = self.shared().lock();
            tokens
                .iter()
                .filter_map(|token| s.local.get(&token.get_id()))
                .filter(|(_, instance, _)| !takes_messages(instance))
                .map(|(info, _, _)| info.clone())
                .collect()
        };
        for info in dead {
            self.unregister(&info, LeaveReason::InstanceDied);
        }
    }
}
