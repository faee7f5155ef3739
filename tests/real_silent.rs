//! One silent connection must not keep a node from being joined: with TLS,
//! ractor_cluster's listener ran each handshake inside its accept loop with
//! no timeout, so a connection that never spoke held every later session
//! to the node. The crate's own listener handshakes each connection in its
//! own task, bounded by `ClusterConfig::handshake_timeout`.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, ClusterTls};
use ractor_takeover::registry::Registry;
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc, TempDir};
use tokio::io::AsyncReadExt;

/// Node `b` (a process, TLS) holds a connection that never sends a byte,
/// opened before anyone else connects. Node `a` (this process, TLS) dials
/// `b` (`b` is not told about `a`, so it never dials back, and the session
/// can only come through `b`'s accept loop). `a` forms a session with `b`
/// while that connection is still open (with ractor_cluster's listener the
/// session waited until `b` gave up on the silent connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_does_not_hold_the_accept_loop() {
    support::init_tracing();
    let dir = TempDir::new("real_silent");
    let tls = ClusterTls::self_signed(&dir.0, &["localhost"]).unwrap();
    let ports = free_ports(2);
    let names = ["a", "b"];
    let log = Log::default();
    let b_flags = vec![
        ("port", ports[1].to_string()),
        ("cookie", "secret".to_string()),
        ("placement", "b".to_string()),
        ("tls-dir", dir.0.display().to_string()),
        ("tls-name", "localhost".to_string()),
    ];
    let _b = NodeProc::start("b", &b_flags, &log);
    log.wait("b", &["READY"]).await;

    tracing::info!("--- a silent connection to b");
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", ports[1]))
        .await
        .expect("connect to b");
    let closed = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn({
        let closed = closed.clone();
        async move {
            // Anything but data (b never sends any before a handshake) is
            // b closing the connection.
            let _ = silent.read(&mut [0u8; 1]).await;
            closed.store(true, Ordering::SeqCst);
        }
    });

    let peers = mesh_peers(&names, &ports, "a")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let a = ClusterNode::start(
        ClusterConfig::new("a", ports[0], "secret")
            .with_peers(peers)
            .with_tls(tls),
    )
    .await
    .unwrap();
    wait_for("a has a session with b", || {
        a.live_nodes().iter().any(|n| n.as_str() == "b")
    })
    .await;
    assert!(
        !closed.load(Ordering::SeqCst),
        "the session formed only after b closed the silent connection"
    );
    watch.abort();
    a.shutdown();
}
