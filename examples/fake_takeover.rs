//! Run with: cargo run --example fake_takeover --features test-util
//!
//! A power monitor (the classic Erlang takeover example), on a fake three-node cluster in one
//! process: "power_monitor" starts on a, a client on c reports power failures
//! without pause, and the server is taken over to b and then back to the
//! same instance on a, which waited as a standby meanwhile. You will see a timeline of the instances' events (who holds
//! the name, epoch, start type, state bytes, pause, buffered calls), then a
//! summary. The exit status is non-zero if a call was lost or miscounted.

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use ractor::ActorProcessingErr;
use ractor_takeover::event::{EventKind, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

const NAME: &str = "power_monitor";
/// Generous: it catches hangs, it does not measure speed.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Calls the client keeps making after the second takeover, so that the new
/// holder on a demonstrably serves with the full state.
const CALLS_AFTER: u64 = 200;

#[derive(Debug, Serialize, Deserialize)]
enum PowerMsg {
    /// A power failure in `building`; the reply is the total so far.
    Report { building: String },
    /// The total so far.
    Count,
}

/// What moves on takeover: without it the technicians would see the counts
/// restart from zero every time the server moves.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PowerState {
    total: u64,
    per_building: BTreeMap<String, u64>,
}

struct PowerMonitor;

impl TakeoverActor for PowerMonitor {
    type Msg = PowerMsg;
    type Reply = u64;
    type State = PowerState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<PowerState, ActorProcessingErr> {
        Ok(PowerState::default())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        msg: PowerMsg,
        state: &mut PowerState,
    ) -> Result<u64, ActorProcessingErr> {
        if let PowerMsg::Report { building } = msg {
            state.total += 1;
            *state.per_building.entry(building).or_default() += 1;
        }
        Ok(state.total)
    }
}

fn describe(e: &TakeoverEvent) -> String {
    let epoch = e.epoch.map_or("-".into(), |n| n.to_string());
    let what = match &e.kind {
        EventKind::Registered { start } => format!("holds the name, start {start:?}"),
        EventKind::Standby { holder: Some(h) } => {
            format!("standby; holder is {} epoch {}", h.node, h.epoch)
        }
        EventKind::TakeoverStarted { from } => {
            format!("stole the name from {}; pulls its state", from.node)
        }
        EventKind::StateSent { to, bytes } => {
            format!("sent {bytes} state bytes to {}; forwards calls", to.node)
        }
        EventKind::StateTransferred { bytes, .. } => format!("installed {bytes} state bytes"),
        EventKind::HandoverDone {
            pause, buffered, ..
        } => {
            format!("serves: pause {pause:.1?}, {buffered} buffered call(s)")
        }
        EventKind::Retired { to, forwarded } => {
            format!("retired; forwarded {forwarded} call(s) to {}", to.node)
        }
        other => format!("{other:?}"),
    };
    format!("[{} epoch {epoch}] {what}", e.node)
}

/// Spawns an instance and checks how it started. Why a status: `spawn` returns
/// before the instance decides, but a status is answered only after it.
async fn spawn_as(
    server: TakeoverServer<PowerMonitor>,
    expected: Phase,
) -> Result<TakeoverRef<PowerMonitor>, Box<dyn Error>> {
    let (instance, _) = server.spawn(()).await?;
    match instance.status(TIMEOUT).await.ok().map(|s| s.phase) {
        Some(phase) if phase == expected => Ok(instance),
        other => Err(format!("expected {expected:?}, found {other:?}").into()),
    }
}

