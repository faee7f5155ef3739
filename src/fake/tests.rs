//! Unit tests of the fake cluster: propagation, epochs, safe lookups under held
//! links, partitions and heals, crashes and restarts, per-link FIFO order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::fake::FakeCluster;
use crate::registry::Transport;
use crate::{LeaveReason, NodeName, Registration, Registry, RegistryErr, RegistryEvent};

/// Generous: these deadlines catch hangs, they do not measure speed.
const TIMEOUT: Duration = Duration::from_secs(20);

/// An actor that does nothing: something for a registration to point at.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// A fresh idle actor's cell.
async fn idle() -> ActorCell {
    let (actor, _) = Actor::spawn(None, Idle, ())
        .await
        .expect("spawn idle actor");
    actor.get_cell()
}

/// An actor that records the wire messages it gets (postcard strings), as a
/// remote instance does.
struct Recorder;

struct Rec(String);

impl ractor::Message for Rec {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(SerializedMessage::Cast {
            variant: "rec".into(),
            args: postcard::to_allocvec(&self.0).map_err(|_| BoxedDowncastErr)?,
            metadata: None,
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Cast { args, .. } => postcard::from_bytes(&args)
                .map(Rec)
                .map_err(|_| BoxedDowncastErr),
            _ => Err(BoxedDowncastErr),
        }
    }
}

impl Actor for Recorder {
    type Msg = Rec;
    type State = Arc<Mutex<Vec<String>>>;
    type Arguments = Arc<Mutex<Vec<String>>>;

    async fn pre_start(
        &self,
        _: ActorRef<Rec>,
        log: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(log)
    }

    async fn handle(
        &self,
        _: ActorRef<Rec>,
        msg: Rec,
        log: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        log.lock().unwrap().push(msg.0);
        Ok(())
    }
}

/// A recorder on `node`, as a registration other nodes can send to.
async fn recorder(node: &str, log: Arc<Mutex<Vec<String>>>) -> Registration {
    let (actor, _) = Actor::spawn(None, Recorder, log)
        .await
        .expect("spawn recorder");
    Registration::new(
        crate::RegistrationInfo {
            name: "rec".into(),
            epoch: 1,
            node: NodeName::new(node),
        },
        actor.get_cell(),
    )
}

/// `text` in its wire form.
fn wire(text: String) -> SerializedMessage {
    use ractor::Message;
    Rec(text).serialize().expect("serializes")
}

/// Polls `cond` until it holds; panics with `what` after [`TIMEOUT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until every up node's view resolves `name` to `expected` (by node
/// and epoch), or to no holder when `expected` is `None`.
async fn wait_holders(cluster: &FakeCluster, name: &str, expected: Option<(&str, u64)>) {
    wait_until(
        &format!("every view resolves {name:?} to {expected:?}"),
        || {
            cluster
                .holders(name)
                .values()
                .all(|h| h.as_ref().map(|h| (h.node.as_str(), h.epoch)) == expected)
        },
    )
    .await
}

/// Waits until nothing is queued on any link between `nodes`.
async fn wait_links_empty(cluster: &FakeCluster, nodes: &[&str]) {
    wait_until("every link is empty", || {
        nodes.iter().all(|from| {
            nodes
                .iter()
                .all(|to| from == to || cluster.queued(from, to) == 0)
        })
    })
    .await
}

/// The holder of `name` in `node`'s view, as `(node, epoch)`.
fn holder_in(cluster: &FakeCluster, node: &str, name: &str) -> Option<(String, u64)> {
    cluster
        .node(node)
        .lookup(name)
        .map(|r| (r.node().as_str().to_string(), r.epoch()))
}

/// Reads `rx` until an event `pred` accepts; panics after [`TIMEOUT`].
async fn wait_event(
    rx: &mut broadcast::Receiver<RegistryEvent>,
    what: &str,
    pred: impl Fn(&RegistryEvent) -> bool,
) -> RegistryEvent {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event channel closed while waiting for {what}: {e}"),
            Err(_) => panic!("timed out waiting for event: {what}"),
        }
    }
}

