//! Node processes on loopback for the real-process tests, the demo and the
//! bench: start one with its stdout read line by line, stop it by its PID
//! (SIGKILL, also on drop), and the ports, peers, polling and temporary
//! directories around them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};

/// Generous: a debug build moving a 64 MiB state on a loaded CI machine.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// How long building the test node may take (a cold debug build of the
/// whole dependency tree on 2 busy cores).
pub const BUILD_DEADLINE: Duration = Duration::from_secs(900);

/// The `test-node` binary, built here once per test process with the cargo
/// that runs the tests: a no-op when it is up to date, and a filtered
/// `cargo test --test ...` builds neither it nor any other package's binary
/// (a stale binary would test old code). Panics if the build fails or takes
/// longer than [`BUILD_DEADLINE`].
pub fn test_node_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_binary(env!("CARGO_PKG_NAME"), "test-node"))
        .clone()
}

/// Builds binary `bin` of workspace package `package` in the profile of the
/// running executable, and returns its path. Cargo is found as the running
/// test's `cargo test` set it (`CARGO`), else on the `PATH`.
pub fn build_binary(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable's path");
    // target/<profile>/deps/<test binary>, or target/<profile>/<binary>.
    let mut profile_dir = exe.parent().expect("target/<profile>").to_path_buf();
    if profile_dir.ends_with("deps") || profile_dir.ends_with("examples") {
        profile_dir.pop();
    }
    let release = profile_dir.ends_with("release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().expect("run cargo build");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo build") {
            break status;
        }
        if started.elapsed() > BUILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo build -p {package} --bin {bin} took over {BUILD_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    profile_dir.join(bin)
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

/// A full mesh of nodes on loopback with free ports, the first of them
/// (`names[0]`) this test process as a client node: what every
/// real-process test sets up before it starts its node processes.
pub struct Mesh {
    names: Vec<String>,
    ports: Vec<u16>,
    cookie: String,
}

impl Mesh {
    /// Free ports for `names` (the first is this process), all with `cookie`.
    pub fn new(names: &[&str], cookie: &str) -> Self {
        Self {
            names: names.iter().map(|n| n.to_string()).collect(),
            ports: free_ports(names.len()),
            cookie: cookie.to_string(),
        }
    }

    /// The port of node `me`.
    pub fn port(&self, me: &str) -> u16 {
        let i = self.names.iter().position(|n| n == me);
        self.ports[i.unwrap_or_else(|| panic!("{me} is not in the mesh"))]
    }

    /// The `--peers` value of node `me`: every other node of the mesh.
    pub fn peers_of(&self, me: &str) -> String {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        mesh_peers(&names, &self.ports, me)
    }

    /// The test node flags of node `me`: its port, peers and the cookie,
    /// then `extra`.
    pub fn flags(&self, me: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut flags = vec![
            ("port", self.port(me).to_string()),
            ("peers", self.peers_of(me)),
            ("cookie", self.cookie.clone()),
        ];
        flags.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        flags
    }

    /// Starts this process as the mesh's first node (a client node).
    pub async fn client_node(&self) -> ClusterNode {
        let me = &self.names[0];
        let peers: Vec<PeerAddr> = self
            .peers_of(me)
            .split(',')
            .map(|p| p.parse().expect("a peer address"))
            .collect();
        let config =
            ClusterConfig::new(me.as_str(), self.port(me), self.cookie.clone()).with_peers(peers);
        ClusterNode::start(config)
            .await
            .expect("the client node starts")
    }
}

/// Every line any node printed, in arrival order, tagged with the node.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<(String, String)>>>);

impl Log {
    /// Every line so far, as `(node, line)`.
    pub fn lines(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Adds a line of `node`.
    pub fn push(&self, node: &str, line: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((node.to_string(), line));
    }

    /// Did `node` print a line containing every needle?
    pub fn any(&self, node: &str, needles: &[&str]) -> bool {
        self.lines()
            .iter()
            .any(|(n, l)| n == node && needles.iter().all(|x| l.contains(x)))
    }

    /// How many lines of `node` contain every needle.
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

/// Sends `sig` (`"STOP"`, `"CONT"`, ...) to process `pid`, which must be
/// one the caller started.
pub fn signal_pid(pid: u32, sig: &str) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{sig} {pid}: {status}"
        )))
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

/// A node process; killed (SIGKILL, by its PID) when dropped.
pub struct NodeProc {
    /// The node's name, which tags its lines.
    pub name: String,
    child: Child,
    /// The thread that reads the process's stdout: done at its EOF.
    reader: std::thread::JoinHandle<()>,
}

impl NodeProc {
    /// Starts the test node (`test-node --name NAME`) with these flags
    /// (`("port", "4001")` for `--port 4001`); its stdout goes to `log`.
    pub fn start(name: &str, flags: &[(&str, String)], log: &Log) -> Self {
        tracing::info!("--- start node {name}");
        let mut cmd = Command::new(test_node_binary());
        cmd.args(["--name", name, "--exit-on-stdin-eof", "true"]);
        for (k, v) in flags {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let log = log.clone();
        Self::spawn(name, cmd, move |tag, line| {
            tracing::info!("[{tag}] {line}");
            log.0.lock().unwrap().push((tag.to_string(), line));
        })
        .expect("start node process")
    }

    /// Starts `cmd` as node `name`: its stdin is a pipe that this handle
    /// holds (a node started with `--exit-on-stdin-eof` ends with its
    /// parent), and each line of its stdout goes to `on_line(name, line)`
    /// on a thread of its own.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        mut on_line: impl FnMut(&str, String) + Send + 'static,
    ) -> std::io::Result<Self> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("a piped stdout");
        let tag = name.to_string();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                on_line(&tag, line);
            }
        });
        Ok(Self {
            name: name.to_string(),
            child,
            reader,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (`"STOP"`, `"CONT"`) to this process: a hang and a
    /// resume, as a GC pause or a VM migration does.
    pub fn signal(&self, sig: &str) {
        tracing::info!("--- SIG{sig} node {}", self.name);
        signal_pid(self.pid(), sig).unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.pid()));
    }

    /// Writes `line` and a newline to the process's stdin (the commands a
    /// test node takes there: `holders`, and the client's `pause`, `resume`).
    pub fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// SIGTERM (the test node drains, then exits), and wait until the
    /// process has exited by itself and every line it printed is in the
    /// log; panics if not within the polling deadline of [`wait_for`].
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        tracing::info!("--- SIGTERM node {}", self.name);
        signal_pid(self.pid(), "TERM").expect("kill -TERM");
        let mut status = None;
        let what = format!("{} exits after its SIGTERM", self.name);
        wait_for(&what, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        })
        .await;
        // Its last lines (a `DRAINED` line, printed just before it exits)
        // may still be in the pipe: the caller looks for them next.
        let what = format!("{}'s last output lines are read", self.name);
        wait_for(&what, || self.reader.is_finished()).await;
        status.expect("an exit status")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        tracing::info!("--- SIGKILL node {}", self.name);
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(
    /// Its path.
    pub PathBuf,
);

impl TempDir {
    /// A new directory whose name starts with `what`.
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
