//! The node's TCP listener, owned by this crate rather than ractor_cluster.
//!
//! Why: ractor_cluster's listener runs each TLS handshake inside its accept
//! loop with no timeout, so one connection that never speaks holds every
//! later session to the node (a restarting peer then cannot join). Here
//! each handshake runs in its own task, bounded by
//! `ClusterConfig::handshake_timeout`, and at most [`MAX_HANDSHAKES`] run
//! at once (a connection over that is closed at once); a finished stream is
//! handed to the node server as ractor_cluster's own listener would hand it
//! (`NodeServerMessage::ConnectionOpened`). The node server still runs a
//! listener of its own (it cannot be turned off): it is bound to an
//! ephemeral port on 127.0.0.1 and never advertised to peers (the node runs
//! in isolated mode, so nobody dials connection strings).

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// TLS handshakes in progress at once, at most.
pub(crate) const MAX_HANDSHAKES: usize = 64;

/// Binds `port` on every address (IPv6 and IPv4 where the OS allows both).
pub(crate) async fn bind(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(("::", port)).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(("0.0.0.0", port)).await,
    }
}

/// Accepts connections until the node server is gone.
pub(crate) async fn run(
    listener: TcpListener,
    node_server: ActorRef<NodeServerMessage>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        if node_server.get_status() >= ractor::ActorStatus::Stopping {
            return;
        }
        let (stream, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local_addr) = stream.local_addr() else {
            continue;
        };
        let Some(acceptor) = tls.clone() else {
            let opened = NodeServerMessage::ConnectionOpened {
                stream: Box::new(NetworkStream::Raw {
                    peer_addr,
                    local_addr,
                    stream,
                }),
                is_server: true,
            };
            if node_server.send_message(opened).is_err() {
                return;
            }
            continue;
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%peer_addr, "too many TLS handshakes in progress: connection closed");
            continue;
        };
        let server = node_server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = server.send_message(NodeServerMessage::ConnectionOpened {
                        stream: Box::new(NetworkStream::TlsServer {
                            peer_addr,
                            local_addr,
                            stream,
                        }),
                        is_server: true,
                    });
                }
                Ok(Err(e)) => tracing::warn!(%peer_addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::warn!(%peer_addr, "TLS handshake timed out: connection closed"),
            }
        });
    }
}
