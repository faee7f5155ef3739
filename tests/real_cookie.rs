//! The real backend refuses a node with the wrong cookie.

mod support;

use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode};
use ractor_takeover::registry::{Registry, RegistryEvent};
use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};

/// A node with the wrong cookie never joins and never gets the name, even
/// with the highest priority (`d > c > a > b`). The control: a node with the
/// right cookie and lower priority (`c`), started after `d`, joins and takes
/// the name over from `a`; by then `d` has had longer to join, and did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_cookie_never_joins() {
    support::init_tracing();
    let ports = free_ports(5);
    let names = ["client", "a", "b", "c", "d"];
    let peers_of = |me: &str| mesh_peers(&names, &ports, me);
    let flags = |me: &str, cookie: &str| {
        let i = names.iter().position(|n| *n == me).unwrap();
        vec![
            ("port", ports[i].to_string()),
            ("peers", peers_of(me)),
            ("cookie", cookie.to_string()),
            ("placement", "d > c > a > b".to_string()),
        ]
    };
    let peers = peers_of("client")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let me = ClusterNode::start(ClusterConfig::new("client", ports[0], "right").with_peers(peers))
        .await
        .unwrap();
    let mut node_events = me.subscribe();
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let _a = NodeProc::start("a", &flags("a", "right"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b", "right"), &log);
    log.wait("b", &["Standby"]).await;

    let _d = NodeProc::start("d", &flags("d", "wrong"), &log);
    // Alone behind its cookie, d sees no peer and settles by itself.
    log.wait("d", &["READY"]).await;
    let _c = NodeProc::start("c", &flags("c", "right"), &log);
    log.wait("c", &["Registered", "Takeover", "from: \"a\""])
        .await;
    wait_for("the client sees c as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "c")
    })
    .await;

    let reply = client
        .call(PowerMsg::Count, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.node, "c");
    assert!(
        !me.live_nodes().iter().any(|n| n.as_str() == "d"),
        "d never joined"
    );
    assert_eq!(log.count("a", &["StateSent"]), 1, "a handed over once");
    assert!(
        log.any("a", &["StateSent", "node: \"c\""]),
        "and to c, not d"
    );
    while let Ok(event) = node_events.try_recv() {
        if let RegistryEvent::NodeUp(node)
        | RegistryEvent::Registered(ractor_takeover::registry::RegistrationInfo {
            node, ..
        }) = &event
        {
            assert_ne!(node.as_str(), "d", "the client never saw d: {event:?}");
        }
    }
    me.shutdown();
}