/// A registration made on one node reaches every view; each registration or
/// steal of a name gets a higher epoch; `register` refuses a held name with
/// `AlreadyRegistered`; a steal becomes the holder in every view; `unregister`
/// removes a registration from every view.
#[tokio::test]
async fn registration_propagates_and_epochs_increase() {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (a, b, c) = (cluster.node("a"), cluster.node("b"), cluster.node("c"));

    let first = a.register("x", idle().await).await.expect("register on a");
    assert_eq!(first.epoch(), 1);
    assert_eq!(first.node().as_str(), "a");
    wait_holders(&cluster, "x", Some(("a", 1))).await;

    // Epochs are per name: another name starts afresh, at c's first epoch
    // (each node has its own epochs: `next_epoch`).
    let other = c
        .register("y", idle().await)
        .await
        .expect("register y on c");
    assert_eq!(other.epoch(), 3);
    wait_holders(&cluster, "y", Some(("c", 3))).await;

    // Registering a held name fails, on the holder's node and elsewhere.
    for node in [&a, &b, &c] {
        match node.register("x", idle().await).await {
            Err(RegistryErr::AlreadyRegistered {
                name,
                holder,
                epoch,
            }) => {
                assert_eq!(name, "x");
                assert_eq!(holder.as_str(), "a");
                assert_eq!(epoch, 1);
            }
            other => panic!("register of a held name on {}: {other:?}", node.id()),
        }
    }

    // A steal gets a higher epoch and holds the name in every view; the old
    // registration stays (lower rank) until its owner removes it.
    let stolen = b.steal("x", idle().await).await.expect("steal on b");
    assert_eq!(stolen.epoch(), 2);
    assert_eq!(stolen.node().as_str(), "b");
    wait_holders(&cluster, "x", Some(("b", 2))).await;
    wait_until("every view has both registrations of x", || {
        [&a, &b, &c].iter().all(|n| {
            n.members("x")
                .iter()
                .map(|r| r.info().clone())
                .collect::<Vec<_>>()
                == vec![first.info().clone(), stolen.info().clone()]
        })
    })
    .await;

    // A second steal goes higher again.
    let again = c.steal("x", idle().await).await.expect("steal on c");
    assert_eq!(again.epoch(), 3);
    wait_holders(&cluster, "x", Some(("c", 3))).await;

    // Unregistering removes each registration from every view.
    c.unregister(again.info(), LeaveReason::Unregistered);
    wait_holders(&cluster, "x", Some(("b", 2))).await;
    b.unregister(stolen.info(), LeaveReason::Unregistered);
    wait_holders(&cluster, "x", Some(("a", 1))).await;
    a.unregister(first.info(), LeaveReason::Unregistered);
    wait_holders(&cluster, "x", None).await;
    wait_links_empty(&cluster, &["a", "b", "c"]).await;
    for node in [&a, &b, &c] {
        assert!(node.members("x").is_empty(), "{} still has x", node.id());
    }
    // The other name was untouched.
    wait_holders(&cluster, "y", Some(("c", 3))).await;
}

/// A new registration's epoch is above every epoch the node has seen for that
/// name (registry.rs: "each registration or steal gets one higher than any the
/// node has seen"), even once those registrations have left its view: the
/// epoch is a fencing token, so it must never go back.
#[tokio::test]
async fn epoch_never_goes_back_after_registrations_leave() {
    let cluster = FakeCluster::new(["a", "b"]);
    let (a, b) = (cluster.node("a"), cluster.node("b"));

    // Unregistered: a registers at 1, b steals at 2, both leave.
    let first = a.register("x", idle().await).await.expect("register on a");
    wait_holders(&cluster, "x", Some(("a", 1))).await;
    let stolen = b.steal("x", idle().await).await.expect("steal on b");
    assert_eq!(stolen.epoch(), 2);
    wait_holders(&cluster, "x", Some(("b", 2))).await;
    b.unregister(stolen.info(), LeaveReason::Unregistered);
    a.unregister(first.info(), LeaveReason::Unregistered);
    wait_holders(&cluster, "x", None).await;
    let next = a.register("x", idle().await).await.expect("register again");
    assert!(
        next.epoch() > 2,
        "a has seen epoch 2 of x, yet registered it again at epoch {}",
        next.epoch()
    );

    // Crashed: b steals above a's registration, then b's node crashes; a's
    // failover registration must not go below the crashed holder's epoch.
    a.unregister(next.info(), LeaveReason::Unregistered);
    let held = b
        .register("z", idle().await)
        .await
        .expect("register z on b");
    wait_holders(&cluster, "z", Some(("b", held.epoch()))).await;
    let held = b.steal("z", idle().await).await.expect("steal z on b");
    wait_holders(&cluster, "z", Some(("b", held.epoch()))).await;
    cluster.crash("b");
    wait_holders(&cluster, "z", None).await;
    let failover = a.register("z", idle().await).await.expect("failover on a");
    assert!(
        failover.epoch() > held.epoch(),
        "a has seen epoch {} of z, yet registered it at epoch {}",
        held.epoch(),
        failover.epoch()
    );
}

