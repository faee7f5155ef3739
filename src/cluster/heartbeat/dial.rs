//! Peer (re)connection, the heartbeat actor's other task: dialing the
//! configured peers and learnt members we have no session with (one side
//! of each pair dials), telling a peer that came up the members we know
//! and learning the ones it tells, and, during start-up, probing a peer
//! that we wait to be dialed by, so that one nobody listens for is known
//! down.

use std::collections::{BTreeSet, HashMap};

use ractor::ActorRef;
use tokio::time::Instant;

use super::{HeartbeatMsg, State, ORDERLESS_AFTER};
use crate::cluster::PeerAddr;
use crate::NodeName;

impl State {
    /// Dials the configured peers we have no session with. Only the node
    /// whose name sorts first dials a pair: when both dial at once,
    /// ractor_cluster keeps one session and stops the other, and the calls in
    /// flight through the proxies of the stopped one lose their replies. A
    /// peer that never dials us (configured one way only) is dialed anyway
    /// once `ORDERLESS_AFTER` ticks have passed without a session.
    pub(super) fn dial_missing(&mut self, myself: &ActorRef<HeartbeatMsg>) {
        let connected: BTreeSet<NodeName> = self.peer_cells().into_iter().map(|(n, _)| n).collect();
        let me = self.args.config.node.clone();
        self.met.extend(connected.iter().cloned());
        let configured: BTreeSet<NodeName> = self
            .args
            .config
            .peers
            .iter()
            .map(|p| p.node.clone())
            .collect();
        let learnt: Vec<PeerAddr> = self
            .args
            .shared
            .lock()
            .members
            .iter()
            .filter(|(n, _)| !configured.contains(*n))
            .map(|(n, (addr, _))| PeerAddr::new(n.clone(), addr.clone()))
            .collect();
        let seeds = self
            .args
            .config
            .seeds
            .iter()
            .filter(|p| !configured.contains(&p.node));
        let targets: Vec<(PeerAddr, bool)> = self
            .args
            .config
            .peers
            .iter()
            .map(|p| (p.clone(), false))
            .chain(seeds.cloned().map(|p| (p, true)))
            .chain(learnt.into_iter().map(|p| (p, true)))
            .collect();
        for (peer, joining) in targets {
            if connected.contains(&peer.node) || peer.node == me {
                self.unconnected_ticks.remove(&peer.node);
                continue;
            }
            let waited = self.unconnected_ticks.entry(peer.node.clone()).or_default();
            *waited += 1;
            // A seed or a member learnt from others may not know us, so it
            // would never dial: we do, at once, until we have met it. A
            // configured peer follows the pair rule (it may dial us too).
            let dial_now = joining && !self.met.contains(&peer.node);
            if !dial_now && peer.node < me && *waited < ORDERLESS_AFTER {
                self.probe(myself, &peer.node, &peer.addr);
                continue;
            }
            // One dial at a time per peer; after a connect, give the session
            // the detection time to finish its handshake before dialing again.
            if self
                .dialing
                .get(&peer.node)
                .is_some_and(|until| Instant::now() < *until)
            {
                continue;
            }
            let window = self.args.config.handshake_timeout;
            self.dialing
                .insert(peer.node.clone(), Instant::now() + window * 2);
            let server = self.args.node_server.clone();
            let addr = peer.addr.clone();
            let node = peer.node.clone();
            let myself = myself.clone();
            let tls = self.args.config.tls.clone();
            tokio::spawn(async move {
                let dial = async {
                    match tls {
                        Some(tls) => {
                            ractor_cluster::client_connect_enc(
                                &server,
                                addr.as_str(),
                                tls.connector().clone(),
                                tls.server_name().clone(),
                            )
                            .await
                        }
                        None => ractor_cluster::client_connect(&server, addr.as_str()).await,
                    }
                };
                // Neither the TCP connect nor the TLS handshake has a timeout
                // of its own (a peer that never answers the handshake would
                // hold the dial forever).
                let (ok, refused) = match tokio::time::timeout(window, dial).await {
                    Ok(Ok(())) => (true, false),
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "peer not reachable yet");
                        let refused = matches!(
                            &e,
                            ractor_cluster::ClientConnectErr::Socket(io)
                                if io.kind() == std::io::ErrorKind::ConnectionRefused
                        );
                        (false, refused)
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "dial timed out");
                        (false, false)
                    }
                };
                let _ = myself.send_message(HeartbeatMsg::Dialed { node, ok, refused });
            });
        }
    }

    /// The members this node knows, itself included, for a peer that just
    /// came up (client-only nodes left out).
    pub(super) fn members(&self) -> Vec<(NodeName, String)> {
        let config = &self.args.config;
        let s = self.args.shared.lock();
        let mut out: HashMap<NodeName, String> = config
            .peers
            .iter()
            .chain(&config.seeds)
            .map(|p| (p.node.clone(), p.addr.clone()))
            .chain(s.members.iter().map(|(n, (a, _))| (n.clone(), a.clone())))
            .filter(|(n, _)| !s.clients.contains(n))
            .collect();
        if !config.client_only {
            out.insert(config.node.clone(), self.args.advertised.clone());
        }
        out.into_iter().collect()
    }

    /// A peer told us its members: the ones we did not know are learnt, and
    /// dialed at once.
    pub(super) fn learn(&mut self, members: Vec<(NodeName, String)>) {
        let config = &self.args.config;
        let now = Instant::now();
        let mut s = self.args.shared.lock();
        for (node, addr) in members {
            let known = node == config.node
                || config
                    .peers
                    .iter()
                    .chain(&config.seeds)
                    .any(|p| p.node == node)
                || s.members.contains_key(&node);
            if !known {
                tracing::info!(node = %config.node, peer = %node, %addr, "member learnt");
                s.members.insert(node, (addr, now));
                s.learnt += 1;
            }
        }
    }

    /// During start-up, finds out whether a peer that we wait to be dialed
    /// by listens at all: a refused connection means no process is there,
    /// so nothing can be registered there and the peer is known down; an
    /// accepted one (a live peer, or a hung one: the kernel accepts for it)
    /// leaves it unknown until it dials us or `startup_timeout` passes. The
    /// probe's connection closes at once without a byte sent.
    pub(super) fn probe(&mut self, myself: &ActorRef<HeartbeatMsg>, node: &NodeName, addr: &str) {
        let shared = &self.args.shared;
        if shared.started.elapsed() >= self.args.config.startup_timeout
            || self.probing.contains(node)
        {
            return;
        }
        {
            let s = shared.lock();
            if s.alive.contains(node) || s.known_down.contains(node) {
                return;
            }
        }
        self.probing.insert(node.clone());
        let (node, addr, myself) = (node.clone(), addr.to_string(), myself.clone());
        let timeout = self.args.config.handshake_timeout;
        tokio::spawn(async move {
            let refused = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
            );
            let _ = myself.send_message(HeartbeatMsg::Probed { node, refused });
        });
    }

    /// Nothing listens at `node`'s address: known down (not up, so no event).
    pub(super) fn refused(&mut self, node: &NodeName) {
        let mut s = self.args.shared.lock();
        // Nothing listens where a learnt member was: it left. Forget it (a
        // member that comes back tells us again when it joins).
        if s.members.remove(node).is_some() {
            tracing::info!(node = %self.args.config.node, peer = %node, "learnt member gone: forgotten");
        }
        if !s.alive.contains(node) && s.known_down.insert(node.clone()) {
            tracing::info!(node = %self.args.config.node, peer = %node, "peer not listening: known down");
            drop(s);
            self.args.shared.bump();
        }
    }
}
