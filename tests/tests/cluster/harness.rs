//! The cluster harness itself (tests/src/cluster.rs): NATS, nginx with
//! deploy/nginx/salam-cluster.conf, and several hubs on one database. What is checked
//! here holds whether one hub or every hub of a database serves.

use anyhow::{Context, Result, ensure};
use salam_e2e::cluster::{
    Cluster, NatsServer, Nginx, check_cluster_conf_as_shipped, hub_id, nats_info, nats_round_trip,
    render_cluster_conf,
};
use salam_e2e::http_request;
use salam_e2e::process::{HubProcess, ORIGIN, free_port, visitor_session};
use salam_protocol::ServerFrame;
use serde_json::json;
use std::net::SocketAddr;

/// `GET /healthz` through `front`, `times` times, each on a new connection; every
/// answer must be 200 from a hub.
async fn healthz_all_ok(front: SocketAddr, times: usize) -> Result<()> {
    for attempt in 1..=times {
        let response = http_request(front, "GET", "/healthz", &[], "").await?;
        ensure!(
            response.status == 200 && response.body.contains("\"status\":\"ok\""),
            "request {attempt} of {times} through nginx: {} {}",
            response.status,
            response.body
        );
    }
    Ok(())
}

/// A visitor greets through nginx's WebSocket upgrade, says something and gets it
/// acknowledged.
async fn visitor_talks(front: SocketAddr, site_key: &str) -> Result<()> {
    let mut visitor = visitor_session(front, ORIGIN, site_key, None).await?;
    ensure!(
        visitor.token.is_some(),
        "the welcome through nginx has no visitor token"
    );
    visitor
        .send_json(&json!({"type": "send", "client_id": "through-nginx", "text": "hello"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    ensure!(matches!(ack, ServerFrame::Ack { .. }), "no ack: {ack:?}");
    Ok(())
}

/// The shipped file passes `nginx -t` as it is, and the test's rendering swaps exactly
/// the listen line and the upstream servers (one line per hub, the same parameters).
#[test]
fn the_cluster_conf_passes_nginx_t_as_shipped_and_renders_for_any_hubs() -> Result<()> {
    check_cluster_conf_as_shipped()?;
    let recipe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nginx/salam-cluster.conf"
    ))?;
    let listen: SocketAddr = "127.0.0.1:4000".parse()?;
    let hubs: Vec<SocketAddr> = (1..=4)
        .map(|n| format!("127.0.0.1:500{n}").parse())
        .collect::<Result<_, _>>()?;
    let rendered = render_cluster_conf(&recipe, listen, &hubs)?;
    let servers: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("server 127.0.0.1:"))
        .collect();
    ensure!(
        servers
            == (1..=4)
                .map(|n| format!("server 127.0.0.1:500{n} max_fails=1 fail_timeout=5s;"))
                .collect::<Vec<_>>(),
        "rendered servers: {servers:?}"
    );
    let directives: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .collect();
    ensure!(
        directives.contains(&"listen 127.0.0.1:4000;")
            && !directives
                .iter()
                .any(|line| line.contains(":808") || line.contains("8080")),
        "rendered:\n{rendered}"
    );
    // Everything else is the recipe's own text.
    let kept = |text: &str| {
        text.lines()
            .filter(|line| !line.contains("listen ") && !line.trim().starts_with("server 127."))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    ensure!(
        kept(&rendered) == kept(&recipe),
        "the rendering changed other lines"
    );
    ensure!(
        render_cluster_conf(&recipe.replace("listen 8080;", "listen 80;"), listen, &hubs).is_err(),
        "a recipe without its listen line still rendered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_speaks_the_protocol_and_restarts_on_its_port() -> Result<()> {
    let mut nats = NatsServer::start().await?;
    let url = nats.url();
    ensure!(
        url == format!("nats://127.0.0.1:{}", nats.addr().port()),
        "url {url}"
    );
    let lines = nats_round_trip(nats.addr(), "salam.harness", "ping-1").await?;
    ensure!(
        lines == ["MSG salam.harness 1 6", "ping-1"],
        "the subscriber got {lines:?}"
    );

    nats.kill().await?;
    ensure!(!nats.is_running(), "nats-server still runs after kill");
    ensure!(
        nats_info(nats.addr()).await.is_err(),
        "something still answers on {} after the kill",
        nats.addr()
    );

    nats.restart().await?;
    ensure!(
        nats.url() == url,
        "restarted on {} instead of {url}",
        nats.url()
    );
    let lines = nats_round_trip(nats.addr(), "salam.harness", "ping-2").await?;
    ensure!(
        lines == ["MSG salam.harness 1 6", "ping-2"],
        "after the restart the subscriber got {lines:?}; log:\n{}",
        nats.log_tail(20)
    );
    Ok(())
}

/// nginx with one upstream that is dead (nobody listens on its port) and one live hub:
/// every request is answered by the live hub, HTTP and WebSocket alike, and the dead
/// one was tried and skipped (the access log lists both for the request that met it).
/// A reload points nginx at other upstreams and keeps an open socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_answers_through_a_live_hub_when_another_is_dead() -> Result<()> {
    let data = tempfile::tempdir()?;
    let hub =
        HubProcess::start(data.path(), &format!("[demo]\norigins = [\"{ORIGIN}\"]\n")).await?;
    let site_key = hub.first()?.site_key.clone();
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut nginx = Nginx::start(&[dead, hub.addr]).await?;

    let checked = async {
        healthz_all_ok(nginx.addr(), 20).await?;
        visitor_talks(nginx.addr(), &site_key).await?;
        let first = hub.first()?;
        let admin =
            salam_e2e::process::Api::login(nginx.addr(), &first.admin_email, &first.admin_password)
                .await?;
        let sites = admin.get("/api/sites").await?;
        ensure!(
            sites["sites"].as_array().map(Vec::len) == Some(1),
            "through nginx: {sites}"
        );
        anyhow::Ok(())
    }
    .await;
    let log = nginx.access_log();
    checked.with_context(|| {
        format!(
            "nginx error log:\n{}\naccess log:\n{log}",
            nginx.log_tail(20)
        )
    })?;

    ensure!(
        log.lines()
            .any(|line| line.ends_with(&format!("{dead}, {}", hub.addr))),
        "no request was tried on the dead upstream {dead} and then passed on; access log:\n{log}"
    );
    let served = nginx.served_by();
    ensure!(
        served.len() >= 20 && served.iter().all(|addr| *addr == hub.addr),
        "the access log says requests were answered by {served:?}"
    );
    ensure!(
        nginx.log_tail(100).contains("Connection refused"),
        "nginx logged no refused connect to {dead}: {}",
        nginx.log_tail(20)
    );

    // A reload points nginx elsewhere; a socket opened before it stays up.
    let mut visitor = visitor_session(nginx.addr(), ORIGIN, &site_key, None).await?;
    nginx.reload(&[dead]).await?;
    let response = http_request(nginx.addr(), "GET", "/healthz", &[], "").await?;
    ensure!(
        response.status == 502,
        "with only the dead upstream nginx answered {}",
        response.status
    );
    nginx.reload(&[hub.addr]).await?;
    healthz_all_ok(nginx.addr(), 5).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "across-reloads", "text": "still here"}))
        .await?;
    visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await
        .context("the socket opened before the reloads")?;
    Ok(())
}

