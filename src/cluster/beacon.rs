//! The beacon: the failure detector's own path, apart from everything the
//! node's runtime does.
//!
//! A thread of its own (not a task of the node's tokio runtime) with a UDP
//! socket of its own, on the node's port number: every `heartbeat_interval`
//! it pings every peer it knows an address of, answers their pings, judges
//! silence ([`super::detector`]) and tells a stall of its own. Why apart:
//! on ractor_cluster's session a heartbeat waits behind everything queued
//! ahead of it on the TCP stream (a state part of megabytes) and behind the
//! session actor's backlog (a storm of pg changes), and on the runtime it
//! waits for a worker that a CPU-bound handler may hold for seconds. Seen
//! before: with 100 names on 5 nodes, an overloaded peer declared a live
//! node down. ractor_cluster keeps one session per pair of nodes and no
//! priority among its messages, so the separate path is a socket of our
//! own. The OS schedules this thread on time whatever the runtime does;
//! only a stop of the whole process (SIGSTOP, a VM pause) stops it, and
//! that is what the stall rule is for.
//!
//! Each datagram carries an HMAC-SHA256 tag keyed by the cluster cookie, so
//! a stranger cannot make a dead node look alive or forge an answer (a
//! replayed ping can at most keep a dead peer up a while; see
//! `docs/operating.md`). The session's own pings go on as before (heard on
//! either path is heard): safe lookups need their ordering, and a cluster
//! whose UDP is filtered still works, as before this path existed.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::heartbeat::{self, HeartbeatMsg};
use super::{lease, ClusterConfig, Shared};
use crate::NodeName;

const TAG: usize = 32;
const MAX_DATAGRAM: usize = 1024;

