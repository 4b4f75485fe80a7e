//! HTTP header rules for a proxy: hop-by-hop headers, `Connection` tokens, `X-Forwarded-*`
//! and `Via` (RFC 9110 §7.6). Works on names and raw values so either `http` crate version
//! can use it.

/// The `Via` entry this proxy adds to requests and responses.
pub const VIA: &str = "1.1 director";

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1), plus
/// the legacy ones proxies commonly drop.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether `name` (in any letter case) is hop-by-hop by definition.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Whether `name` is listed in any of the `Connection` header values (so hop-by-hop too).
pub fn listed_in_connection<'a>(name: &[u8], connection: impl IntoIterator<Item = &'a [u8]>) -> bool {
    connection.into_iter().any(|value| {
        value
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// Whether any `Connection` value names a field beyond the hop-by-hop ones and `close`: the
/// usual `keep-alive` or `close` names nothing more to drop, so the per-field check of
/// [`listed_in_connection`] can be skipped.
pub fn connection_names_fields<'a>(connection: impl IntoIterator<Item = &'a [u8]>) -> bool {
    connection.into_iter().any(|value| {
        value.split(|&b| b == b',').any(|token| {
            let token = token.trim_ascii();
            !token.is_empty()
                && !token.eq_ignore_ascii_case(b"close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| token.eq_ignore_ascii_case(h.as_bytes()))
        })
    })
}

/// Headers the proxy sets itself on the upstream request, replacing what the client sent.
pub fn is_replaced_upstream(name: &str) -> bool {
    matches!(name, "x-forwarded-proto" | "x-forwarded-host" | "expect")
}

/// Appends `client` to an existing `X-Forwarded-For` list.
pub fn forwarded_for(existing: Option<&[u8]>, client: &str) -> Vec<u8> {
    append_to_list(existing, client.as_bytes())
}

/// Appends our entry to an existing `Via` value.
pub fn via(existing: Option<&[u8]>) -> Vec<u8> {
    via_as(existing, VIA.as_bytes())
}

/// Appends `entry` (`1.1 <pseudonym>`) to an existing `Via` value.
pub fn via_as(existing: Option<&[u8]>, entry: &[u8]) -> Vec<u8> {
    append_to_list(existing, entry)
}

/// The `Via` entry for `pseudonym`.
pub fn via_entry(pseudonym: &str) -> String {
    format!("1.1 {pseudonym}")
}

/// `existing, item` for a comma-separated header list, or just `item`.
fn append_to_list(existing: Option<&[u8]>, item: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(existing.map_or(0, <[u8]>::len) + 2 + item.len());
    put_list(&mut out, existing, item);
    out
}

/// Writes `existing, item` (or just `item`) into `out`, without a temporary buffer.
pub fn put_list(out: &mut impl bytes::BufMut, existing: Option<&[u8]>, item: &[u8]) {
    if let Some(prev) = existing.map(<[u8]>::trim_ascii).filter(|prev| !prev.is_empty()) {
        out.put_slice(prev);
        out.put_slice(b", ");
    }
    out.put_slice(item);
}

/// Writes every existing value of a comma-separated list header (several header lines are one
/// list, RFC 9110 §5.3), then `item`.
pub fn put_list_all<'a>(out: &mut impl bytes::BufMut, existing: impl Iterator<Item = &'a [u8]>, item: &[u8]) {
    for prev in existing.map(<[u8]>::trim_ascii).filter(|prev| !prev.is_empty()) {
        out.put_slice(prev);
        out.put_slice(b", ");
    }
    out.put_slice(item);
}

/// Response headers (in any letter case) that are instructions from a backend to director and
/// never reach a client, whether or not the cluster serves files for them.
pub fn is_internal_response(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"x-sendfile") || name.eq_ignore_ascii_case(b"x-accel-redirect")
}

/// Whether a response to `method` with `status` has no body whatever its headers say.
pub fn response_has_no_body(is_head: bool, status: u16) -> bool {
    is_head || (100..200).contains(&status) || status == 204 || status == 304
}

/// Whether a request head asks to switch protocols in a way director relays as a tunnel
/// (RFC 9110 §7.8): `Connection` lists `upgrade` and not `close`, and an `Upgrade` value names
/// a protocol other than `h2c` (HTTP/2 by upgrade is a conversation with director itself, not
/// with the backend; HAProxy drops it too). The vendored actix-http reads the client's bytes
/// after such a head as one stream (`vendor/README.md`), the tunnel's client side.
pub fn requests_upgrade<'a>(
    connection: impl IntoIterator<Item = &'a [u8]>,
    upgrade: impl IntoIterator<Item = &'a [u8]>,
) -> bool {
    let mut asks = false;
    for value in connection {
        for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                return false;
            }
            asks |= token.eq_ignore_ascii_case(b"upgrade");
        }
    }
    asks && upgrade
        .into_iter()
        .map(<[u8]>::trim_ascii)
        .any(is_tunnelled_protocol)
}