/// `safe_lookup` does not answer while a registry change towards its node is
/// held on a link, and answers with the new holder once the link is released;
/// if the timeout passes while the change is held it fails with `NotSettled`
/// after exactly the timeout.
#[tokio::test(start_paused = true)]
async fn safe_lookup_waits_for_held_changes() {
    let cluster = FakeCluster::new(["a", "b"]);
    let b = cluster.node("b");

    // The registration towards b is held: b's view is stale, and a safe lookup
    // there waits.
    cluster.hold("a", "b");
    let reg = cluster
        .node("a")
        .register("x", idle().await)
        .await
        .expect("register on a");
    let lookup = tokio::spawn({
        let b = b.clone();
        async move { b.safe_lookup("x", Duration::from_secs(3600)).await }
    });
    // Under the paused clock this lets every task run until all are idle.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!lookup.is_finished(), "safe_lookup answered while held");
    assert!(b.lookup("x").is_none(), "the held change reached b");
    assert_eq!(cluster.queued("a", "b"), 1);

    cluster.release("a", "b");
    let found: Option<Registration> = tokio::time::timeout(TIMEOUT, lookup)
        .await
        .expect("safe_lookup answers after release")
        .expect("lookup task")
        .expect("safe_lookup");
    let found = found.expect("a holder after release");
    assert_eq!(found.info(), reg.info());
    assert_eq!(cluster.queued("a", "b"), 0);

    // Held again for the whole timeout: NotSettled, after exactly the timeout.
    cluster.hold("a", "b");
    let a = cluster.node("a");
    a.unregister(reg.info(), LeaveReason::Unregistered);
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    match b.safe_lookup("x", timeout).await {
        Err(RegistryErr::NotSettled { waited }) => assert_eq!(waited, timeout),
        other => panic!("safe_lookup while held past the timeout: {other:?}"),
    }
    assert_eq!(started.elapsed(), timeout);
    // The stale view still has the old holder.
    assert_eq!(holder_in(&cluster, "b", "x"), Some(("a".into(), 1)));

    cluster.release("a", "b");
    let after = b
        .safe_lookup("x", Duration::from_secs(3600))
        .await
        .expect("safe_lookup after release");
    assert!(after.is_none(), "the removal reached b: {after:?}");
}