/// One heartbeat datagram (before its tag).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(crate) struct Beat {
    pub(crate) pong: bool,
    pub(crate) from: NodeName,
    pub(crate) to: NodeName,
    /// The sender's incarnation (a random number per process start).
    pub(crate) inc: u64,
    /// The ping's round (a pong echoes it).
    pub(crate) seq: u64,
    /// In a pong: how many times the sender declared the pinger down.
    pub(crate) downs: u64,
    /// The sender is a client-only node.
    pub(crate) client: bool,
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`. sha2 is what
/// ractor_cluster's own cookie handshake hashes with, so it adds nothing to
/// the build; the construction is the RFC's, a few lines.
fn hmac(key: &[u8], msg: &[u8]) -> [u8; TAG] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..TAG].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `beat` in wire form: postcard, then its tag.
pub(crate) fn seal(cookie: &str, beat: &Beat) -> Option<Vec<u8>> {
    let mut bytes = postcard::to_allocvec(beat).ok()?;
    let tag = hmac(cookie.as_bytes(), &bytes);
    bytes.extend_from_slice(&tag);
    Some(bytes)
}

/// The beat in `bytes`, if its tag is right.
pub(crate) fn open(cookie: &str, bytes: &[u8]) -> Option<Beat> {
    let split = bytes.len().checked_sub(TAG)?;
    let (body, tag) = bytes.split_at(split);
    let want = hmac(cookie.as_bytes(), body);
    // Constant time: a forger learns nothing from how fast it is refused.
    if want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// A random number per process start (std's hasher keys are drawn from
/// the OS): tells a restarted peer from the old one.
pub(crate) fn incarnation() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Binds the beacon's socket: UDP on the node's port, on every address as
/// the node's TCP listener.
pub(crate) fn bind(port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(("::", port)).or_else(|_| UdpSocket::bind(("0.0.0.0", port)))
}

/// Stops the beacon's thread (within one interval) when dropped.
pub(crate) struct Beacon {
    stop: Arc<AtomicBool>,
}

impl Drop for Beacon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Beacon {
    /// Starts the thread on `socket`.
    pub(crate) fn spawn(
        socket: UdpSocket,
        config: ClusterConfig,
        shared: Arc<Shared>,
        heartbeat: ActorRef<HeartbeatMsg>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = Run {
            socket,
            config,
            shared,
            heartbeat,
            stop: stop.clone(),
            addrs: HashMap::new(),
            pinged: HashMap::new(),
        };
        std::thread::Builder::new()
            .name(format!("ractor_takeover-beacon-{}", run.config.node))
            .spawn(move || run.run())?;
        Ok(Self { stop })
    }

    /// Stops the thread.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Run {
    socket: UdpSocket,
    config: ClusterConfig,
    shared: Arc<Shared>,
    heartbeat: ActorRef<HeartbeatMsg>,
    stop: Arc<AtomicBool>,
    /// Where each peer's beacon is: configured, or learnt from its pings
    /// (a client that dialed us without being configured here).
    addrs: HashMap<NodeName, SocketAddr>,
    /// The newest ping seen per peer, `(incarnation, round)`: an older one
    /// (a replay) is ignored.
    pinged: HashMap<NodeName, (u64, u64)>,
}

impl Run {
    fn run(&mut self) {
        let v6 = self.socket.local_addr().is_ok_and(|a| a.is_ipv6());
        for peer in self.config.peers.iter().chain(&self.config.seeds) {
            // Resolved once: a peer's address is its identity's, and a
            // name that does not resolve yet is learnt from its pings.
            if let Some(addr) = peer.addr.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                self.addrs.insert(peer.node.clone(), fit(addr, v6));
            }
        }
        let interval = self.config.heartbeat_interval;
        let mut last_tick = Instant::now();
        let mut next_tick = last_tick;
        let mut buf = [0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_tick {
                let gap = now.duration_since(last_tick);
                if lease::is_stall(gap, interval, self.config.detection_time()) {
                    heartbeat::stalled(&self.shared, &self.config, gap, now);
                }
                last_tick = now;
                next_tick = now + interval;
                self.ping_all();
                self.judge(now);
            }
            let wait = next_tick
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let _ = self.socket.set_read_timeout(Some(wait));
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) => self.receive(&buf[..n], src),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // An ICMP "port unreachable" from a send to a dead peer
                // shows up here on Linux: nothing to do but go on.
                Err(e) => tracing::trace!(error = %e, "beacon receive"),
            }
        }
    }

    fn send(&self, to: SocketAddr, beat: &Beat) {
        if let Some(bytes) = seal(&self.config.cookie, beat) {
            let _ = self.socket.send_to(&bytes, to);
        }
    }

    fn ping_all(&mut self) {
        // Members learnt from peers: their beacons are at their addresses.
        let learnt: Vec<(NodeName, String)> = {
            let s = self.shared.lock();
            s.members
                .iter()
                .filter(|(n, _)| !self.addrs.contains_key(*n))
                .map(|(n, (a, _))| (n.clone(), a.clone()))
                .collect()
        };
        let v6 = self.socket.local_addr().is_ok_and(|a| a.is_ipv6());
        for (node, addr) in learnt {
            // Literal addresses only: a name lookup here could block this
            // thread past its tick (a member known by host name is learnt
            // from its own pings instead).
            if let Ok(addr) = addr.parse::<SocketAddr>() {
                self.addrs.insert(node, fit(addr, v6));
            }
        }
        let seq = heartbeat::next_round(&self.shared, &self.config);
        for (node, addr) in &self.addrs {
            self.ping(node, *addr, seq);
        }
    }

    fn ping(&self, node: &NodeName, addr: SocketAddr, seq: u64) {
        let beat = Beat {
            pong: false,
            from: self.config.node.clone(),
            to: node.clone(),
            inc: self.shared.incarnation,
            seq,
            downs: 0,
            client: self.config.client_only,
        };
        self.send(addr, &beat);
    }

    /// Declares down every peer up whose silence the detector rules a down.
    fn judge(&self, now: Instant) {
        let rule = heartbeat::rule(&self.config);
        let interval = self.config.heartbeat_interval;
        let silent: Vec<NodeName> = {
            let s = self.shared.lock();
            s.alive
                .iter()
                .filter(|n| {
                    s.arrivals
                        .get(*n)
                        .is_none_or(|a| a.is_down(&rule, interval, now))
                })
                .cloned()
                .collect()
        };
        for node in silent {
            if heartbeat::declare_down(&self.shared, &self.config, &node, "missed heartbeats") {
                let _ = self.heartbeat.send_message(HeartbeatMsg::PeerDown(node));
            }
        }
    }

    fn receive(&mut self, bytes: &[u8], src: SocketAddr) {
        let Some(beat) = open(&self.config.cookie, bytes) else {
            tracing::debug!(%src, "beacon: a datagram without a valid tag, ignored");
            return;
        };
        if beat.to != self.config.node || beat.from == self.config.node {
            return;
        }
        if beat.pong {
            heartbeat::heard(&self.shared, &self.config, &beat.from, false, beat.client);
            heartbeat::answered(
                &self.shared,
                &beat.from,
                beat.seq,
                beat.inc,
                beat.downs,
                false,
            );
            return;
        }
        let newest = self
            .pinged
            .entry(beat.from.clone())
            .or_insert((beat.inc, 0));
        if newest.0 == beat.inc && beat.seq <= newest.1 {
            return;
        }
        *newest = (beat.inc, beat.seq);
        self.addrs.insert(beat.from.clone(), src);
        let came_up = heartbeat::heard(&self.shared, &self.config, &beat.from, true, beat.client);
        let downs = self
            .shared
            .lock()
            .downs
            .get(&beat.from)
            .copied()
            .unwrap_or(0);
        let pong = Beat {
            pong: true,
            from: self.config.node.clone(),
            to: beat.from.clone(),
            inc: self.shared.incarnation,
            seq: beat.seq,
            downs,
            client: self.config.client_only,
        };
        self.send(src, &pong);
        if came_up {
            // A peer up voids the lease until it answers: ask it now, not
            // at the next tick.
            let seq = heartbeat::next_round(&self.shared, &self.config);
            self.ping(&beat.from, src, seq);
        }
    }
}

/// `addr` as the socket can send to it (an IPv4 address, mapped, on an
/// IPv6 socket).
fn fit(addr: SocketAddr, v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if v6 => SocketAddr::V6(std::net::SocketAddrV6::new(
            a.ip().to_ipv6_mapped(),
            a.port(),
            0,
            0,
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Beat {
        Beat {
            pong: true,
            from: NodeName::new("a"),
            to: NodeName::new("b"),
            inc: 7,
            seq: 42,
            downs: 1,
            client: false,
        }
    }

    /// A beat opens under its cookie only; a changed byte or another
    /// cookie is refused.
    #[test]
    fn beats_open_only_under_their_cookie_and_unchanged() {
        let bytes = seal("cookie", &beat()).unwrap();
        assert_eq!(open("cookie", &bytes), Some(beat()));
        assert_eq!(open("other", &bytes), None);
        let mut flipped = bytes.clone();
        flipped[3] ^= 1;
        assert_eq!(open("cookie", &flipped), None);
        assert_eq!(open("cookie", &bytes[..10]), None);
    }

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_matches_rfc_4231() {
        let tag = hmac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
