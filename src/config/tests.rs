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
