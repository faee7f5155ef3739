//! The real backend keeps its epochs across a restart when it has a state
//! directory (`ClusterConfig::state_dir`), and forgets them without one.

mod support;

use ractor_takeover_testkit::procs::{free_ports, mesh_peers, Log, NodeProc, TempDir};

/// Two node processes, `a > b`, each run twice: `a` registers (epoch 1), is
/// SIGKILLed, `b` fails over (epoch 2, `b`'s first: every node has its own
/// epochs), and is SIGKILLed too. `b` restarts alone: nobody is left who saw
/// the name's holders. With a state directory it still knows them: it takes
/// the vacant name at its next epoch (4) and reports `Failover { from: b }`,
/// the holder whose state was lost. Without one (the control) it starts
/// over: `Normal` at epoch 2 again, the epoch its previous life already used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_epochs_with_a_state_dir() {
    support::init_tracing();
    let with_dir = run(true).await;
    assert!(
        with_dir.any(
            "b",
            &["Registered", "Failover", "from: \"b\"", "epoch=Some(4)"]
        ),
        "with a state dir, b reports the loss at a new epoch"
    );
    let without = run(false).await;
    assert!(
        without.any("b", &["Registered", "Normal", "epoch=Some(2)"]),
        "without a state dir, b has forgotten (the control)"
    );
}

/// The scenario; returns the nodes' output once `b`'s second life holds.
async fn run(state_dir: bool) -> Log {
    let ports = free_ports(2);
    let names = ["a", "b"];
    let dirs = [TempDir::new("epochs_a"), TempDir::new("epochs_b")];
    let flags = |i: usize| {
        let mut f = vec![
            ("port", ports[i].to_string()),
            ("peers", mesh_peers(&names, &ports, names[i])),
            ("placement", "a > b".to_string()),
        ];
        if state_dir {
            f.push(("state-dir", dirs[i].0.display().to_string()));
        }
        f
    };
    let log = Log::default();
    let a = NodeProc::start("a", &flags(0), &log);
    log.wait("a", &["Registered", "Normal", "epoch=Some(1)"])
        .await;
    let b = NodeProc::start("b", &flags(1), &log);
    log.wait("b", &["Standby"]).await;
    a.kill();
    log.wait(
        "b",
        &["Registered", "Failover", "from: \"a\"", "epoch=Some(2)"],
    )
    .await;
    b.kill();
    let _b = NodeProc::start("b", &flags(1), &log);
    let second_life = if state_dir {
        ["Registered", "Failover", "from: \"b\""]
    } else {
        ["Registered", "Normal", "epoch=Some(2)"]
    };
    log.wait("b", &second_life).await;
    log
}
