//! A node whose TCP port is free but whose UDP port of the same number is
//! taken (where its failure detector listens, and where peers send it
//! heartbeats) refuses to start with a typed error that says so, instead
//! of a bare "address in use" that reads as the TCP port's.
//!
//! One scenario per test binary: `ractor::pg` is a process static (the
//! node here never gets as far as spawning anything, but the rule holds).

mod support;

use ractor_takeover::cluster::{ClusterConfig, ClusterErr, ClusterNode};
use ractor_takeover_testkit::procs::free_ports;

/// Another socket holds UDP on the port: `ClusterNode::start` fails with
/// `ClusterErr::BeaconPort` naming the port, and the TCP port is free
/// again afterwards (nothing was left listening).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_udp_port_is_a_typed_error_at_start() {
    support::init_tracing();
    let port = free_ports(1)[0];
    let squatter = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("the UDP port is free");
    let err = ClusterNode::start(ClusterConfig::new("a", port, "udp-port-test"))
        .await
        .expect_err("the UDP port is taken");
    println!("start with UDP {port} taken: {err}");
    match &err {
        ClusterErr::BeaconPort { port: p, source } => {
            assert_eq!(*p, port);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected BeaconPort, got {other:?}"),
    }
    assert!(err.to_string().contains("UDP port"), "{err}");
    drop(squatter);
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the node released its TCP port");
}
