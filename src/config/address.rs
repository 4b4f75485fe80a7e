//! Address syntax of `config.yaml` (control plane): backend URLs and listener addresses.
//!
//! Owns [`parse_backend_url`] (used for `backends[].url` and for a route's `backend:`) and
//! [`parse_listen`] (`proxy.listen`). Pure string parsing; no name resolution, no I/O.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::model::{BackendUrl, Endpoint, ListenAddr, Protocol};

/// The port of an `http://` URL without one.
const DEFAULT_HTTP_PORT: u16 = 80;
/// The port of an `https://` URL without one.
const DEFAULT_HTTPS_PORT: u16 = 443;

/// Parses a backend URL: `http://host[:port]`, `https://host[:port]`, `http://[v6]:port`,
/// `http+unix:///abs/path.sock`, `fastcgi://host:port` or `fastcgi+unix:///abs/path.sock`.
///
/// An `http` port defaults to 80, an `https` one to 443; FastCGI has no well-known port, so it
/// must be given. A trailing `/` after the authority is tolerated, any other path, a query, a
/// fragment or user info is an error. IPv6 hosts are stored without brackets. TLS is for HTTP
/// over TCP only: `https+unix` and FastCGI over TLS are not schemes. The scheme is
/// case-insensitive; [`BackendUrl::text`] keeps the URL exactly as written.
pub fn parse_backend_url(text: &str) -> Result<BackendUrl, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "`{text}` is not a backend URL; expected http://host:port, https://host:port, \
             http+unix:///path.sock, fastcgi://host:port or fastcgi+unix:///path.sock"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let (protocol, endpoint, tls) = match scheme.as_str() {
        "http" => (Protocol::Http, parse_tcp(rest, Some(DEFAULT_HTTP_PORT))?, false),
        "https" => (Protocol::Http, parse_tcp(rest, Some(DEFAULT_HTTPS_PORT))?, true),
        "http+unix" => (Protocol::Http, parse_unix(&scheme, rest)?, false),
        "fastcgi" => (Protocol::FastCgi, parse_tcp(rest, None)?, false),
        "fastcgi+unix" => (Protocol::FastCgi, parse_unix(&scheme, rest)?, false),
        _ => {
            return Err(format!(
                "unsupported URL scheme `{scheme}` (expected http, https, http+unix, fastcgi or \
                 fastcgi+unix)"
            ))
        }
    };
    Ok(BackendUrl {
        protocol,
        endpoint,
        tls,
        text: text.to_owned(),
    })
}

/// The part of an `http://` or `fastcgi://` URL after the scheme; `default_port` when the URL
/// may leave it out.
fn parse_tcp(rest: &str, default_port: Option<u16>) -> Result<Endpoint, String> {
    if rest.contains(['?', '#']) {
        return Err("a query or fragment is not allowed in a backend URL".to_owned());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !path.is_empty() && path != "/" {
        return Err(format!(
            "a path (`{path}`) is not allowed in a backend URL; use http://host:port"
        ));
    }
    if authority.contains('@') {
        return Err("user info (`user@`) is not allowed in a backend URL".to_owned());
    }
    let (host, port) = split_host_port(authority, default_port)?;
    Ok(Endpoint::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back without brackets.
fn split_host_port(authority: &str, default_port: Option<u16>) -> Result<(&str, u16), String> {
    let default_port = || default_port.ok_or_else(|| format!("`{authority}` needs a port, e.g. :9000"));
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, tail) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("missing `]` in `{authority}`"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not a valid IPv6 address"));
        }
        let port = match tail {
            "" => default_port()?,
            _ => match tail.strip_prefix(':') {
                Some(port) => parse_port(port)?,
                None => return Err(format!("expected `:port` after `]`, found `{tail}`")),
            },
        };
        return Ok((host, port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            return Err("an IPv6 address must be written in brackets, e.g. http://[::1]:8080".to_owned())
        }
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, default_port()?),
    };
    if host.is_empty() {
        return Err("the backend URL has no host".to_owned());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!("`{host}` is not a valid host name or IP address"));
    }
    Ok((host, port))
}

/// A TCP port: 1..=65535, digits only.
fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Err("missing port number after `:`".to_owned());
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not allowed".to_owned()),
        Ok(n) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("`{port}` is not a valid port (1-65535)")),
    }
}

/// The part of an `http+unix://` or `fastcgi+unix://` URL after the scheme: an absolute socket
/// path.
fn parse_unix(scheme: &str, rest: &str) -> Result<Endpoint, String> {
    if !rest.starts_with('/') {
        return Err(format!(
            "{scheme} needs an absolute socket path, e.g. {scheme}:///run/app.sock"
        ));
    }
    if rest == "/" {
        return Err(format!("{scheme} URL has no socket path"));
    }
    Ok(Endpoint::Unix(PathBuf::from(rest)))
}

