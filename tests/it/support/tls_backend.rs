//! Test fixture for `https://` backends: certificates made at test time with rcgen ([`Pki`]: a
//! CA that issues server and client certificates, written as PEM files) and [`TlsBackend`], a
//! hyper 1 HTTP/1.1 server over tokio-rustls on `127.0.0.1:0` that counts TCP accepts and
//! completed handshakes, records the SNI each client sent and whether it showed a certificate,
//! and can close its idle connections (with a TLS `close_notify`).
//!
//! It answers `/health` with 200 `ok`, and every other request with 200 and the body
//! `NAME METHOD PATH host=HOST` (after reading the request body).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::temp_dir;

/// A certificate authority made for one test, with its files in a temp directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    /// The CA certificate, PEM.
    pub ca_path: PathBuf,
}

/// A certificate and its key, in memory and as PEM files.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{tag} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("write CA");
        Pki {
            dir,
            ca,
            ca_key,
            ca_path,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), files named `file`.
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (for mutual TLS), files named `file`.
    pub fn client(&self, file: &str) -> Issued {
        self.issue(file, &["director-client"], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        let cert_path = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Issued {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_path,
            key_path,
        }
    }

    /// A path in the temp directory, for files a test writes itself.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

#[derive(Default)]
struct Counters {
    accepts: AtomicU64,
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    open: AtomicU64,
    requests: AtomicU64,
    sni: Mutex<Vec<Option<String>>>,
    client_certs: Mutex<Vec<bool>>,
}

/// A running HTTPS backend; dropping it stops the server and its connections.
pub struct TlsBackend {
    addr: SocketAddr,
    counters: Arc<Counters>,
    close_idle: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl TlsBackend {
    /// Serves `cert` on `127.0.0.1:0`; with `client_ca`, only to clients that show a
    /// certificate that CA issued.
    pub async fn start(name: &str, cert: &Issued, client_ca: Option<&Pki>) -> TlsBackend {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert, client_ca));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let counters = Arc::new(Counters::default());
        let (close_idle, _) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            name.to_owned(),
            counters.clone(),
            close_idle.clone(),
        ));
        TlsBackend {
            addr,
            counters,
            close_idle,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TCP connections accepted.
    pub fn accepts(&self) -> u64 {
        self.counters.accepts.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.counters.handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (on this side).
    pub fn failed_handshakes(&self) -> u64 {
        self.counters.failed_handshakes.load(Ordering::SeqCst)
    }

    /// Connections open now (accepted and not yet closed).
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// HTTP requests served, `/health` included.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// The SNI of each completed handshake, in order.
    pub fn sni(&self) -> Vec<Option<String>> {
        self.counters.sni.lock().unwrap().clone()
    }

    /// Whether the client showed a certificate, for each completed handshake.
    pub fn client_certs(&self) -> Vec<bool> {
        self.counters.client_certs.lock().unwrap().clone()
    }

    /// Closes every connection that is idle now, or becomes idle (between requests), with a
    /// TLS `close_notify`.
    pub fn close_idle_connections(&self) {
        self.close_idle.send_modify(|n| *n += 1);
    }
}

/// The server side of `cert`, ALPN `http/1.1`; with `client_ca`, for clients that show a
/// certificate that CA issued only.
pub fn server_config(cert: &Issued, client_ca: Option<&Pki>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pki) => {
            let mut roots = RootCertStore::empty();
            roots.add(pki.ca.der().clone()).expect("client CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    name: String,
    counters: Arc<Counters>,
    close_idle: watch::Sender<u64>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            Some(_) = conns.join_next() => continue,
        };
        let Ok((tcp, _)) = accepted else { continue };
        counters.accepts.fetch_add(1, Ordering::SeqCst);
        counters.open.fetch_add(1, Ordering::SeqCst);
        let (acceptor, name, counters) = (acceptor.clone(), name.clone(), counters.clone());
        let mut close = close_idle.subscribe();
        conns.spawn(async move {
            let _open = OpenGuard(counters.clone());
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(_) => {
                    counters.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            {
                let (_, session) = tls.get_ref();
                counters
                    .sni
                    .lock()
                    .unwrap()
                    .push(session.server_name().map(str::to_owned));
                counters
                    .client_certs
                    .lock()
                    .unwrap()
                    .push(session.peer_certificates().is_some());
            }
            counters.handshakes.fetch_add(1, Ordering::SeqCst);
            let service_counters = counters.clone();
            let service = service_fn(move |req| answer(req, name.clone(), service_counters.clone()));
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            close.mark_unchanged();
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    Ok(()) = close.changed() => conn.as_mut().graceful_shutdown(),
                }
            }
        });
    }
}

/// Counts a connection open for as long as its task lives.
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(
    req: Request<Incoming>,
    name: String,
    counters: Arc<Counters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let (head, body) = req.into_parts();
    let _ = body.collect().await;
    let text = if head.uri.path() == "/health" {
        "ok".to_owned()
    } else {
        let host = head
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        format!("{name} {} {} host={host}", head.method, head.uri.path())
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}
