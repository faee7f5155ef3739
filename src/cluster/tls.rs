//! TLS between nodes, on ractor_cluster's own support: the node server
//! accepts with a [`TlsAcceptor`] (`IncomingEncryptionMode::Tls`) and the
//! heartbeat dials with a [`TlsConnector`] (`client_connect_enc`).
//!
//! The configurations built here are *mutual*: every node is both a server
//! (peers dial it) and a client (it dials peers), so every node presents its
//! certificate both ways and accepts only peers whose certificate chains to
//! the configured CA. A node without TLS, or with a certificate of another
//! CA, never completes a session, so it never sees or joins a registration.
//! The cookie handshake still runs inside the TLS session.
//!
//! ractor_cluster runs the server side of the TLS handshake inside its accept
//! loop with no timeout: a client that connects and stays silent holds up new
//! sessions until it goes away. Keep node ports off untrusted networks.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS settings of a node: how it accepts sessions, how it dials peers, and
/// the name it expects in every peer's certificate. Set it with
/// [`super::ClusterConfig::with_tls`]; every node of the cluster needs TLS
/// once one has it.
///
/// One `server_name` is used for every peer, so the nodes' certificates must
/// all carry it (a cluster-wide name such as `ractor-takeover.internal`, or
/// one certificate shared by the nodes).
#[derive(Clone)]
pub struct ClusterTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why TLS settings could not be built.
#[derive(Debug)]
pub struct TlsErr {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TlsErr {
    fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    fn with(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for TlsErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for TlsErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The process's default rustls provider if one is installed, otherwise
/// aws-lc-rs (the one tokio-rustls' default features bring).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider()))
}

impl ClusterTls {
    /// From rustls configurations you built yourself. `server_name` is the
    /// name checked against every peer's certificate when dialing it.
    pub fn new(
        acceptor: TlsAcceptor,
        connector: TlsConnector,
        server_name: ServerName<'static>,
    ) -> Self {
        Self {
            acceptor,
            connector,
            server_name,
        }
    }

    /// Mutual TLS from certificates in memory: this node presents
    /// `cert_chain` (its certificate first) with `key`, both as a server and
    /// as a client, and accepts only peers whose certificate chains to one of
    /// `roots` and, when dialed, carries `server_name`.
    pub fn from_certs(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: RootCertStore,
        server_name: &str,
    ) -> Result<Self, TlsErr> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsErr::with(format!("bad TLS server name {server_name:?}"), e))?;
        if cert_chain.is_empty() {
            return Err(TlsErr::new("no certificate"));
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsErr::with("bad CA for client certificates", e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsErr::with("TLS server settings", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert_chain.clone(), key.clone_key())
            .map_err(|e| TlsErr::with("TLS server certificate", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsErr::with("TLS client settings", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(cert_chain, key)
            .map_err(|e| TlsErr::with("TLS client certificate", e))?;
        Ok(Self::new(
            TlsAcceptor::from(Arc::new(server)),
            TlsConnector::from(Arc::new(client)),
            server_name,
        ))
    }

    /// Mutual TLS from PEM files: `cert` (this node's certificate chain,
    /// its certificate first), `key` (its private key: PKCS#8, PKCS#1 or
    /// SEC1) and `ca` (the certificates to trust; for a self-signed
    /// certificate, the certificate itself). See [`Self::from_certs`].
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
        server_name: &str,
    ) -> Result<Self, TlsErr> {
        let chain = read_certs(cert.as_ref())?;
        let key_path = key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| TlsErr::with(format!("no private key in {}", key_path.display()), e))?;
        let mut roots = RootCertStore::empty();
        for ca_cert in read_certs(ca.as_ref())? {
            roots
                .add(ca_cert)
                .map_err(|e| TlsErr::with(format!("bad CA in {}", ca.as_ref().display()), e))?;
        }
        Self::from_certs(chain, key, roots, server_name)
    }

    /// Writes a new self-signed certificate for `names` (DNS names or IP
    /// addresses) to `dir/cert.pem` and its private key to `dir/key.pem`
    /// (owner-only on Unix), and returns the settings of a node that uses
    /// it and trusts it as its CA, with `names[0]` as the server name.
    ///
    /// Start the other nodes with `from_pem_files(dir/cert.pem, dir/key.pem,
    /// dir/cert.pem, names[0])`. For tests, demos and development clusters:
    /// everyone holding the key is a member. Keep `dir` out of version
    /// control.
    #[cfg(feature = "tls-selfsigned")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls-selfsigned")))]
    pub fn self_signed(dir: impl AsRef<Path>, names: &[&str]) -> Result<Self, TlsErr> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};

        let dir = dir.as_ref();
        let first = names
            .first()
            .ok_or_else(|| TlsErr::new("a self-signed certificate needs a name"))?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params =
            CertificateParams::new(names).map_err(|e| TlsErr::with("bad certificate name", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ractor_takeover self-signed node");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(|e| TlsErr::with("generate a key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsErr::with("sign the certificate", e))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| TlsErr::with(format!("create {}", dir.display()), e))?;
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        write_file(&cert_path, cert.pem().as_bytes(), false)?;
        Self::from_pem_files(&cert_path, &key_path, &cert_path, first)
    }

