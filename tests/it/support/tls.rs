//! TLS fixtures: certificates made with rcgen at test time (written as PEM files, optionally
//! behind a Kubernetes-style `..data` symlink that [`CertDir::swap`] re-points), and a
//! tokio-rustls client that accepts any certificate so that a test can look at which one the
//! server presented, with or without SNI, over TLS 1.2 or 1.3.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::SupportedProtocolVersion;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Reply;

/// A self-signed certificate and its key, as PEM, and the certificate's DER (what a client
/// sees).
#[derive(Clone)]
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// A certificate for `names` (DNS names, `*.x` wildcards allowed).
pub fn make_cert(names: &[&str]) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen");
    TestCert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.key_pair.serialize_pem(),
        der: certified.cert.der().to_vec(),
    }
}

/// Certificate files in a directory as Kubernetes mounts a secret: `<name>.pem` and
/// `<name>.key` are symlinks through `..data`, which points at a generation directory.
pub struct CertDir {
    pub dir: PathBuf,
    generation: u32,
}

impl CertDir {
    /// Writes the first generation with `certs` (name, certificate).
    pub fn new(dir: &Path, certs: &[(&str, &TestCert)]) -> CertDir {
        let mut this = CertDir {
            dir: dir.to_owned(),
            generation: 0,
        };
        this.swap(certs);
        for (name, _) in certs {
            for ext in ["pem", "key"] {
                let link = dir.join(format!("{name}.{ext}"));
                std::os::unix::fs::symlink(format!("..data/{name}.{ext}"), link).expect("symlink");
            }
        }
        this
    }

    /// Writes a new generation and re-points `..data` at it in one rename (atomic).
    pub fn swap(&mut self, certs: &[(&str, &TestCert)]) {
        self.generation += 1;
        let generation = format!("..gen{}", self.generation);
        let target = self.dir.join(&generation);
        std::fs::create_dir(&target).expect("mkdir generation");
        for (name, cert) in certs {
            std::fs::write(target.join(format!("{name}.pem")), &cert.cert_pem).expect("write cert");
            std::fs::write(target.join(format!("{name}.key")), &cert.key_pem).expect("write key");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
    }

    /// The `{ cert, key }` YAML of certificate `name`.
    pub fn yaml(&self, name: &str) -> String {
        format!(
            "{{ cert: \"{}\", key: \"{}\" }}",
            self.dir.join(format!("{name}.pem")).display(),
            self.dir.join(format!("{name}.key")).display()
        )
    }
}

/// Connects to `addr` over TLS: SNI `sni` (none when `None`), only `versions` (all when
/// empty), offering ALPN `http/1.1`.
pub async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    connect_offering(addr, sni, versions, &[b"http/1.1"]).await
}

/// [`connect`], offering the ALPN protocols `alpn`.
pub async fn connect_offering(
    addr: SocketAddr,
    sni: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    connect_with(provider, addr, sni, versions, alpn).await
}

/// [`connect`] without SNI, offering only `suites`, in that order of preference.
pub async fn connect_suites(
    addr: SocketAddr,
    versions: &[&'static SupportedProtocolVersion],
    suites: &[rustls::SupportedCipherSuite],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::ring::default_provider()
    };
    connect_with(Arc::new(provider), addr, None, versions, &[b"http/1.1"]).await
}

async fn connect_with(
    provider: Arc<rustls::crypto::CryptoProvider>,
    addr: SocketAddr,
    sni: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let versions = match versions {
        [] => rustls::ALL_VERSIONS,
        some => some,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        // Every server certificate is accepted: the tests compare what was presented instead.
        .with_custom_certificate_verifier(director::config::accept_any_certificate(provider))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // An IP address as the server name sends no SNI.
    let name = match sni {
        Some(name) => ServerName::try_from(name.to_owned()).expect("a DNS name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The DER of the certificate the server presented on `stream`.
pub fn peer_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let (_, session) = stream.get_ref();
    let chain = session.peer_certificates().expect("a server certificate");
    chain[0].to_vec()
}

/// An HTTP/1.1 connection over `stream`.
pub async fn http(stream: TlsStream<TcpStream>) -> http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

pub use super::send;

/// One GET over a new TLS connection (SNI `sni`).
pub async fn get(addr: SocketAddr, sni: Option<&str>, path: &str, headers: &[(&str, &str)]) -> Reply {
    let stream = connect(addr, sni, &[]).await.expect("tls connect");
    send(&mut http(stream).await, "GET", path, headers, Bytes::new()).await
}
