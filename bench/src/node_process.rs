//! The node role: one node process as the bench starts it.

use super::*;

/// One node process: a ClusterNode, Echo, Control, and the servers its flags
/// ask for (`--bench true`, `--fo-placement "a > c"`). Prints `READY` once
/// every instance is past its start-up, and `EVENT` lines.
pub(crate) async fn run_node(args: NodeArgs) -> Result<(), AnyErr> {
    let name = args.name;
    let node = ClusterNode::start(args.cluster.config(&name)?).await?;
    let (echo, _) = Actor::spawn(None, Echo, ()).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        format!("echo|{name}"),
        vec![echo.get_cell()],
    );
    let slot: Slot = Arc::default();
    let sync_slot: Slot = Arc::default();
    let fo_slot: Slot = Arc::default();
    let mut slots = Vec::new();
    if args.bench {
        let config = TakeoverConfig::default().with_pull_timeout(CALL_TIMEOUT);
        keep_instance(NAME, &node, config.clone(), slot.clone());
        slots.push((NAME, slot.clone()));
        let config = config.with_sync_standby(SyncStandby::refuse());
        keep_instance(SYNC_NAME, &node, config, sync_slot.clone());
        slots.push((SYNC_NAME, sync_slot.clone()));
    }
    let fo_placement = args.fo_placement;
    if !fo_placement.is_empty() {
        let placement = Placement::parse(&fo_placement).with_failover_delay(Duration::ZERO);
        let config = TakeoverConfig::default().with_placement(placement);
        keep_instance(FO_NAME, &node, config, fo_slot.clone());
        slots.push((FO_NAME, fo_slot));
    }
    let (control, _) = Actor::spawn(None, Control, (slot, sync_slot)).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        format!("control|{name}"),
        vec![control.get_cell()],
    );
    let mut phases = Vec::new();
    for (server, slot) in slots {
        let deadline = Instant::now() + Duration::from_secs(60);
        let phase = loop {
            let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(st) = match current {
                Some(inst) => inst.status(Duration::from_secs(30)).await.ok(),
                None => None,
            } {
                break st.phase;
            }
            if Instant::now() >= deadline {
                return Err(format!("{server} did not start").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        phases.push(format!("{server}={phase:?}"));
    }
    println!(
        "READY node={name} pid={} {}",
        std::process::id(),
        phases.join(" ")
    );
    if args.exit_on_stdin_eof {
        // Started by the parent: end with it, even if it is killed.
        node::exit_on_stdin_eof();
    }
    tokio::time::sleep(NODE_LIFETIME).await;
    node.shutdown();
    Ok(())
}

/// Runs one instance of `name` on this node, for the node's lifetime: an
/// instance that handed the name over is a standby again by itself, so
/// takeovers can go back to it. A start-up that failed is tried again
/// (`MAX_START_TRIES`).
pub(crate) fn keep_instance(
    name: &'static str,
    node: &ClusterNode,
    config: TakeoverConfig,
    slot: Slot,
) {
    let registry = node.registry();
    let mut events = config.events.subscribe();
    let node_name = node.config().node.to_string();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            println!(
                "EVENT node={node_name} name={} epoch={:?} {:?}",
                ev.name, ev.epoch, ev.kind
            );
        }
    });
    tokio::spawn(async move {
        for _ in 0..MAX_START_TRIES {
            match TakeoverServer::new(name, Bench, registry.clone(), config.clone())
                .spawn(())
                .await
            {
                Ok((instance, handle)) => {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(instance);
                    let _ = handle.await;
                    eprintln!("instance of {name} ended (it failed or was stopped)");
                    return;
                }
                Err(e) => {
                    eprintln!("spawn of {name} failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}
