//! The failure detector's rule, as a pure function of when a peer's
//! heartbeats arrived: no clock is read here, so it is tested alone.
//!
//! Phi accrual (Hayashibara et al., as Akka and Cassandra run it): from the
//! mean and spread of a peer's recent heartbeat intervals, `phi(t)` is
//! minus log10 of the chance that a heartbeat is still to come after a
//! silence of `t`. A peer is down once
//!
//! ```text
//!   silence >= floor && phi(silence) >= threshold      (adaptive part)
//!   || silence >= ceiling                              (a dead peer is seen at last)
//! ```
//!
//! The floor is the detection time (`interval x misses`), the one the
//! holder lease is counted from: whatever the heartbeats' spread, no peer
//! is declared down before it, so a lease of `floor - margin` stays
//! shorter than the earliest down. The fixed detector is the first rule
//! with phi left out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How many recent intervals the spread is taken from.
const WINDOW: usize = 100;

/// The rule a peer is judged by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    /// No down before this much silence (the detection time).
    pub(crate) floor: Duration,
    /// Down after this much silence, whatever phi says.
    pub(crate) ceiling: Duration,
    /// `None`: the fixed detector (down at the floor).
    pub(crate) phi: Option<f64>,
    /// The smallest spread assumed, so that a run of perfectly regular
    /// heartbeats does not make one late beat look impossible.
    pub(crate) min_std_dev: Duration,
}

/// One peer's recent heartbeats.
#[derive(Clone, Debug, Default)]
pub(crate) struct Arrivals {
    last: Option<Instant>,
    intervals: VecDeque<Duration>,
}

