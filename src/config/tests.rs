use super::*;

/// The checks `validate` makes, each alone: what passes at the edge and
/// what is refused just past it.
#[test]
fn validate_refuses_what_cannot_work_and_nothing_else() {
    let part = 1 << 10;
    let ok = TakeoverConfig::default()
        .with_state_part_bytes(part)
        .with_max_state_bytes(part);
    assert_eq!(ok.validate(None), Ok(()));
    assert_eq!(
        ok.validate(Some(part + TakeoverConfig::PART_ENVELOPE_BYTES)),
        Ok(())
    );
    assert_eq!(
        ok.validate(Some(part + TakeoverConfig::PART_ENVELOPE_BYTES - 1)),
        Err(ConfigErr::PartOverFrame {
            part_bytes: part,
            max_frame_bytes: (part + TakeoverConfig::PART_ENVELOPE_BYTES - 1) as u64,
        })
    );
    assert_eq!(
        ok.clone().with_state_part_bytes(0).validate(None),
        Err(ConfigErr::ZeroPartSize)
    );
    assert_eq!(
        ok.clone().with_max_state_bytes(part - 1).validate(None),
        Err(ConfigErr::MaxStateBelowPart {
            max_state: part - 1,
            part,
        })
    );
    assert_eq!(
        ok.clone().with_pull_timeout(Duration::ZERO).validate(None),
        Err(ConfigErr::ZeroTimeout("pull_timeout"))
    );
    assert_eq!(
        ok.clone()
            .with_checkpoints(CheckpointPolicy::every(Duration::ZERO))
            .validate(None),
        Err(ConfigErr::ZeroTimeout("the checkpoint interval"))
    );
    // The defaults fit ractor_cluster's default cap.
    assert_eq!(TakeoverConfig::default().validate(Some(16 << 20)), Ok(()));
}

/// The defaults are the ones each field's rustdoc states (keep them in step).
#[test]
fn defaults_are_the_documented_ones() {
    let c = TakeoverConfig::default();
    assert_eq!(c.buffer_capacity, 10_000);
    assert_eq!(c.pull_timeout, Duration::from_secs(5));
    assert_eq!(c.whereis_timeout, Duration::from_secs(10));
    assert_eq!(c.max_state_bytes, 1 << 30);
    assert_eq!(c.state_part_bytes, 4 << 20);
    assert_eq!(c.placement, None);
    assert_eq!(format!("{:?}", c.resolver), "NewerLineage");
    assert_eq!(c.conflict_grace, Duration::from_secs(1));
    assert_eq!(c.checkpoint, None);
    assert!(!c.quorum);
    assert_eq!(TakeoverConfig::PART_ENVELOPE_BYTES, 16 << 10);
    assert_eq!(
        CheckpointPolicy::every_calls(0).and_every(Duration::from_secs(2)),
        CheckpointPolicy {
            every_calls: Some(1),
            every: Some(Duration::from_secs(2)),
        }
    );
}

/// Quorum needs a placement to count a majority of; warm standby needs a
/// policy that sends something. Either alone is refused; with what it needs
/// it passes.
#[test]
fn validate_refuses_a_quorum_without_placement_and_a_policy_that_never_fires() {
    let ok = TakeoverConfig::default();
    assert_eq!(
        ok.clone().with_quorum(true).validate(None),
        Err(ConfigErr::QuorumWithoutPlacement)
    );
    assert_eq!(
        ok.clone()
            .with_quorum(true)
            .with_placement(crate::Placement::parse("a > b > c"))
            .validate(None),
        Ok(())
    );
    let never = CheckpointPolicy {
        every_calls: None,
        every: None,
    };
    assert_eq!(
        ok.clone().with_checkpoints(never).validate(None),
        Err(ConfigErr::CheckpointNever)
    );
    assert_eq!(
        ok.clone()
            .with_checkpoints(CheckpointPolicy::every_calls(1))
            .validate(None),
        Ok(())
    );
}

/// A `whereis_timeout` below the backend's settle time is refused, one at
/// it passes, and a backend that knows no bound checks nothing.
#[test]
fn validate_whereis_refuses_a_lookup_shorter_than_the_backend_can_need() {
    let settle = Duration::from_millis(6_200);
    let at = TakeoverConfig::default().with_whereis_timeout(settle);
    assert_eq!(at.validate_whereis(Some(settle)), Ok(()));
    let short = TakeoverConfig::default().with_whereis_timeout(settle - Duration::from_millis(1));
    assert_eq!(
        short.validate_whereis(Some(settle)),
        Err(ConfigErr::WhereisBelowSettle {
            whereis: settle - Duration::from_millis(1),
            settle,
        })
    );
    assert_eq!(short.validate_whereis(None), Ok(()));
    // The default fits a real node's default settle time.
    assert_eq!(
        TakeoverConfig::default().validate_whereis(Some(settle)),
        Ok(())
    );
}

/// A window of answered calls that keeps none would refuse every retried
/// call: refused when built, and one entry is enough to pass.
#[test]
fn validate_refuses_a_dedup_window_of_zero() {
    let ok = TakeoverConfig::default();
    assert_eq!(ok.dedup_window, 4096);
    assert_eq!(
        ok.clone().with_dedup_window(0).validate(None),
        Err(ConfigErr::ZeroDedupWindow)
    );
    assert_eq!(ok.with_dedup_window(1).validate(None), Ok(()));
}

/// A move limit of 0 (no placement takeover could ever start) is refused;
/// clones share one limit, `with_move_limit` makes a fresh one.
#[test]
fn a_zero_move_limit_is_refused_and_clones_share_the_limit() {
    let ok = TakeoverConfig::default();
    assert_eq!(ok.move_limit.limit(), 32);
    assert_eq!(
        ok.clone().with_move_limit(0).validate(None),
        Err(ConfigErr::ZeroMoveLimit)
    );
    assert_eq!(ok.clone().with_move_limit(1).validate(None), Ok(()));
    let one = ok.with_move_limit(1);
    let clone = one.clone();
    let permit = one.move_limit.try_acquire().expect("a free permit");
    assert_eq!(clone.move_limit.running(), 1);
    assert!(
        clone.move_limit.try_acquire().is_none(),
        "the clone shares it"
    );
    drop(permit);
    assert!(clone.move_limit.try_acquire().is_some());
}
