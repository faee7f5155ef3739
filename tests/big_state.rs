//! States bigger than a frame, on the fake cluster with a frame cap on
//! every link: the takeover reply, the merge offer and the checkpoint all
//! travel in acknowledged parts under the cap, arrive intact, and close no
//! session (an oversized frame would: the peer would be seen down). And the
//! settings that cannot work are refused when the instance spawns.

mod support;

use std::time::Duration;

use ractor::{ActorProcessingErr, SpawnErr};
use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::{RegistrationInfo, RegistryEvent};
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use support::{init_tracing, on, wait_until, Watcher, TIMEOUT};
use tokio::sync::broadcast;

const NAME: &str = "blob";
/// The frame cap of every node: a state of [`BIG`] is sixteen times over it.
const CAP: usize = 64 << 10;
/// Parts under the cap, with room for their envelope.
const PART: usize = 16 << 10;
const BIG: usize = 1 << 20;

/// A state that can be made big: a ballast whose digest tells whether it
/// arrived intact, and the digest of the ballast a merge brought in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct BlobState {
    calls: u64,
    ballast: Vec<u8>,
    merged: Option<Digest>,
}

/// A ballast's length and checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Digest {
    len: usize,
    sum: u64,
}

fn digest(bytes: &[u8]) -> Digest {
    let sum = bytes.iter().enumerate().fold(0u64, |acc, (i, b)| {
        acc.wrapping_mul(31).wrapping_add(u64::from(*b) ^ i as u64)
    });
    Digest {
        len: bytes.len(),
        sum,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum BlobMsg {
    /// Replace the ballast with `len` bytes of the pattern `seed`.
    Grow {
        len: usize,
        seed: u8,
    },
    Get,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BlobReply {
    node: String,
    calls: u64,
    ballast: Digest,
    merged: Option<Digest>,
}

#[derive(Clone, Default)]
struct Blob;

impl TakeoverActor for Blob {
    type Msg = BlobMsg;
    type Reply = BlobReply;
    type State = BlobState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<BlobState, ActorProcessingErr> {
        Ok(BlobState::default())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: BlobMsg,
        state: &mut BlobState,
    ) -> Result<BlobReply, ActorProcessingErr> {
        state.calls += 1;
        if let BlobMsg::Grow { len, seed } = msg {
            state.ballast = (0..len)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
                .collect();
        }
        Ok(BlobReply {
            node: ctx.node().to_string(),
            calls: state.calls,
            ballast: digest(&state.ballast),
            merged: state.merged,
        })
    }

    async fn merge(
        &self,
        _: &TakeoverCtx<Self>,
        mine: &mut BlobState,
        theirs: BlobState,
        _: &RegistrationInfo,
    ) -> Result<MergeOutcome, ActorProcessingErr> {
        mine.calls += theirs.calls;
        mine.merged = Some(digest(&theirs.ballast));
        Ok(MergeOutcome::Merged)
    }
}

fn cluster(nodes: &[&str]) -> FakeCluster {
    let cluster = FakeCluster::new(nodes.iter().copied());
    cluster.set_frame_cap(Some(CAP));
    cluster
}

fn config() -> TakeoverConfig {
    TakeoverConfig::default().with_state_part_bytes(PART)
}

async fn spawn(cluster: &FakeCluster, node: &str, config: &TakeoverConfig) -> TakeoverRef<Blob> {
    TakeoverServer::new(NAME, Blob, cluster.registry(node), config.clone())
        .spawn(())
        .await
        .expect("spawn")
        .0
}

fn client(cluster: &FakeCluster, node: &str) -> GlobalClient<Blob> {
    GlobalClient::new(NAME, cluster.registry(node))
}

/// Panics if `events` saw a node go down: with every state in parts under
/// the cap, no frame closed a session.
fn assert_no_session_closed(what: &str, events: &mut broadcast::Receiver<RegistryEvent>) {
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev, RegistryEvent::NodeDown(_)),
            "{what}: a session closed ({ev:?}); a frame was over the cap"
        );
    }
}

