use std::time::Duration;

use super::*;
use crate::{ConfigErr, TakeoverConfig};

/// The defaults work; a margin that leaves no lease, a zero dial timeout,
/// and state parts that do not fit in a frame are refused with typed errors.
#[test]
fn settings_that_cannot_work_are_refused() {
    let config = ClusterConfig::new("a", 4000, "c");
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.effective_lease_margin(), Duration::from_millis(250));
    assert_eq!(config.lease_duration(), Some(Duration::from_millis(750)));
    assert_eq!(config.check_takeover(&TakeoverConfig::default()), Ok(()));

    let no_lease = config.clone().with_lease_margin(Duration::from_secs(1));
    assert_eq!(
        no_lease.validate(),
        Err(ConfigErr::NoLease {
            detection: Duration::from_secs(1),
            margin: Duration::from_secs(1),
        })
    );
    let no_dial = config.clone().with_handshake_timeout(Duration::ZERO);
    assert_eq!(
        no_dial.validate(),
        Err(ConfigErr::ZeroTimeout("handshake_timeout"))
    );
    let small_frames = config.clone().with_max_frame_bytes(1 << 20);
    let big_parts = TakeoverConfig::default().with_state_part_bytes(1 << 20);
    assert_eq!(
        small_frames.check_takeover(&big_parts),
        Err(ConfigErr::PartOverFrame {
            part_bytes: 1 << 20,
            max_frame_bytes: 1 << 20,
        })
    );
    let fitting = TakeoverConfig::default().with_state_part_bytes(512 << 10);
    assert_eq!(small_frames.check_takeover(&fitting), Ok(()));
}

/// A node refuses to start with settings that cannot work.
#[tokio::test]
async fn start_refuses_a_margin_that_leaves_no_lease() {
    let config = ClusterConfig::new("a", 0, "c")
        .with_heartbeat(Duration::from_millis(100), 2)
        .with_lease_margin(Duration::from_millis(300));
    match ClusterNode::start(config).await {
        Err(ClusterErr::Config(ConfigErr::NoLease { .. })) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started with no lease"),
    }
}

/// The defaults are the ones each field's rustdoc states (keep them in step).
#[test]
fn defaults_are_the_documented_ones() {
    let c = ClusterConfig::new("a", 4000, "c");
    assert_eq!(c.hostname, "127.0.0.1");
    assert!(c.peers.is_empty());
    assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(c.heartbeat_misses, 5);
    assert_eq!(c.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(DEFAULT_MAX_FRAME_BYTES, 16 << 20);
    assert_eq!(c.token_linger, Duration::from_secs(30));
    assert!(c.tls.is_none());
    assert_eq!(c.state_dir, None);
    assert_eq!(c.startup_timeout, Duration::from_secs(5));
    assert_eq!(c.handshake_timeout, Duration::from_secs(2));
    assert_eq!(c.lease_margin, None);
}