/// Three hubs on one database and one NATS server, behind nginx: all three serve with
/// the cluster's environment, exactly one hub did the first start, and nginx answers
/// HTTP, the REST API and a visitor's WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_three_answers_through_nginx() -> Result<()> {
    let mut cluster = Cluster::start(3, &format!("[demo]\norigins = [\"{ORIGIN}\"]\n")).await?;
    let result = check_cluster(&mut cluster).await;
    result.with_context(|| format!("the cluster's logs:\n{}", cluster.logs(20)))
}

async fn check_cluster(cluster: &mut Cluster) -> Result<()> {
    ensure!(cluster.len() == 3, "{} hubs", cluster.len());
    cluster.wait_all_serving().await?;
    let running = cluster.running();
    ensure!(running == [0, 1, 2], "running: {running:?}");
    let database_url = cluster.database_url().to_owned();
    let bus_url = cluster.nats().url();
    for &index in &running {
        let hub = cluster.hub(index);
        // The hub's own environment, as the kernel holds it.
        let pid = hub.pid().context("a running hub has a pid")?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        let environ: Vec<String> = environ
            .split(|byte| *byte == 0)
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect();
        for wanted in [
            format!("SALAM_DATABASE_URL={database_url}"),
            format!("SALAM_BUS_URL={bus_url}"),
            format!("SALAM_HUB_ID={}", hub_id(index)),
        ] {
            ensure!(
                environ.contains(&wanted),
                "{} runs without {wanted}",
                hub_id(index)
            );
        }
        let health = http_request(hub.addr, "GET", "/healthz", &[], "").await?;
        ensure!(
            health.status == 200 && health.body.contains("\"database\":\"postgresql\""),
            "{} answers /healthz {} {}",
            hub_id(index),
            health.status,
            health.body
        );
    }
    let first = cluster.first_start()?.clone();
    ensure!(
        cluster.hub(0).first_start.is_some(),
        "hub1, started first, did not do the first start"
    );
    ensure!(
        nats_info(cluster.nats().addr()).await?.starts_with("INFO "),
        "the cluster's NATS server does not greet"
    );

    let front = cluster.front();
    healthz_all_ok(front, 20).await?;
    let admin = cluster.admin().await?;
    ensure!(admin.addr == front, "the admin API is not through nginx");
    let sites = admin.get("/api/sites").await?;
    ensure!(
        sites["sites"][0]["key"] == first.site_key.as_str(),
        "through nginx the sites are {sites}"
    );
    visitor_talks(front, &first.site_key).await?;
    Ok(())
}