/// Whether an `Upgrade` value names a protocol director tunnels: anything but nothing and
/// `h2c`. The vendored actix-http decoder applies the same rule (`vendor/README.md`).
fn is_tunnelled_protocol(value: &[u8]) -> bool {
    !value.is_empty() && !value.eq_ignore_ascii_case(b"h2c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_need_the_connection_token_and_a_protocol() {
        let ask = |connection: &[&[u8]], upgrade: &[&[u8]]| {
            requests_upgrade(connection.iter().copied(), upgrade.iter().copied())
        };
        assert!(ask(&[b"Upgrade"], &[b"websocket"]));
        assert!(ask(&[b"keep-alive, upgrade"], &[b"WebSocket"]));
        assert!(ask(&[b"keep-alive", b" upgrade "], &[b"my-proto/2"]));
        assert!(!ask(&[b"keep-alive"], &[b"websocket"]), "no Connection token");
        assert!(!ask(&[b"upgrade"], &[]), "no Upgrade header");
        assert!(!ask(&[b"upgrade"], &[b" "]), "empty Upgrade header");
        assert!(!ask(&[b"upgrade, close"], &[b"websocket"]), "close wins");
        assert!(!ask(&[b"upgrade", b"close"], &[b"websocket"]), "close wins");
        assert!(
            !ask(&[b"Upgrade, HTTP2-Settings"], &[b"h2c"]),
            "h2c is not relayed"
        );
        assert!(ask(&[b"upgrade"], &[b"h2c", b"websocket"]));
    }

    #[test]
    fn hop_by_hop_names() {
        for n in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "te",
            "trailer",
        ] {
            assert!(is_hop_by_hop(n.as_bytes()), "{n}");
        }
        assert!(is_hop_by_hop(b"Keep-Alive"));
        assert!(!is_hop_by_hop(b"content-length"));
        assert!(!is_hop_by_hop(b"host"));
    }

    #[test]
    fn connection_tokens_are_matched_case_insensitively() {
        let values: [&[u8]; 2] = [b"keep-alive, X-Secret", b"close"];
        assert!(listed_in_connection(b"x-secret", values));
        assert!(listed_in_connection(b"close", values));
        assert!(!listed_in_connection(b"x-other", values));
        assert!(!listed_in_connection(b"x-secret", []));
        assert!(connection_names_fields(values));
        assert!(!connection_names_fields([b"keep-alive".as_slice()]));
        assert!(!connection_names_fields([
            b"Close, Upgrade".as_slice(),
            b" keep-alive ,".as_slice()
        ]));
        assert!(connection_names_fields([b"keep-alive, X-Trace".as_slice()]));
    }

    #[test]
    fn forwarded_for_and_via_append() {
        assert_eq!(forwarded_for(None, "10.0.0.1"), b"10.0.0.1");
        assert_eq!(
            forwarded_for(Some(b" 1.2.3.4 "), "10.0.0.1"),
            b"1.2.3.4, 10.0.0.1"
        );
        assert_eq!(via(Some(b"1.0 fred")), b"1.0 fred, 1.1 director");
        assert_eq!(via(Some(b"")), b"1.1 director");
    }

    #[test]
    fn list_headers_merge_every_line() {
        let mut out = Vec::new();
        let lines: [&[u8]; 3] = [b"1.1.1.1", b" ", b"2.2.2.2, 3.3.3.3"];
        put_list_all(&mut out, lines.into_iter(), b"10.0.0.1");
        assert_eq!(out, b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1");
        let mut out = Vec::new();
        put_list_all(&mut out, std::iter::empty(), b"10.0.0.1");
        assert_eq!(out, b"10.0.0.1");
    }

    #[test]
    fn bodiless_responses() {
        assert!(response_has_no_body(true, 200));
        assert!(response_has_no_body(false, 204));
        assert!(response_has_no_body(false, 304));
        assert!(response_has_no_body(false, 101));
        assert!(!response_has_no_body(false, 200));
    }
}
