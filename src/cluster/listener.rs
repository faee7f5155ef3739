//! The node's TCP listener, owned by this crate rather than ractor_cluster.
//!
//! Why: ractor_cluster's listener runs each TLS handshake inside its accept
//! loop with no timeout, so one connection that never speaks holds every
//! later session to the node (a restarting peer then cannot join), and it
//! gives the cookie handshake no time limit either. Here each accepted
//! connection passes a gate (`guard`): at most
//! [`MAX_UNAUTHENTICATED`](super::guard::MAX_UNAUTHENTICATED) authenticate
//! at once (one over that is closed at once), each TLS handshake runs in
//! its own task bounded by `ClusterConfig::handshake_timeout`, and the
//! whole authentication (TLS and cookie) by `ClusterConfig::auth_timeout`,
//! with a small frame budget until it is done. A stream is handed to the
//! node server as an external transport
//! (`NodeServerMessage::ConnectionOpenedExternal`), which ractor_cluster
//! runs exactly as its own sessions. The node server still runs a listener
//! of its own (it cannot be turned off): it is bound to an ephemeral port on
//! 127.0.0.1 and never advertised to peers (the node runs in isolated mode,
//! so nobody dials connection strings).

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::guard::{Gates, GuardedStream};

/// Binds `port` on every address (IPv6 and IPv4 where the OS allows both).
pub(crate) async fn bind(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(("::", port)).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(("0.0.0.0", port)).await,
    }
}

/// The listener's time limits.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    /// One TLS handshake.
    pub(crate) handshake: Duration,
    /// The whole authentication, from the accept.
    pub(crate) auth: Duration,
}

/// Accepts connections until the node server is gone.
pub(crate) async fn run(
    listener: TcpListener,
    node_server: ActorRef<NodeServerMessage>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    gates: Arc<Gates>,
) {
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
        let Some(gate) = gates.admit(peer_addr) else {
            tracing::warn!(%peer_addr, "too many connections authenticating: connection closed");
            continue;
        };
        let deadline = tokio::time::Instant::now() + limits.auth;
        let Some(acceptor) = tls.clone() else {
            let stream = GuardedStream::new(stream.into_split(), gate, deadline);
            let opened = NodeServerMessage::ConnectionOpenedExternal {
                stream: Box::new(stream),
                is_server: true,
            };
            if node_server.send_message(opened).is_err() {
                return;
            }
            continue;
        };
        let server = node_server.clone();
        tokio::spawn(async move {
            let limit = limits.handshake.min(limits.auth);
            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let stream = GuardedStream::new(tokio::io::split(stream), gate, deadline);
                    let _ = server.send_message(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(stream),
                        is_server: true,
                    });
                }
                // The gate (and its slot) goes with the connection.
                Ok(Err(e)) => tracing::warn!(%peer_addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::warn!(%peer_addr, "TLS handshake timed out: connection closed"),
            }
        });
    }
}
