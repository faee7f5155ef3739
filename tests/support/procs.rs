//! Real node processes for the real-backend tests: the `cluster_demo`
//! example's `node` role, started on loopback with its output read line by line.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Generous: a debug build moving a 64 MiB state on a loaded CI machine.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The node binary: the `cluster_demo` example, built here (a no-op when
/// `cargo test` built it already; a filtered `cargo test --test ...` does
/// not build examples, and a stale binary would test old code).
pub fn node_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test binary path");
            let profile_dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target/<profile>");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--all-features", "--example", "cluster_demo"])
                .status()
                .expect("run cargo build");
            assert!(
                status.success(),
                "cargo build --example cluster_demo failed"
            );
            profile_dir.join("examples").join("cluster_demo")
        })
        .clone()
}

/// `n` TCP ports that were free a moment ago on 127.0.0.1, chosen below
/// Linux's ephemeral range (32768-60999): a port the OS hands out for
/// `bind(0)` or an outgoing connection elsewhere on the machine cannot land
/// on one of ours between this check and our node binding it.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(n);
    let mut candidate = 20_000 + (std::process::id() % 10_000) as u16;
    while ports.len() < n {
        candidate = if candidate >= 32_000 {
            20_000
        } else {
            candidate + 1
        };
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            ports.push(candidate);
        }
    }
    ports
}

/// The `--peers` value for node `me` of a full mesh on loopback: every other
/// node of `names`, `names[i]` listening on `ports[i]`.
pub fn mesh_peers(names: &[&str], ports: &[u16], me: &str) -> String {
    names
        .iter()
        .zip(ports)
        .filter(|(n, _)| **n != me)
        .map(|(n, port)| format!("{n}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every line any node printed, in arrival order, tagged with the node.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<(String, String)>>>);

impl Log {
    pub fn lines(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }

    pub fn any(&self, node: &str, needles: &[&str]) -> bool {
        self.lines()
            .iter()
            .any(|(n, l)| n == node && needles.iter().all(|x| l.contains(x)))
    }

    pub fn count(&self, node: &str, needles: &[&str]) -> usize {
        self.lines()
            .iter()
            .filter(|(n, l)| n == node && needles.iter().all(|x| l.contains(x)))
            .count()
    }

    /// Waits until `node` printed a line containing every needle.
    pub async fn wait(&self, node: &str, needles: &[&str]) {
        let what = format!("{node} prints {needles:?}");
        wait_for(&what, || self.any(node, needles)).await;
    }
}

/// Polls `cond` until it holds; panics after [`DEADLINE`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("ok: {what}");
}

/// A node process; killed (SIGKILL) when dropped.
pub struct NodeProc {
    pub name: String,
    child: Child,
}

impl NodeProc {
    /// Starts `cluster_demo node` with these flags; its stdout goes to `log`.
    pub fn start(name: &str, flags: &[(&str, String)], log: &Log) -> Self {
        tracing::info!("--- start node {name}");
        let mut cmd = Command::new(node_binary());
        cmd.args(["node", "--name", name, "--exit-on-stdin-eof", "true"]);
        for (k, v) in flags {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start node process");
        let stdout = child.stdout.take().unwrap();
        let (log, tag) = (log.clone(), name.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                tracing::info!("[{tag}] {line}");
                log.0.lock().unwrap().push((tag.clone(), line));
            }
        });
        Self {
            name: name.to_string(),
            child,
        }
    }

    /// The process id, to send it signals (SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        tracing::info!("--- SIGKILL node {}", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ractor_takeover_{what}_{}_{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
