//! The runtime's proof of life, for the failure detector.
//!
//! The detector ([`super::beacon`]) runs on a thread of its own so that a
//! busy runtime does not make the node look dead. The other side of that:
//! a runtime that is *wedged* (every worker blocked by a task that never
//! yields, or a deadlock) would be answered for forever, and no standby
//! would ever take the node's names. So a task on the runtime ticks a
//! clock ([`RuntimeClock`]) every [`ClusterConfig::runtime_tick`](super::ClusterConfig),
//! and the detector speaks only while the last tick is recent:
//!
//! ```text
//!   runtime task:  tick  tick  tick  (wedged ..................)  tick
//!   detector:      ping/pong ....... | silent: no ping, no pong | fence, ping/pong
//!                                    ^ runtime_timeout after the last tick
//! ```
//!
//! While silent it still listens (a peer's ping keeps that peer up), so it
//! declares no live peer down: a node with no peer up would hold a lease
//! from nobody, and answer in its old epoch when its runtime came back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// When the runtime last ran the ticker, as microseconds since `started`.
pub(crate) struct RuntimeClock {
    started: Instant,
    last: AtomicU64,
}

impl RuntimeClock {
    /// A clock ticked at `started`.
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            last: AtomicU64::new(0),
        }
    }

    /// The runtime ran at `now`.
    pub(crate) fn tick(&self, now: Instant) {
        let micros = u64::try_from(now.saturating_duration_since(self.started).as_micros())
            .unwrap_or(u64::MAX);
        self.last.fetch_max(micros, Ordering::Relaxed);
    }

    /// How long the runtime has not ticked, at `now`.
    pub(crate) fn silence(&self, now: Instant) -> Duration {
        let last = self.started + Duration::from_micros(self.last.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }
}

/// Whether a runtime silent for `silence` is wedged, with the bound
/// `timeout` ([`super::ClusterConfig::runtime_timeout`]).
pub(crate) fn is_wedged(silence: Duration, timeout: Duration) -> bool {
    silence > timeout
}

/// Ticks `shared.runtime` from a task on the current runtime every
/// `period`, until `stop` is set.
pub(crate) fn spawn_ticker(shared: Arc<super::Shared>, period: Duration, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        // A tick missed while the runtime was wedged is not owed: one
        // tick when it runs again proves it runs.
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            every.tick().await;
            shared.runtime.tick(Instant::now());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The silence counts from the newest tick; a tick from the past (a
    /// racing tick read late) never moves the clock back.
    #[test]
    fn the_silence_counts_from_the_newest_tick() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let clock = RuntimeClock::new(t0);
        assert_eq!(clock.silence(t0 + ms(300)), ms(300));
        clock.tick(t0 + ms(200));
        clock.tick(t0 + ms(100));
        assert_eq!(clock.silence(t0 + ms(300)), ms(100));
        assert!(!is_wedged(ms(5000), ms(5000)));
        assert!(is_wedged(ms(5001), ms(5000)));
    }
}
