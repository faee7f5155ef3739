//! The holder lease and the stall rule, as pure functions of what the
//! heartbeat recorded: no clock is read here, so each rule is tested alone.
//!
//! ```text
//!  holder a                       peer p
//!    | ping #7, sent at s  ------>  |  p hears a at r >= s: p cannot
//!    |                              |  declare a down before r + detection
//!    |  <------------- pong #7      |
//!    | lease(p) = s + (detection - margin) < r + detection
//! ```
//!
//! The lease of a node is the earliest of its peers' leases, over the peers
//! it considers up: each of them heard it at or after the send time of the
//! last ping it answered, so none can have declared it down (and let a
//! standby take its names) before that time plus the detection time. A pong
//! read late (it queued in the socket while this process was stopped)
//! proves nothing more than its ping's send time, so stale pongs give a
//! lease already run out. A peer declared down leaves the set at once: a
//! crashed standby costs the holder nothing (its session closes), a hung one
//! at most the margin plus one heartbeat interval.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::NodeName;

/// Until when this node holds its lease, from the send time of the latest
/// ping each peer answered (`answered`), over the peers considered up
/// (`alive`). `fence`: pongs to pings sent before it do not count (set when
/// this node stalled). `None`: no lease (a peer has not answered a ping sent
/// after the fence, or the lease ran out by `now`). A node with no peer up
/// has nobody who could take a name from it: it holds a lease from `now`.
pub(crate) fn lease_until(
    alive: &BTreeSet<NodeName>,
    answered: &HashMap<NodeName, Instant>,
    fence: Option<Instant>,
    lease: Duration,
    now: Instant,
) -> Option<Instant> {
    let mut earliest = now;
    let mut any = false;
    for peer in alive {
        let sent = *answered.get(peer)?;
        if fence.is_some_and(|f| sent < f) {
            return None;
        }
        earliest = if any { earliest.min(sent) } else { sent };
        any = true;
    }
    Some(earliest + lease).filter(|until| *until > now)
}

/// Whether a heartbeat tick that came `gap` after the previous one shows
/// that this process stalled (it was stopped, starved or swapped): its
/// timers fired far later than due. Half a detection time late (at least
/// one interval) is far: a node that late must not trust its own view of
/// who went silent, since its sockets hold news it has not read yet.
pub(crate) fn is_stall(gap: Duration, interval: Duration, detection: Duration) -> bool {
    gap > interval + (detection / 2).max(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> BTreeSet<NodeName> {
        names.iter().map(|n| NodeName::new(*n)).collect()
    }

    const LEASE: Duration = Duration::from_millis(750);

    /// The lease runs from the earliest send time among the peers up, and
    /// ends once that time plus the lease duration has passed.
    #[test]
    fn the_lease_counts_from_the_earliest_answered_send() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let answered = HashMap::from([
            (NodeName::new("b"), t0 + ms(100)),
            (NodeName::new("c"), t0 + ms(300)),
        ]);
        let alive = nodes(&["b", "c"]);
        let now = t0 + ms(400);
        assert_eq!(
            lease_until(&alive, &answered, None, LEASE, now),
            Some(t0 + ms(850))
        );
        // Run out: the pong may have arrived just now, it proves only the send.
        assert_eq!(
            lease_until(&alive, &answered, None, LEASE, t0 + ms(850)),
            None
        );
    }

    /// A peer that is up and never answered voids the lease; one declared
    /// down (out of `alive`) no longer counts at all.
    #[test]
    fn only_peers_up_count() {
        let t0 = Instant::now();
        let answered = HashMap::from([(NodeName::new("b"), t0)]);
        assert_eq!(
            lease_until(&nodes(&["b", "c"]), &answered, None, LEASE, t0),
            None,
            "c is up and never answered"
        );
        assert_eq!(
            lease_until(&nodes(&["b"]), &answered, None, LEASE, t0),
            Some(t0 + LEASE),
            "c went down: b alone decides"
        );
        assert_eq!(
            lease_until(&BTreeSet::new(), &HashMap::new(), None, LEASE, t0),
            Some(t0 + LEASE),
            "nobody up who could take over"
        );
    }

    /// After a stall only pongs to pings sent after it count, from every
    /// peer up, even a peer with nobody else up (a lone node stalled too).
    #[test]
    fn a_stall_voids_the_lease_until_every_peer_answered_again() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let fence = t0 + ms(100);
        let mut answered = HashMap::from([
            (NodeName::new("b"), t0 + ms(150)),
            (NodeName::new("c"), t0 + ms(50)),
        ]);
        let alive = nodes(&["b", "c"]);
        let now = t0 + ms(200);
        assert_eq!(
            lease_until(&alive, &answered, Some(fence), LEASE, now),
            None
        );
        answered.insert(NodeName::new("c"), t0 + ms(160));
        assert_eq!(
            lease_until(&alive, &answered, Some(fence), LEASE, now),
            Some(t0 + ms(150) + LEASE)
        );
    }

    /// With the defaults (200 ms x 5), a tick more than 700 ms after the
    /// previous one is a stall; ordinary jitter is not.
    #[test]
    fn a_late_tick_is_a_stall() {
        let ms = Duration::from_millis;
        let (interval, detection) = (ms(200), ms(1000));
        assert!(!is_stall(ms(200), interval, detection));
        assert!(!is_stall(ms(650), interval, detection));
        assert!(is_stall(ms(701), interval, detection));
        assert!(is_stall(ms(3000), interval, detection));
        // Few misses: at least two intervals late.
        assert!(!is_stall(ms(350), ms(200), ms(400)));
        assert!(is_stall(ms(401), ms(200), ms(400)));
    }
}