/// A takeover of a state sixteen times the frame cap: it completes, the
/// state arrives intact, and no session closes.
#[tokio::test]
async fn a_takeover_moves_a_state_bigger_than_the_frame_cap() {
    init_tracing();
    let cluster = cluster(&["a", "b"]);
    let config = config();
    let a = spawn(&cluster, "a", &config).await;
    wait_phase_of(&a, Phase::Holder).await;
    let b = spawn(&cluster, "b", &config).await;
    wait_phase_of(&b, Phase::Standby).await;
    let grown = client(&cluster, "b")
        .call(BlobMsg::Grow { len: BIG, seed: 7 }, TIMEOUT)
        .await
        .expect("grow on a");
    assert_eq!(grown.ballast.len, BIG);
    let mut down = cluster.registry("b").subscribe();

    tracing::info!("--- b takes over a state of {BIG} bytes under a {CAP}-byte cap");
    let report = b.takeover(TIMEOUT).await.expect("the takeover completes");
    assert!(
        report.state_bytes > BIG,
        "{} bytes moved",
        report.state_bytes
    );
    let got = client(&cluster, "a")
        .call(BlobMsg::Get, TIMEOUT)
        .await
        .expect("b serves");
    assert_eq!(got.node, "b");
    assert_eq!(got.ballast, grown.ballast, "the state arrived intact");
    assert_eq!(got.calls, grown.calls + 1);
    assert_no_session_closed("takeover", &mut down);
}