/// Waits (with a deadline) until `instance` is a standby again: a retired
/// instance does not stop, it waits for a takeover back.
async fn standby_again(instance: &TakeoverRef<PowerMonitor>) -> Result<(), Box<dyn Error>> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while instance.status(TIMEOUT).await.ok().map(|s| s.phase) != Some(Phase::Standby) {
        if tokio::time::Instant::now() >= deadline {
            return Err("the old instance did not become a standby".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let nodes = ["a", "b", "c"];
    let cluster = FakeCluster::new(nodes);
    // Real links are neither instant nor in-memory: delay every link a little
    // and push every message through its serialized form.
    for (x, y) in nodes.iter().flat_map(|x| nodes.map(move |y| (*x, y))) {
        if x != y {
            cluster.set_delay(x, y, Duration::from_millis(1));
        }
    }
    cluster.set_serialize_messages(true);

    // One config, so one event hub, for every instance: the timeline sees all.
    // Main's steps go through the printer too, and main waits until a step is
    // printed: events before a step are printed before it, later ones after.
    let config = TakeoverConfig::default();
    let mut events = config.events.subscribe();
    let (steps, mut steps_rx) = mpsc::unbounded_channel::<(&str, oneshot::Sender<()>)>();
    let printer = tokio::spawn(async move {
        let print =
            |text: &str| println!("{:>7.1} ms  {text}", start.elapsed().as_secs_f64() * 1e3);
        loop {
            tokio::select! {
                Ok(e) = events.recv() => print(&describe(&e)),
                step = steps_rx.recv() => {
                    let Some((text, printed)) = step else { break };
                    while let Ok(e) = events.try_recv() {
                        print(&describe(&e));
                    }
                    print(&format!("--- {text}"));
                    let _ = printed.send(());
                }
            }
        }
    });
    let step = |text: &'static str| {
        let (printed, wait) = oneshot::channel();
        let _ = steps.send((text, printed));
        wait
    };
    let server = |node: &str| {
        TakeoverServer::new(NAME, PowerMonitor, cluster.registry(node), config.clone())
    };

    step("start an instance on a, then one on b").await?;
    let on_a = spawn_as(server("a"), Phase::Holder).await?;
    let on_b = spawn_as(server("b"), Phase::Standby).await?;

    step("a client on c reports power failures without pause").await?;
    let client = GlobalClient::<PowerMonitor>::new(NAME, cluster.registry("c"));
    let (answered_tx, mut progress) = watch::channel(0u64);
    let (finish_tx, mut finish_rx) = oneshot::channel::<()>();
    let reporter = tokio::spawn({
        let client = client.clone();
        async move {
            let (mut sent, mut answered, mut errors) = (0u64, 0u64, Vec::new());
            let mut left = None; // calls still to make, once main says "finish"
            while left != Some(0) {
                if left.is_none() && finish_rx.try_recv().is_ok() {
                    left = Some(CALLS_AFTER);
                }
                let building = ["north", "south", "lab"][(sent % 3) as usize].to_string();
                sent += 1;
                match client.call(PowerMsg::Report { building }, TIMEOUT).await {
                    Ok(_) => answered += 1,
                    Err(e) => errors.push(e),
                }
                answered_tx.send_replace(answered);
                left = left.map(|n| n - 1);
            }
            (sent, answered, errors)
        }
    });
    // Let a serve some calls first, so that there is state to move.
    progress.wait_for(|n| *n >= 50).await?;

    step("takeover: b takes the name and the state from a").await?;
    on_b.takeover(TIMEOUT).await?;
    // The old instance retires: a standby again, by itself.
    standby_again(&on_a).await?;
    step("the old instance on a is a standby again").await?;
    // Let b serve some calls of its own before it hands over again.
    let seen = *progress.borrow();
    progress.wait_for(|n| *n >= seen + 50).await?;

    step("takeover: the same instance on a takes it back from b").await?;
    on_a.takeover(TIMEOUT).await?;
    standby_again(&on_b).await?;
    step("b is a standby again; the client makes its last calls").await?;
    let _ = finish_tx.send(());
    let (sent, answered, errors) = reporter.await?;
    let count = client.call(PowerMsg::Count, TIMEOUT).await?;
    drop(steps); // the printer ends
    printer.await?;

    let holder = client
        .whereis()
        .map(|h| format!("{} epoch {}", h.node, h.epoch));
    println!("\ncalls sent:     {sent}");
    println!("calls answered: {answered}");
    println!("errors:         {}", errors.len());
    for e in errors.iter().take(5) {
        println!("  {e}");
    }
    println!("final count:    {count}");
    println!("holder now:     {}", holder.as_deref().unwrap_or("nobody"));
    // Each answered report counted once: a lost call shows as an error or a
    // missing answer, a call served twice as a count above the answers.
    if !errors.is_empty() || answered != sent || count != answered {
        eprintln!("FAILED: a call was lost, or the count differs from the calls answered");
        std::process::exit(1);
    }
    println!("OK: the count equals the calls answered; no call lost or served twice");
    Ok(())
}