impl Arrivals {
    /// A heartbeat of the peer's own rhythm (its ping) arrived at `now`.
    /// An interval longer than `ceiling` is not learnt: it was a down, a
    /// reconnect or a stall, not the peer's rhythm.
    pub(crate) fn beat(&mut self, now: Instant, ceiling: Duration) {
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            if gap <= ceiling {
                if self.intervals.len() == WINDOW {
                    self.intervals.pop_front();
                }
                self.intervals.push_back(gap);
            }
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// Any sign of life (a pong too) at `now`: restarts the silence only.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// A fresh detection window from `now` (after this node stalled): the
    /// silence restarts, the rhythm learnt so far stays.
    pub(crate) fn refresh(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// Silence since the last sign of life (`None`: never heard).
    pub(crate) fn silence(&self, now: Instant) -> Option<Duration> {
        self.last.map(|l| now.saturating_duration_since(l))
    }

    /// Phi after a silence of `t`, with the spread at least `min_std_dev`;
    /// with fewer than two intervals learnt the mean is `expected` (the
    /// heartbeat interval).
    pub(crate) fn phi(&self, t: Duration, expected: Duration, min_std_dev: Duration) -> f64 {
        let n = self.intervals.len();
        let (mean, var) = if n < 2 {
            (expected.as_secs_f64(), 0.0)
        } else {
            let mean = self
                .intervals
                .iter()
                .map(Duration::as_secs_f64)
                .sum::<f64>()
                / n as f64;
            let var = self
                .intervals
                .iter()
                .map(|d| (d.as_secs_f64() - mean).powi(2))
                .sum::<f64>()
                / n as f64;
            (mean, var)
        };
        let std = var.sqrt().max(min_std_dev.as_secs_f64());
        phi(t.as_secs_f64(), mean, std)
    }

    /// Whether the peer is down at `now` under `rule` (`expected`: the
    /// heartbeat interval). Never heard: not judged (it is not up either).
    pub(crate) fn is_down(&self, rule: &Rule, expected: Duration, now: Instant) -> bool {
        let Some(silence) = self.silence(now) else {
            return false;
        };
        if silence >= rule.ceiling {
            return true;
        }
        if silence < rule.floor {
            return false;
        }
        match rule.phi {
            None => true,
            Some(threshold) => self.phi(silence, expected, rule.min_std_dev) >= threshold,
        }
    }
}

/// Akka's approximation of the normal distribution's tail (max error
/// about 1e-4 on the CDF), in log10: `-log10(P(X > t))`.
fn phi(t: f64, mean: f64, std: f64) -> f64 {
    let y = (t - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if t > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn rule(phi: Option<f64>) -> Rule {
        Rule {
            floor: MS(1000),
            ceiling: MS(2000),
            phi,
            min_std_dev: MS(50),
        }
    }

    /// Regular beats every 200 ms: `beats` of them from `t0`.
    fn regular(t0: Instant, beats: u64, every: Duration) -> Arrivals {
        let mut a = Arrivals::default();
        for i in 0..beats {
            a.beat(t0 + every * i as u32, MS(2000));
        }
        a
    }

    /// Phi grows with the silence, and faster when the beats were regular.
    #[test]
    fn phi_grows_with_the_silence_and_shrinks_with_the_spread() {
        let t0 = Instant::now();
        let a = regular(t0, 50, MS(200));
        let short = a.phi(MS(200), MS(200), MS(50));
        let long = a.phi(MS(600), MS(200), MS(50));
        assert!(short < 1.0, "an on-time beat is likely: {short}");
        assert!(long > 8.0, "8 spreads late is not: {long}");
        let mut jittery = Arrivals::default();
        let mut at = t0;
        for i in 0..50u64 {
            at += if i % 2 == 0 { MS(50) } else { MS(550) };
            jittery.beat(at, MS(2000));
        }
        let j = jittery.phi(MS(600), MS(200), MS(50));
        assert!(
            j < 2.0,
            "the same silence after jittery beats is likely: {j}"
        );
    }

    /// Whatever phi says, nobody is down before the floor (the lease counts
    /// from it) and everybody is down at the ceiling.
    #[test]
    fn never_down_before_the_floor_always_at_the_ceiling() {
        let t0 = Instant::now();
        let a = regular(t0, 50, MS(200));
        let last = t0 + MS(200) * 49;
        for phi in [Some(8.0), Some(0.001), None] {
            let r = rule(phi);
            assert!(!a.is_down(&r, MS(200), last + MS(999)), "{phi:?}");
            assert!(a.is_down(&r, MS(200), last + MS(2000)), "{phi:?}");
        }
        // Regular beats: phi is far past 8 at the floor.
        assert!(a.is_down(&rule(Some(8.0)), MS(200), last + MS(1000)));
    }

    /// After jittery beats (a loaded peer, a busy network) the adaptive
    /// detector waits past the floor, where the fixed one is already done.
    #[test]
    fn a_jittery_peer_gets_more_time_than_the_floor() {
        let t0 = Instant::now();
        let mut a = Arrivals::default();
        let mut at = t0;
        for i in 0..60u64 {
            at += if i % 3 == 0 { MS(900) } else { MS(100) };
            a.beat(at, MS(2000));
        }
        assert!(a.is_down(&rule(None), MS(200), at + MS(1100)));
        assert!(!a.is_down(&rule(Some(8.0)), MS(200), at + MS(1100)));
        assert!(a.is_down(&rule(Some(8.0)), MS(200), at + MS(2000)));
    }

    /// A gap longer than the ceiling (a down, a stall) is not learnt as the
    /// peer's rhythm; a peer never heard is not judged; a refresh restarts
    /// the silence.
    #[test]
    fn gaps_are_not_learnt_and_refresh_restarts_the_silence() {
        let t0 = Instant::now();
        let mut a = regular(t0, 10, MS(200));
        let before = a.phi(MS(600), MS(200), MS(50));
        a.beat(t0 + MS(200) * 9 + MS(10_000), MS(2000));
        assert_eq!(a.phi(MS(600), MS(200), MS(50)), before);
        assert!(!Arrivals::default().is_down(&rule(None), MS(200), t0 + MS(10_000)));
        let late = t0 + MS(60_000);
        assert!(a.is_down(&rule(None), MS(200), late));
        a.refresh(late);
        assert!(!a.is_down(&rule(None), MS(200), late + MS(999)));
    }
}