/// A split brain healed with states sixteen times the frame cap on both
/// sides: the loser's state reaches the winner's merge hook intact (in
/// parts), and the one holder left carries both ballasts. (The winner is
/// `b`, whose state descends from its failover; `a` started `Normal`; then
/// placement moves the merged state back to `a`.)
#[tokio::test]
async fn a_merge_moves_a_state_bigger_than_the_frame_cap() {
    init_tracing();
    let cluster = cluster(&["a", "b"]);
    let config = config()
        .with_placement(Placement::parse("a > b").with_standby_grace(Duration::from_millis(200)))
        .with_conflict_grace(Duration::from_millis(200));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    let _b = spawn(&cluster, "b", &config).await;
    events
        .wait_for("b is standby", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Standby { .. })
        })
        .await;

    tracing::info!("--- split: b fails over, both grow a big state of their own");
    cluster.split("a", "b");
    events
        .wait_for("b fails over", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    let on_a = client(&cluster, "a")
        .call(BlobMsg::Grow { len: BIG, seed: 3 }, TIMEOUT)
        .await
        .expect("a serves");
    let on_b = client(&cluster, "b")
        .call(BlobMsg::Grow { len: BIG, seed: 5 }, TIMEOUT)
        .await
        .expect("b serves");
    assert_eq!((on_a.node.as_str(), on_b.node.as_str()), ("a", "b"));
    assert_ne!(on_a.ballast, on_b.ballast);

    tracing::info!("--- heal: the loser offers its state in parts");
    cluster.heal_all();
    let mut down = cluster.registry("a").subscribe();
    let healed = events
        .wait_for("the winner merges", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    let EventKind::SplitBrainHealed { outcome, bytes, .. } = &healed.kind else {
        unreachable!()
    };
    assert_eq!(*outcome, Some(MergeOutcome::Merged), "the offer was read");
    assert!(*bytes > BIG, "the whole offer came ({bytes} bytes)");
    // The default resolver keeps the newer lineage: `b`'s failover.
    assert_eq!(healed.node.as_str(), "b", "the failover holder wins");
    events
        .wait_for("the loser retires", |e| {
            matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    // The loser is a standby again, on the preferred node: placement takes
    // the name back to `a` by an ordinary takeover, merged state and all.
    events
        .wait_for("a takes the name back", |e| {
            on(e, "a")
                && matches!(
                    e.kind,
                    EventKind::Registered {
                        start: StartType::Takeover { .. }
                    }
                )
        })
        .await;
    wait_holder_everywhere(&cluster, "a").await;
    let got = client(&cluster, "a")
        .call(BlobMsg::Get, TIMEOUT)
        .await
        .expect("one holder serves");
    let mut both = [Some(got.ballast), got.merged];
    both.sort_by_key(|d| d.map(|d| d.sum));
    let mut want = [Some(on_a.ballast), Some(on_b.ballast)];
    want.sort_by_key(|d| d.map(|d| d.sum));
    assert_eq!(
        both, want,
        "the holder carries its own and the merged state"
    );
    assert_no_session_closed("merge", &mut down);
}

/// Warm standby with a checkpoint sixteen times the frame cap: it reaches
/// the standby in parts and is installed once complete; a crash of the
/// holder then fails over from it, intact. A later checkpoint that never
/// completes (its link held, then the holder crashed) is not installed:
/// the standby keeps the complete one it had.
#[tokio::test]
async fn a_checkpoint_bigger_than_the_frame_cap_reaches_the_standby() {
    init_tracing();
    let cluster = cluster(&["a", "b"]);
    let config = config()
        .with_placement(Placement::parse("a > b"))
        .with_checkpoints(CheckpointPolicy::every_calls(1));
    let mut events = Watcher::new(&config.events);
    let a = spawn(&cluster, "a", &config).await;
    wait_phase_of(&a, Phase::Holder).await;
    let b = spawn(&cluster, "b", &config).await;
    wait_phase_of(&b, Phase::Standby).await;
    let mut down = cluster.registry("b").subscribe();

    let first = client(&cluster, "a")
        .call(BlobMsg::Grow { len: BIG, seed: 9 }, TIMEOUT)
        .await
        .expect("grow");
    let stored = events
        .wait_for("b stores the big checkpoint", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { .. })
        })
        .await;
    assert_no_session_closed("checkpoint", &mut down);
    let EventKind::CheckpointStored { seq, .. } = stored.kind else {
        unreachable!()
    };

    tracing::info!("--- a newer checkpoint that never completes");
    cluster.hold("a", "b");
    let second = client(&cluster, "a")
        .call(BlobMsg::Grow { len: BIG, seed: 11 }, TIMEOUT)
        .await
        .expect("grow again");
    assert_ne!(second.ballast, first.ballast);
    cluster.crash("a");
    cluster.release("a", "b");
    let start = events.registered("b").await;
    let StartType::Failover {
        checkpoint: Some(info),
        ..
    } = start
    else {
        panic!("b fails over from a checkpoint: {start:?}");
    };
    assert_eq!(
        info.seq, seq,
        "the complete checkpoint, not the partial one"
    );
    let got = client(&cluster, "b")
        .call(BlobMsg::Get, TIMEOUT)
        .await
        .expect("b serves");
    assert_eq!(got.node, "b");
    assert_eq!(got.ballast, first.ballast, "the checkpoint arrived intact");
}

/// Settings that cannot work fail the spawn with a typed error, before the
/// behaviour's `init` runs: a part size of 0, one that (with its envelope)
/// does not fit under the registry's frame cap, a `max_state_bytes` below
/// the part size, a zero pull timeout, quorum without a placement, a
/// checkpoint policy that never sends one.
#[tokio::test]
async fn settings_that_cannot_work_are_refused_at_spawn() {
    init_tracing();
    let cluster = cluster(&["a"]);
    let refused = [
        (
            TakeoverConfig::default().with_state_part_bytes(0),
            ConfigErr::ZeroPartSize,
        ),
        (
            TakeoverConfig::default().with_state_part_bytes(CAP),
            ConfigErr::PartOverFrame {
                part_bytes: CAP,
                max_frame_bytes: CAP as u64,
            },
        ),
        (
            config().with_max_state_bytes(PART - 1),
            ConfigErr::MaxStateBelowPart {
                max_state: PART - 1,
                part: PART,
            },
        ),
        (
            config().with_pull_timeout(Duration::ZERO),
            ConfigErr::ZeroTimeout("pull_timeout"),
        ),
        (
            config().with_quorum(true),
            ConfigErr::QuorumWithoutPlacement,
        ),
        (
            config().with_checkpoints({
                // Public fields: a policy emptied by hand sends nothing.
                let mut never = CheckpointPolicy::every_calls(1);
                never.every_calls = None;
                never
            }),
            ConfigErr::CheckpointNever,
        ),
    ];
    for (config, want) in refused {
        let err = TakeoverServer::new(NAME, Blob, cluster.registry("a"), config)
            .spawn(())
            .await
            .expect_err("the spawn is refused");
        let SpawnErr::StartupFailed(inner) = &err else {
            panic!("{want}: not a startup failure: {err}");
        };
        assert_eq!(inner.downcast_ref::<ConfigErr>(), Some(&want), "{err}");
    }
    // The default settings fit ractor_cluster's default 16 MiB cap.
    cluster.set_frame_cap(Some(16 << 20));
    spawn(&cluster, "a", &TakeoverConfig::default()).await;
}

async fn wait_phase_of(instance: &TakeoverRef<Blob>, want: Phase) {
    wait_until(&format!("phase {want:?}"), || async {
        instance.status(TIMEOUT).await.ok().map(|s| s.phase) == Some(want)
    })
    .await
}

async fn wait_holder_everywhere(cluster: &FakeCluster, node: &str) {
    wait_until(&format!("every view resolves the holder to {node}"), || {
        let holders = cluster.holders(NAME);
        async move {
            holders
                .values()
                .all(|h| h.as_ref().is_some_and(|h| h.node.as_str() == node))
        }
    })
    .await
}
