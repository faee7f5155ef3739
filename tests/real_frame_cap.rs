//! How much memory unauthenticated peers can make a node hold: a real node
//! process on loopback, `N` TCP connections that never authenticate, each
//! announcing a frame just under the inbound cap and sending its body but
//! for the last KiB, all at once. ractor_cluster alone would buffer each
//! body (its cap holds before the cookie handshake too); the node's gate
//! (`cluster/guard.rs`) reads no body above 4 KiB before authentication,
//! so the writers block on full socket buffers until the node closes them
//! at `auth_timeout` (5 s). The node's resident memory (`VmRSS`) is read
//! before and after and printed: a measurement, not a benchmark. Before the
//! gate, the default cap let the 4 connections take about 64 MiB, and the
//! old 256 MiB cap about 1 GiB; now neither grows the node by more than a
//! few MiB (printed with `--nocapture`).

mod support;

use std::time::Duration;

use ractor_takeover::cluster::DEFAULT_MAX_FRAME_BYTES;
use ractor_takeover_testkit::procs::{free_ports, Log, NodeProc};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Unauthenticated connections.
const N: usize = 4;

/// One measurement at a time: `free_ports` starts from the process id, so
/// two tests of this binary would pick the same port, and their RSS
/// figures would share the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The resident memory of process `pid`, in bytes (Linux `/proc`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib << 10
}

/// Polls `pid`'s RSS until two reads 100 ms apart agree within 1 MiB (the
/// node has read what the sockets held), or 10 s passed.
async fn settled_rss(pid: u32) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = rss(pid);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rss(pid);
        if now.abs_diff(last) < 1 << 20 || tokio::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Starts a node with `cap` (`None`: the default), sends the `N`
/// unauthenticated frame bodies, and returns the RSS before and after.
async fn measure(cap: Option<u64>) -> (u64, u64) {
    let _one = SERIAL.lock().await;
    let port = free_ports(1)[0];
    let log = Log::default();
    let mut flags = vec![
        ("port", port.to_string()),
        ("cookie", "real-frame-cap-test".to_string()),
        ("placement", "a".to_string()),
    ];
    if let Some(cap) = cap {
        flags.push(("max-frame-bytes", cap.to_string()));
    }
    let node = NodeProc::start("a", &flags, &log);
    log.wait("a", &["READY"]).await;
    let before = settled_rss(node.pid()).await;
    let frame = cap.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
    let mut writers = Vec::new();
    for _ in 0..N {
        writers.push(tokio::spawn(async move {
            let body = vec![0x5au8; 1 << 20];
            let mut conn = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            conn.write_all(&(frame - 8).to_be_bytes())
                .await
                .expect("frame length");
            let mut left = (frame - 8 - 1024) as usize;
            while left > 0 {
                let n = left.min(body.len());
                // An error: the node closed the connection.
                if conn.write_all(&body[..n]).await.is_err() {
                    return (frame - 8 - 1024) as usize - left;
                }
                left -= n;
            }
            (frame - 8 - 1024) as usize
        }));
    }
    // Each writer ends when its body is out or its connection is closed
    // (at the node's auth_timeout); both bounded.
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.expect("writer"));
    }
    let after = settled_rss(node.pid()).await;
    tracing::info!(?written, "bytes each connection got out");
    tracing::info!(before, after, "rss");
    (before, after)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// With the default cap the node holds next to nothing for unauthenticated
/// peers: far less than the `N` frames of the cap it held before the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_frames_hold_at_most_the_default_cap() {
    support::init_tracing();
    let (before, after) = measure(None).await;
    println!(
        "default cap {} MiB, {N} unauthenticated connections: RSS {:.1} MiB -> {:.1} MiB",
        DEFAULT_MAX_FRAME_BYTES >> 20,
        mib(before),
        mib(after)
    );
    // Generous, and half of what the N frames used to take.
    let bound = N as u64 * DEFAULT_MAX_FRAME_BYTES / 2;
    assert!(
        after.saturating_sub(before) < bound,
        "RSS grew by {:.1} MiB, over {:.1} MiB",
        mib(after.saturating_sub(before)),
        mib(bound)
    );
}

/// The same with the old 256 MiB cap, which made the node hold about
/// 1 GiB before the gate: the cap no longer matters before authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_frames_with_the_old_256_mib_cap() {
    support::init_tracing();
    let cap = 256 << 20;
    let (before, after) = measure(Some(cap)).await;
    println!(
        "cap {} MiB, {N} unauthenticated connections: RSS {:.1} MiB -> {:.1} MiB",
        cap >> 20,
        mib(before),
        mib(after)
    );
    let bound = 32 << 20;
    assert!(
        after.saturating_sub(before) < bound,
        "RSS grew by {:.1} MiB, over {:.1} MiB",
        mib(after.saturating_sub(before)),
        mib(bound)
    );
}
