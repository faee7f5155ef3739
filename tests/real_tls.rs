//! The real backend over mutual TLS: TLS nodes form a cluster and answer
//! calls; a node on plain TCP never joins.

mod support;

use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, ClusterTls};
use ractor_takeover::registry::{Registry, RegistryEvent};
use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc, TempDir};

/// This process (`client`) and nodes `a`, `b` and `d` use TLS with one
/// self-signed certificate; `c` has the right cookie but plain TCP and the
/// highest priority (`c > d > a > b`). The TLS nodes form a cluster: `a`
/// registers, `b` waits, the client's calls are answered. `c` never joins:
/// the control `d` (TLS, lower priority than `c`), started after `c`, joins
/// and takes the name over from `a`, and by the end `c` has had long enough
/// to dial and be dialed both ways; the client never saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_nodes_form_a_cluster_and_a_plain_node_never_joins() {
    support::init_tracing();
    let dir = TempDir::new("real_tls");
    let tls = ClusterTls::self_signed(&dir.0, &["localhost"]).unwrap();
    let ports = free_ports(5);
    let names = ["client", "a", "b", "c", "d"];
    let peers_of = |me: &str| mesh_peers(&names, &ports, me);
    let flags = |me: &str, with_tls: bool| {
        let i = names.iter().position(|n| *n == me).unwrap();
        let mut flags = vec![
            ("port", ports[i].to_string()),
            ("peers", peers_of(me)),
            ("cookie", "secret".to_string()),
            ("placement", "c > d > a > b".to_string()),
        ];
        if with_tls {
            flags.push(("tls-dir", dir.0.display().to_string()));
            flags.push(("tls-name", "localhost".to_string()));
        }
        flags
    };
    let peers = peers_of("client")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let me = ClusterNode::start(
        ClusterConfig::new("client", ports[0], "secret")
            .with_peers(peers)
            .with_tls(tls),
    )
    .await
    .unwrap();
    let mut node_events = me.subscribe();
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let _a = NodeProc::start("a", &flags("a", true), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b", true), &log);
    log.wait("b", &["Standby"]).await;
    wait_for("the client sees a as holder over TLS", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let reply = client
        .call(PowerMsg::Count, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.node, "a", "a call over TLS is answered");
    assert!(
        ["a", "b"]
            .iter()
            .all(|n| me.live_nodes().iter().any(|l| l.as_str() == *n)),
        "a and b are up: {:?}",
        me.live_nodes()
    );

    let _c = NodeProc::start("c", &flags("c", false), &log);
    // Alone behind plain TCP, c sees no peer and settles by itself.
    log.wait("c", &["READY"]).await;
    let _d = NodeProc::start("d", &flags("d", true), &log);
    log.wait("d", &["Registered", "Takeover", "from: \"a\""])
        .await;
    wait_for("the client sees d as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "d")
    })
    .await;
    let reply = client
        .call(PowerMsg::Count, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.node, "d");

    // By the time d (started after c) has joined and taken over, a and b
    // have dialed c (TLS to plain) many times, and c has dialed the client
    // and d (plain to TLS), every 200 ms: no session formed either way.
    assert!(
        !me.live_nodes().iter().any(|n| n.as_str() == "c"),
        "c never joined"
    );
    assert_eq!(log.count("a", &["StateSent"]), 1, "a handed over once");
    assert!(
        log.any("a", &["StateSent", "node: \"d\""]),
        "and to d, not c"
    );
    let mut saw_d = false;
    while let Ok(event) = node_events.try_recv() {
        if let RegistryEvent::NodeUp(node)
        | RegistryEvent::Registered(ractor_takeover::registry::RegistrationInfo {
            node, ..
        }) = &event
        {
            assert_ne!(node.as_str(), "c", "the client never saw c: {event:?}");
            saw_d |= node.as_str() == "d";
        }
    }
    assert!(saw_d, "the control d was seen");
    me.shutdown();
}