/// A partition drops what crosses it (registry changes and messages, both ways) while the other side keeps its stale view and
/// nodes outside the partition are unaffected; a heal re-syncs both views: a
/// registration made during the partition appears on the other side, and one
/// removed during it disappears.
#[tokio::test]
async fn partition_drops_and_heal_resyncs() {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let all = ["a", "b", "c"];

    let old = b.register("old", idle().await).await.expect("register old");
    wait_holders(&cluster, "old", Some(("b", 2))).await;

    cluster.partition("a", "b");

    // A registration on a during the partition: b never sees it, c does.
    a.register("new", idle().await).await.expect("register new");
    wait_links_empty(&cluster, &all).await;
    assert_eq!(holder_in(&cluster, "a", "new"), Some(("a".into(), 1)));
    assert_eq!(holder_in(&cluster, "b", "new"), None);
    assert_eq!(holder_in(&cluster, "c", "new"), Some(("a".into(), 1)));

    // A removal on b during the partition: a keeps the stale registration.
    b.unregister(old.info(), LeaveReason::Unregistered);
    wait_links_empty(&cluster, &all).await;
    assert_eq!(holder_in(&cluster, "a", "old"), Some(("b".into(), 2)));
    assert_eq!(holder_in(&cluster, "b", "old"), None);
    assert_eq!(holder_in(&cluster, "c", "old"), None);

    // Messages across the partition are dropped both ways; to c they arrive.
    let delivered: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut at = std::collections::HashMap::new();
    for n in all {
        at.insert(n, recorder(n, delivered.clone()).await);
    }
    let send = |from: &str, to: &str| {
        cluster
            .node(from)
            .send_wire(&at[to], wire(format!("{from}->{to}")))
            .expect("sent");
    };
    send("a", "b");
    send("b", "a");
    send("a", "c");
    wait_links_empty(&cluster, &all).await;
    wait_until("the message to c arrives", || {
        delivered.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(*delivered.lock().unwrap(), vec!["a->c".to_string()]);
    assert_eq!(cluster.queued("a", "b"), 0);
    assert_eq!(cluster.queued("b", "a"), 0);

    // Heal: both views converge.
    cluster.heal("a", "b");
    wait_holders(&cluster, "new", Some(("a", 1))).await;
    wait_holders(&cluster, "old", None).await;
    wait_links_empty(&cluster, &all).await;

    // The link works again.
    send("a", "b");
    wait_until("a delivery from a to b after the heal", || {
        delivered.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(delivered.lock().unwrap()[1], "a->b");
}

/// A crash kills the instances attached to the node, drops its registrations
/// from the peers' views (they see `Unregistered { reason: NodeDown }` and
/// `NodeDown`), and a restart brings the node back with an empty view that
/// then syncs the peers' registrations.
#[tokio::test]
async fn crash_kills_attached_and_restart_resyncs() {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (a, b) = (cluster.node("a"), cluster.node("b"));

    let instance = idle().await;
    let x = a.register("x", instance.clone()).await.expect("register x");
    a.attach(&instance);
    let y = b.register("y", idle().await).await.expect("register y");
    wait_holders(&cluster, "x", Some(("a", 1))).await;
    wait_holders(&cluster, "y", Some(("b", 2))).await;

    let mut b_events = b.subscribe();
    cluster.crash("a");
    assert!(!cluster.is_up("a"));

    wait_until("the attached instance on a stops", || {
        instance.get_status() == ActorStatus::Stopped
    })
    .await;
    wait_event(&mut b_events, "x leaves b's view as NodeDown", |ev| {
        matches!(ev, RegistryEvent::Unregistered { info, reason }
            if info == x.info() && *reason == LeaveReason::NodeDown)
    })
    .await;
    wait_event(
        &mut b_events,
        "b sees a go down",
        |ev| matches!(ev, RegistryEvent::NodeDown(n) if n.as_str() == "a"),
    )
    .await;
    wait_holders(&cluster, "x", None).await;
    assert!(!cluster.holders("x").contains_key(&NodeName::new("a")));

    // A crashed node refuses registry operations.
    match a.register("x", idle().await).await {
        Err(RegistryErr::NodeDown(n)) => assert_eq!(n.as_str(), "a"),
        other => panic!("register on a crashed node: {other:?}"),
    }

    // Restart, with the peers' syncs held: a comes back empty.
    cluster.hold("b", "a");
    cluster.hold("c", "a");
    cluster.restart("a");
    assert!(cluster.is_up("a"));
    assert!(a.members("x").is_empty());
    assert!(a.members("y").is_empty());

    // Then it syncs the peers' registrations, and the peers see it come up.
    cluster.release("b", "a");
    cluster.release("c", "a");
    wait_event(
        &mut b_events,
        "b sees a come up",
        |ev| matches!(ev, RegistryEvent::NodeUp(n) if n.as_str() == "a"),
    )
    .await;
    let synced = a
        .safe_lookup("y", TIMEOUT)
        .await
        .expect("safe_lookup on the restarted node")
        .expect("y synced to a");
    assert_eq!(synced.info(), y.info());
    wait_holders(&cluster, "y", Some(("b", 2))).await;
    wait_holders(&cluster, "x", None).await;
}

/// A node that restarts without a state directory takes the same epoch
/// again; the instance of its previous life, still stopping, leaves by
/// `unregister_instance` and must not remove the new instance's
/// registration of the same name, epoch and node (fault seed 1818106105).
/// Its own entry, while it has one, it removes.
#[tokio::test]
async fn an_old_instance_leaves_without_removing_its_successor() {
    let cluster = FakeCluster::new(["a", "b"]);
    let a = cluster.node("a");
    let old = a.register("x", idle().await).await.expect("register x");
    cluster.crash("a");
    cluster.restart("a");
    let new = a
        .register("x", idle().await)
        .await
        .expect("register x again");
    assert_eq!(
        new.info(),
        old.info(),
        "a forgot its epoch: the same (epoch, node) again"
    );
    wait_holders(&cluster, "x", Some(("a", new.epoch()))).await;

    a.unregister_instance(&old, LeaveReason::InstanceDied);
    let kept = a
        .resolve(new.info())
        .expect("the new registration stays in a's view");
    assert_eq!(kept.cell().get_id(), new.cell().get_id());
    wait_links_empty(&cluster, &["a", "b"]).await;
    assert_eq!(
        holder_in(&cluster, "b", "x"),
        Some(("a".to_string(), new.epoch())),
        "b keeps it too"
    );

    a.unregister_instance(&new, LeaveReason::Unregistered);
    assert!(
        a.resolve(new.info()).is_none(),
        "its own instance removes it"
    );
    wait_holders(&cluster, "x", None).await;
}

/// Messages on one link arrive in the order they were sent, even
/// when the link's delay shrinks between sends (a later, less delayed item
/// waits behind an earlier one, like on a TCP stream).
#[tokio::test(start_paused = true)]
async fn delayed_deliveries_keep_fifo_order() {
    let cluster = FakeCluster::new(["a", "b"]);
    let a = cluster.node("a");
    let arrived: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_b = recorder("b", arrived.clone()).await;

    for i in 0..100u32 {
        // Delays go down and up again: 0..=90 ms in a sawtooth.
        let delay = Duration::from_millis(u64::from((100 - i) % 10) * 10);
        cluster.set_delay("a", "b", delay);
        a.send_wire(&on_b, wire(i.to_string())).expect("sent");
    }
    assert_eq!(cluster.queued("a", "b"), 100);

    wait_until("all 100 deliveries arrive", || {
        arrived.lock().unwrap().len() == 100
    })
    .await;
    assert_eq!(
        *arrived.lock().unwrap(),
        (0..100).map(|i: u32| i.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(cluster.queued("a", "b"), 0);
}

mod faults;
mod wire;
