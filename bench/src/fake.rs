//! In-process figures on the fake cluster.

use super::*;

pub(crate) async fn fake_rtt(opts: &Opts, figs: &mut Figures) -> Result<(), AnyErr> {
    let cluster = FakeCluster::new(["a", "b"]);
    let t = Duration::from_secs(10);
    let srv =
        |n: &str| TakeoverServer::new(NAME, Bench, cluster.registry(n), TakeoverConfig::default());
    let (on_a, _) = srv("a").spawn(()).await?;
    on_a.status(t).await.map_err(|_| "fake a did not start")?;
    let (on_b, _) = srv("b").spawn(()).await?;
    on_b.status(t).await.map_err(|_| "fake b did not start")?;
    let local = GlobalClient::<Bench>::new(NAME, cluster.registry("a"));
    let cross = GlobalClient::<Bench>::new(NAME, cluster.registry("b"));
    let (echo, _) = Actor::spawn(None, Echo, ()).await?;
    let payload = vec![7u8; SMALL];
    let ping = || BenchMsg::Ping {
        payload: payload.clone(),
    };

    let (direct, handle) = alternate(
        opts.rtt_calls,
        || envelope_call(&echo, "echo", payload.clone(), t),
        || local.call(ping(), t),
    )
    .await?;
    let (remote, _) = alternate(
        (opts.rtt_calls / 20).max(50),
        || cross.call(ping(), t),
        || async { Ok::<(), AnyErr>(()) },
    )
    .await?;
    let (d, h) = (pct(&direct, 0.5), pct(&handle, 0.5));
    figs.add(
        "fake_call_rtt_direct",
        d,
        "us",
        "",
        &format!(
            "p50 of {}: ActorRef::call to a local plain actor",
            direct.len()
        ),
    );
    figs.add(
        "fake_call_rtt_handle",
        h,
        "us",
        "",
        &format!(
            "p50 of {}: GlobalClient::call, client and holder on fake node a",
            handle.len()
        ),
    );
    figs.add(
        "fake_handle_overhead_ratio",
        h / d,
        "x",
        "<= 1.25",
        "fake_call_rtt_handle / fake_call_rtt_direct (calls alternated)",
    );
    figs.add(
        "fake_call_rtt_handle_cross_node",
        pct(&remote, 0.5),
        "us",
        "",
        &format!(
            "p50 of {}: client on fake node b, holder on a (through the fake router)",
            remote.len()
        ),
    );
    on_a.stop(None);
    on_b.stop(None);
    echo.stop(None);
    Ok(())
}
