//! TLS termination on a listener: the certificates it serves, chosen by SNI, and how they are
//! swapped when their files change.
//!
//! A [`CertStore`] holds one TLS listener's certificates (`tls.certificates` of its config) as
//! an immutable [`CertSet`] behind an `ArcSwap`: every handshake picks from the set in force
//! when it starts, and [`CertStore::reload`] swaps in a new set for the handshakes after it,
//! so connections already open are never touched. A set that fails to load (a file missing,
//! unparsable, a key that does not belong to its certificate) is not swapped in: the old one
//! stays, and the error is logged and kept for `/api/v1/status` ([`CertStore::status`]).
//!
//! SNI: an exact name of a certificate (SAN, else CN) first, then a wildcard `*.example.com`
//! for a name one label below `example.com`, else the first certificate (also for clients that
//! send no SNI). TLS 1.3 and 1.2 with rustls' ring provider, its cipher suites in the server's
//! order ([`suite_preference`]); ALPN offers [`ALPN_PROTOCOLS`].
//!
//! Control plane, except [`SniResolver::resolve`] (once per handshake: two hash lookups).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde_json::{json, Value};

use crate::config::certificates::{load_certificate, LoadedCertificate};
use crate::config::{CertificateFiles, TlsConfig};

/// The protocols offered in ALPN, most preferred first, when HTTP/2 is off (the server offers
/// [`ALPN_H2`] first when it is on). What each means once negotiated is decided in one place,
/// where the server hands a finished handshake to its HTTP service.
pub const ALPN_PROTOCOLS: &[&[u8]] = &[ALPN_HTTP1];

/// ALPN's name of HTTP/2 (offered besides HTTP/1.1 when HTTP/2 is on; see `server`).
pub const ALPN_H2: &[u8] = b"h2";

/// ALPN's name of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The certificates of one TLS listener, reloadable.
pub struct CertStore {
    /// The listener's address, for logs and the status.
    listener: String,
    files: Vec<CertificateFiles>,
    current: ArcSwap<CertSet>,
    last_reload: Mutex<Option<ReloadOutcome>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("listener", &self.listener)
            .finish()
    }
}

/// The result of the last reload of a store's files.
#[derive(Debug, Clone)]
struct ReloadOutcome {
    at: SystemTime,
    /// Why the files on disk are not served; `None` when they are.
    error: Option<String>,
}

/// Certificates loaded together, with their names indexed.
struct CertSet {
    certs: Vec<LoadedCertificate>,
    exact: HashMap<String, usize>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, usize>,
    loaded_at: SystemTime,
}

impl CertSet {
    fn new(certs: Vec<LoadedCertificate>) -> CertSet {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            for name in &cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(i),
                    None => exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        CertSet {
            certs,
            exact,
            wildcard,
            loaded_at: SystemTime::now(),
        }
    }

    /// The certificate for the name a client asked for (`None`: it sent no SNI).
    fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let index = server_name.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        &self.certs[index.copied().unwrap_or(0)].key
    }
}

/// Loads every certificate of `files`, or says which one failed and why.
fn load_all(files: &[CertificateFiles]) -> Result<CertSet, String> {
    let mut certs = Vec::with_capacity(files.len());
    for (i, pair) in files.iter().enumerate() {
        certs.push(load_certificate(pair).map_err(|e| format!("certificates[{i}].{e}"))?);
    }
    if certs.is_empty() {
        return Err("no certificates".to_owned());
    }
    Ok(CertSet::new(certs))
}

impl CertStore {
    /// Loads the certificates of `tls` for the listener at `listener`.
    pub fn load(listener: String, tls: &TlsConfig) -> Result<Arc<CertStore>, String> {
        let set = load_all(&tls.certificates)?;
        Ok(Arc::new(CertStore {
            listener,
            files: tls.certificates.clone(),
            current: ArcSwap::from_pointee(set),
            last_reload: Mutex::new(None),
        }))
    }

    /// The listener's address.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The configured certificate and key files.
    pub fn files(&self) -> &[CertificateFiles] {
        &self.files
    }