    /// How the node server accepts sessions.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// How the node dials its peers.
    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The name every peer's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsErr> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsErr::with(format!("read {}", path.display()), e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsErr::with(format!("bad PEM in {}", path.display()), e))?;
    if certs.is_empty() {
        return Err(TlsErr::new(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// Writes `bytes` to `path`, replacing it; a secret is created owner-only.
#[cfg(feature = "tls-selfsigned")]
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsErr> {
    use std::io::Write;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| TlsErr::with(format!("write {}", path.display()), e))
}

#[cfg(all(test, feature = "tls-selfsigned"))]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "ractor_takeover_tls_{tag}_{}_{nanos}",
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

    /// Runs one TLS handshake (and a byte each way) from `client` to `server`
    /// over an in-memory pipe.
    async fn handshake(server: &ClusterTls, client: &ClusterTls) -> bool {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = server.acceptor().clone();
        let accept = tokio::spawn(async move {
            let mut s = acceptor.accept(a).await.ok()?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.ok()?;
            s.write_all(&byte).await.ok()?;
            s.flush().await.ok()
        });
        let connect = async {
            let mut c = client
                .connector()
                .connect(client.server_name().clone(), b)
                .await
                .ok()?;
            c.write_all(&[7]).await.ok()?;
            c.flush().await.ok()?;
            let mut byte = [0u8; 1];
            c.read_exact(&mut byte).await.ok()?;
            (byte[0] == 7).then_some(())
        };
        let connected = connect.await.is_some();
        let accepted = accept.await.ok().flatten().is_some();
        connected && accepted
    }

    #[tokio::test]
    async fn nodes_of_one_ca_talk_and_others_are_refused() {
        let dir = TempDir::new("unit");
        let a = ClusterTls::self_signed(&dir.0, &["localhost", "127.0.0.1"]).unwrap();
        let cert = dir.0.join("cert.pem");
        let b =
            ClusterTls::from_pem_files(&cert, dir.0.join("key.pem"), &cert, "localhost").unwrap();
        assert!(handshake(&a, &b).await, "same certificate both ways");
        assert!(handshake(&b, &a).await);

        let by_ip =
            ClusterTls::from_pem_files(&cert, dir.0.join("key.pem"), &cert, "127.0.0.1").unwrap();
        assert!(handshake(&a, &by_ip).await, "an IP address name works too");

        let wrong_name =
            ClusterTls::from_pem_files(&cert, dir.0.join("key.pem"), &cert, "elsewhere").unwrap();
        assert!(
            !handshake(&a, &wrong_name).await,
            "a name the certificate lacks"
        );

        let other_dir = TempDir::new("other");
        let other = ClusterTls::self_signed(&other_dir.0, &["localhost"]).unwrap();
        assert!(!handshake(&a, &other).await, "neither trusts the other");
        let other_cert = other_dir.0.join("cert.pem");
        let other_key = other_dir.0.join("key.pem");
        // Trusts our CA, but presents a certificate of another one.
        let foreign =
            ClusterTls::from_pem_files(&other_cert, &other_key, &cert, "localhost").unwrap();
        assert!(!handshake(&a, &foreign).await, "as a client");
        assert!(!handshake(&foreign, &b).await, "as a server");

        // A client that trusts the server but presents no certificate.
        let roots = {
            let mut r = RootCertStore::empty();
            r.add(read_certs(&cert).unwrap().remove(0)).unwrap();
            r
        };
        let anonymous = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let anonymous = ClusterTls::new(
            a.acceptor().clone(),
            TlsConnector::from(Arc::new(anonymous)),
            ServerName::try_from("localhost").unwrap(),
        );
        assert!(
            !handshake(&a, &anonymous).await,
            "a client without a certificate"
        );
    }

    #[test]
    fn the_key_is_owner_only_and_errors_name_the_file() {
        let dir = TempDir::new("perm");
        ClusterTls::self_signed(&dir.0, &["localhost"]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.0.join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key.pem is {mode:o}");
        }
        let missing = dir.0.join("missing.pem");
        let err = ClusterTls::from_pem_files(&missing, &missing, &missing, "localhost")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        assert!(ClusterTls::self_signed(&dir.0, &[]).is_err());
    }
}
