//! HTTP/2 over TLS: a TLS listener offers ALPN `h2` before `http/1.1` (`proxy.http2`, on by
//! default), and a client that picks `h2` is served through the same pipeline as HTTP/1.1 —
//! `X-Forwarded-Proto: https` to the backend, the listener's HSTS on the answer; with
//! `http2: false` the listener offers `http/1.1` only. `curl --http2` (OpenSSL) checks the same
//! from an independent client.

use crate::support;
use crate::tls::{Extras, TlsSetup};

use std::time::Duration;

use support::tls::{connect_offering, make_cert};

const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

#[tokio::test]
async fn a_tls_client_that_offers_h2_is_served_over_http2() {
    let cert = make_cert(&["p.test"]);
    let extras = Extras {
        listener: ", hsts: { max_age: 600s }".to_owned(),
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("p", &cert)], extras).await;
    let tls = connect_offering(setup.listener(0), Some("p.test"), &[], &[H2, HTTP1])
        .await
        .expect("tls connect");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(H2), "ALPN picks h2");
    let (client, conn) = h2::client::handshake(tls)
        .await
        .expect("HTTP/2 handshake over TLS");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // Several streams at once on the one connection.
    let mut answers = Vec::new();
    for _ in 0..8 {
        let request = http02::Request::get("https://p.test/headers")
            .body(())
            .expect("request");
        let mut client = client.clone().ready().await.expect("ready");
        let (response, _) = client.send_request(request, true).expect("send");
        answers.push(response);
    }
    for response in answers {
        let response = tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .expect("an answer within 10 s")
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=600"),
            "the listener's HSTS reaches HTTP/2 answers"
        );
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("x-forwarded-proto: https"), "{text}");
        // `:authority` is the backend's Host.
        assert!(text.contains("host: p.test"), "{text}");
    }
}

#[tokio::test]
async fn http2_false_keeps_tls_listeners_to_http1() {
    let cert = make_cert(&["p.test"]);
    let extras = Extras {
        proxy: "  http2: false\n".to_owned(),
        ..Extras::default()
    };
    let setup = TlsSetup::start(&[("p", &cert)], extras).await;
    let tls = connect_offering(setup.listener(0), Some("p.test"), &[], &[H2, HTTP1])
        .await
        .expect("tls connect");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(HTTP1));
    // A client that offers h2 alone gets no protocol it asked for: rustls refuses the
    // handshake (no_application_protocol) rather than picking one.
    let refused = connect_offering(setup.listener(0), Some("p.test"), &[], &[H2]).await;
    assert!(
        refused.is_err(),
        "an h2-only client is refused when HTTP/2 is off"
    );
}

#[tokio::test]
async fn curl_speaks_http2_over_tls() {
    let cert = make_cert(&["p.test"]);
    let setup = TlsSetup::start(&[("p", &cert)], Extras::default()).await;
    let addr = setup.listener(0);
    let url = format!("https://p.test:{}/headers", addr.port());
    let resolve = format!("p.test:{}:{}", addr.port(), addr.ip());
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--http2",
            "--resolve",
            &resolve,
            "-w",
            "\nversion=%{http_version}\n",
            &url,
        ])
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("version=2\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
}
