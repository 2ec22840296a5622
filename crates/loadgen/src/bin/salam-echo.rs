//! `salam-echo`: the bare WebSocket echo server the hub is measured against.

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;

/// A bare tokio-tungstenite echo server with the hub's 4 KiB buffers (the ceiling for
/// `salam-loadgen echo`). Stops on SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9301")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run(Args::parse()).await {
        eprintln!("salam-echo: {err:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("salam-echo is listening on ws://{}", listener.local_addr()?);
    salam_loadgen::echo::serve(listener, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