/// Parses one `proxy.listen` entry: `unix:/path` or an IP socket address (`0.0.0.0:8080`,
/// `[::]:8080`). Port 0 (any free port) is allowed.
pub fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("missing socket path after `unix:`".to_owned());
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    text.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| {
        format!(
            "`{text}` is not a listen address; expected IP:PORT (\"0.0.0.0:8080\", \"[::]:8080\") or unix:/path"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(url: &str) -> (String, u16) {
        match parse_backend_url(url) {
            Ok(BackendUrl {
                endpoint: Endpoint::Tcp { host, port },
                protocol: Protocol::Http,
                tls: false,
                text,
            }) => {
                assert_eq!(text, url);
                (host, port)
            }
            other => panic!("{url}: {other:?}"),
        }
    }

    fn err(url: &str) -> String {
        match parse_backend_url(url) {
            Ok(u) => panic!("{url} should be rejected, got {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn http_forms() {
        assert_eq!(tcp("http://10.0.0.1:8080"), ("10.0.0.1".into(), 8080));
        assert_eq!(tcp("http://10.0.0.1"), ("10.0.0.1".into(), 80));
        assert_eq!(tcp("http://10.0.0.1:8080/"), ("10.0.0.1".into(), 8080));
        assert_eq!(tcp("http://name.example:80"), ("name.example".into(), 80));
        assert_eq!(tcp("HTTP://app_1.local:9000"), ("app_1.local".into(), 9000));
    }

    #[test]
    fn ipv6_host_is_stored_without_brackets() {
        assert_eq!(tcp("http://[::1]:8080"), ("::1".into(), 8080));
        assert_eq!(tcp("http://[fe80::1]"), ("fe80::1".into(), 80));
        assert!(err("http://::1:8080").contains("brackets"));
        assert!(err("http://[::1:8080").contains("missing `]`"));
        assert!(err("http://[zz::1]:80").contains("not a valid IPv6"));
        assert!(err("http://[::1]8080").contains("expected `:port`"));
    }

    #[test]
    fn unix_socket() {
        let u = parse_backend_url("http+unix:///run/app02.sock").expect("valid");
        assert_eq!(u.endpoint, Endpoint::Unix(PathBuf::from("/run/app02.sock")));
        assert_eq!(u.text, "http+unix:///run/app02.sock");
        assert!(err("http+unix://run/app.sock").contains("http+unix needs an absolute"));
        assert!(err("http+unix:///").contains("no socket path"));
    }

    #[test]
    fn fastcgi_forms() {
        let u = parse_backend_url("fastcgi://10.0.0.3:9000").expect("valid");
        assert_eq!(u.protocol, Protocol::FastCgi);
        assert_eq!(
            u.endpoint,
            Endpoint::Tcp {
                host: "10.0.0.3".into(),
                port: 9000
            }
        );
        let u = parse_backend_url("FastCGI+unix:///run/php-fpm.sock").expect("valid");
        assert_eq!(u.protocol, Protocol::FastCgi);
        assert_eq!(u.endpoint, Endpoint::Unix(PathBuf::from("/run/php-fpm.sock")));
        assert!(err("fastcgi://10.0.0.3").contains("needs a port"));
        assert!(err("fastcgi://[::1]").contains("needs a port"));
        assert!(err("fastcgi+unix://run/php.sock").contains("fastcgi+unix needs an absolute"));
        assert_eq!(
            parse_backend_url("http://[::1]:80").expect("valid").protocol,
            Protocol::Http
        );
    }

    #[test]
    fn https_forms() {
        let u = parse_backend_url("HTTPS://app.example").expect("valid");
        assert_eq!((u.protocol, u.tls), (Protocol::Http, true));
        assert_eq!(
            u.endpoint,
            Endpoint::Tcp {
                host: "app.example".into(),
                port: 443
            }
        );
        let u = parse_backend_url("https://[::1]:8443/").expect("valid");
        assert_eq!(
            u.endpoint,
            Endpoint::Tcp {
                host: "::1".into(),
                port: 8443
            }
        );
        assert!(!parse_backend_url("http://h").expect("valid").tls);
        assert!(err("https://h/app").contains("path"));
        assert!(err("https+unix:///run/app.sock").contains("unsupported URL scheme `https+unix`"));
        assert!(err("fastcgi+tls://h:9000").contains("unsupported URL scheme"));
    }

    #[test]
    fn rejected_forms() {
        assert!(err("ftp://x").contains("unsupported URL scheme `ftp`"));
        assert!(err("10.0.0.1:8080").contains("not a backend URL"));
        assert!(err("http://10.0.0.1:8080/app").contains("path (`/app`)"));
        assert!(err("http://10.0.0.1/?a=1").contains("query"));
        assert!(err("http://user:pw@10.0.0.1:80").contains("user info"));
        assert!(err("http://:80").contains("no host"));
        assert!(err("http://").contains("no host"));
        assert!(err("http://a b:80").contains("not a valid host"));
        assert!(err("http://h:").contains("missing port"));
        assert!(err("http://h:0").contains("port 0"));
        assert!(err("http://h:70000").contains("not a valid port"));
        assert!(err("http://h:+80").contains("not a valid port"));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("0.0.0.0:8080"),
            Ok(ListenAddr::Tcp("0.0.0.0:8080".parse().expect("addr")))
        );
        assert_eq!(
            parse_listen("[::]:8080"),
            Ok(ListenAddr::Tcp("[::]:8080".parse().expect("addr")))
        );
        assert_eq!(
            parse_listen("unix:/run/director.sock"),
            Ok(ListenAddr::Unix(PathBuf::from("/run/director.sock")))
        );
        assert!(parse_listen("unix:").is_err());
        assert!(parse_listen("localhost:8080")
            .expect_err("names are not addresses")
            .contains("not a listen address"));
        assert!(parse_listen("8080").is_err());
    }
}
