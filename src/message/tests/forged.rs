//! Protocol messages forged into running instances (which only code inside
//! the crate can build): a state part that does not continue the ones
//! received, and stale, foreign or bad checkpoints. Each is refused with a
//! typed error or event, and the instance keeps serving.

use std::time::Duration;

use super::support::{
    client, init_tracing, on, spawn, start_takeover, wait_holder_everywhere, wait_phase,
    wait_until, Counter, CounterMsg, CounterState, Watcher, NAME, TIMEOUT,
};
use crate::codec::encode_postcard;
use crate::fake::FakeCluster;
use crate::{
    CheckpointPolicy, EventKind, HandoverMsg, NodeName, PartOf, Phase, RegistrationInfo, StartType,
    StateCodecErr, TakeoverConfig, TakeoverErr, TakeoverMessage,
};

/// A part that does not continue the parts received (forged here: a gap, a
/// changed total, a length over `max_state_bytes`) aborts the takeover with
/// a typed error; the old holder serves again with its state.
#[tokio::test]
async fn a_state_part_out_of_order_aborts_the_takeover() {
    init_tracing();
    let forged = [
        (1, 4, vec![0]),
        (0, 1 << 40, vec![0]),
        (0, 4, Vec::new()),
        (0, 2, vec![0, 0, 0]),
    ];
    for (offset, total, bytes) in forged {
        let cluster = FakeCluster::new(["a", "b"]);
        let config = TakeoverConfig::default()
            .with_state_part_bytes(1)
            .with_max_state_bytes(1 << 20);
        let a = spawn(&cluster, "a", &config).await;
        wait_phase(&a, Phase::Holder).await;
        let b = spawn(&cluster, "b", &config).await;
        wait_phase(&b, Phase::Standby).await;
        let cb = client(&cluster, "b");
        assert_eq!(cb.call(CounterMsg::Add(7), TIMEOUT).await.unwrap().total, 7);

        cluster.hold("a", "b");
        let pending = start_takeover(&b);
        wait_phase(&b, Phase::Pulling).await;
        let epoch = b
            .status(TIMEOUT)
            .await
            .ok()
            .and_then(|s| s.epoch)
            .expect("b's epoch");
        b.send_message(TakeoverMessage::<Counter>::Handover(
            HandoverMsg::StatePart {
                of: PartOf::StateReply {
                    requester_epoch: epoch,
                },
                offset,
                total,
                bytes,
            },
        ))
        .expect("b takes messages");
        let err = pending.await.unwrap().expect_err("the takeover must fail");
        assert!(
            matches!(
                err,
                TakeoverErr::State(StateCodecErr::Decode(_) | StateCodecErr::TooLarge { .. })
            ),
            "part at {offset} of {total}: {err}"
        );
        cluster.release("a", "b");
        wait_holder_everywhere(&cluster, "a").await;
        wait_phase(&a, Phase::Holder).await;
        assert_eq!(
            cb.call(CounterMsg::Get, TIMEOUT).await.unwrap(),
            CounterState { total: 7, calls: 1 },
            "part at {offset} of {total}: a serves again with its state"
        );
        a.stop(None);
        b.stop(None);
    }
}

/// A standby keeps only the newest checkpoint by (holder epoch, seq): an
/// older one, or one for another name, is refused and reported, and the one
/// it has stays; a checkpoint that does not decode is refused too.
#[tokio::test]
async fn stale_or_foreign_or_bad_checkpoints_are_refused() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default().with_checkpoints(CheckpointPolicy::every_calls(1));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;

    let holder = |epoch| RegistrationInfo {
        name: NAME.into(),
        epoch,
        node: "a".into(),
    };
    let send = |holder: RegistrationInfo, seq, bytes: Vec<u8>| {
        b.send_message(TakeoverMessage::<Counter>::Handover(
            HandoverMsg::Checkpoint {
                holder,
                seq,
                handled: seq,
                bytes,
            },
        ))
        .unwrap()
    };
    // As a holder sends it: with its (empty) window of answered calls.
    let good = crate::dedup::seal(
        encode_postcard(&CounterState {
            total: 42,
            calls: 1,
        })
        .unwrap(),
        &Default::default(),
    )
    .unwrap();
    send(holder(5), 3, good.clone());
    events
        .wait_for("stored", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { seq: 3, .. })
        })
        .await;
    send(holder(5), 2, good.clone());
    events
        .wait_for("older seq refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(holder(4), 9, good.clone());
    events
        .wait_for("older epoch refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(
        RegistrationInfo {
            name: "other".into(),
            ..holder(9)
        },
        1,
        good.clone(),
    );
    events
        .wait_for("other name refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(holder(6), 1, vec![0xff; 3]);
    events
        .wait_for("garbage refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;

    cluster.crash("a");
    wait_until("b sees a gone", || {
        let holder = cluster.holders(NAME)[&NodeName::new("b")].clone();
        async move { holder.is_none() }
    })
    .await;
    let report = b.failover("a", TIMEOUT).await.unwrap();
    let StartType::Failover {
        checkpoint: Some(cp),
        ..
    } = report.start
    else {
        panic!("expected the stored checkpoint: {report:?}");
    };
    assert_eq!(
        (cp.holder_epoch, cp.seq),
        (5, 3),
        "the newest good checkpoint stayed"
    );
    let state = client(&cluster, "b")
        .call(CounterMsg::Get, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(state.total, 42);
}