    /// Reads the files again and serves them to new handshakes; a set that fails to load
    /// leaves the one in force, and the error is logged and kept for the status.
    pub fn reload(&self) -> Result<(), String> {
        let outcome = load_all(&self.files);
        let error = match outcome {
            Ok(set) => {
                self.current.store(Arc::new(set));
                log::info!("tls {}: certificates reloaded", self.listener);
                None
            }
            Err(e) => {
                log::error!(
                    "tls {}: certificates not reloaded, the previous ones stay in use: {e}",
                    self.listener
                );
                Some(e)
            }
        };
        *self.last_reload.lock() = Some(ReloadOutcome {
            at: SystemTime::now(),
            error: error.clone(),
        });
        error.map_or(Ok(()), Err)
    }

    /// What `/api/v1/status` shows of this listener: the certificates served (files, names,
    /// expiry, which is the default) and the last reload's outcome.
    pub fn status(&self) -> Value {
        let set = self.current.load();
        let certificates: Vec<Value> = set
            .certs
            .iter()
            .zip(&self.files)
            .enumerate()
            .map(|(i, (cert, files))| {
                json!({
                    "cert": files.cert,
                    "key": files.key,
                    "names": cert.names,
                    "not_after": unix_seconds(cert.not_after),
                    "default": i == 0,
                })
            })
            .collect();
        let last_reload = self.last_reload.lock().clone().map(|r| {
            json!({
                "at": unix_seconds(r.at),
                "ok": r.error.is_none(),
                "error": r.error,
            })
        });
        json!({
            "listener": self.listener,
            "loaded_at": unix_seconds(set.loaded_at),
            "certificates": certificates,
            "last_reload": last_reload,
        })
    }

    /// The rustls configuration of a listener serving this store: TLS 1.3 and 1.2, no client
    /// certificates, the certificate picked by SNI, ALPN as [`ALPN_PROTOCOLS`], session
    /// tickets.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.sort_by_key(suite_preference);
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver(self.clone())));
        // The server's order (AES-128-GCM first), as BoringSSL and Go's crypto/tls choose, not
        // the client's: OpenSSL-based clients (curl, wrk, most libraries) put AES-256-GCM with
        // SHA-384 first, and ring computes SHA-512 without vector instructions on non-Intel
        // CPUs, which made it about a tenth of a resumed handshake's CPU time there. SHA-256
        // uses the CPU's SHA extensions where it has them. Every suite stays on offer.
        config.ignore_client_order = true;
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        // Stateless session tickets (keys rotated every 6 hours, per process), as nginx and
        // HAProxy issue by default: a returning client resumes without a full handshake, also
        // past the 256 sessions of the in-memory cache rustls keeps for session IDs.
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        Ok(Arc::new(config))
    }
}

/// Where a cipher suite goes in the server's order: AES-128-GCM, then AES-256-GCM, then
/// ChaCha20-Poly1305, TLS 1.3 before TLS 1.2 (the versions never compete: a handshake picks
/// its version first).
fn suite_preference(suite: &rustls::SupportedCipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 4,
        _ => 5,
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Picks the certificate of a handshake from its store's current set.
#[derive(Debug)]
pub struct SniResolver(Arc<CertStore>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load().pick(client_hello.server_name()).clone())
    }
}

/// The stores of every TLS listener (proxy and admin), for the status and the file watcher.
pub type TlsListeners = Arc<Vec<Arc<CertStore>>>;

/// Every TLS listener's status, for `/api/v1/status`.
pub fn status(listeners: &[Arc<CertStore>]) -> Value {
    Value::Array(listeners.iter().map(|store| store.status()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> LoadedCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        let signing = rustls::crypto::ring::sign::any_supported_type(
            &rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        LoadedCertificate {
            key: Arc::new(CertifiedKey::new(vec![der], signing)),
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after: SystemTime::now(),
        }
    }

    #[test]
    fn names_pick_exact_then_wildcard_then_the_first() {
        let set = CertSet::new(vec![
            cert(&["default.test"]),
            cert(&["a.example.com"]),
            cert(&["*.example.com"]),
        ]);
        let which = |sni: Option<&str>| {
            let picked = set.pick(sni);
            set.certs
                .iter()
                .position(|c| Arc::ptr_eq(&c.key, picked))
                .unwrap()
        };
        assert_eq!(which(Some("a.example.com")), 1);
        assert_eq!(which(Some("A.Example.COM.")), 1);
        assert_eq!(which(Some("b.example.com")), 2);
        assert_eq!(which(Some("x.b.example.com")), 0, "a wildcard covers one label");
        assert_eq!(which(Some("example.com")), 0);
        assert_eq!(which(Some("other.test")), 0);
        assert_eq!(which(None), 0);
    }
}
