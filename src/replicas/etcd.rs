//! A small client of etcd v3's JSON gateway (control plane, off the request path): the
//! key-value calls, leases and watches the shared state needs, as HTTP/1.1 + JSON requests
//! through awc (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/kv/put`, `/v3/lease/grant`,
//! `/v3/lease/keepalive`, `/v3/lease/revoke`, and the streaming `/v3/watch`).
//!
//! Why the gateway and not gRPC: it keeps the build to crates already in the tree (no protoc,
//! no tonic/prost), and etcd serves it on its client port from 3.3 on. Keys and values are
//! base64 in its JSON, 64-bit numbers are strings.
//!
//! Endpoints are tried in turn; the one that answered last is tried first next time.

use std::cell::Cell;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// Why a call to etcd failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd unreachable ({0})")]
    Unreachable(String),
    #[error("etcd answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("etcd's answer could not be read: {0}")]
    Decode(String),
}

/// One key with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Put(Kv),
    Delete { key: String, mod_revision: i64 },
}

/// The client.
pub struct Etcd {
    client: awc::Client,
    endpoints: Vec<String>,
    /// The endpoint to try first.
    current: Cell<usize>,
}

impl Etcd {
    /// A client of `endpoints` (`http://host:port`); connecting and each answer's head may
    /// take up to `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Etcd {
        let connector = awc::Connector::new().timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .finish();
        Etcd {
            client,
            endpoints,
            current: Cell::new(0),
        }
    }

    /// POSTs `body` to `path` on the first endpoint that answers; the answer's JSON.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = EtcdError::Unreachable("no endpoint".to_owned());
        for step in 0..self.endpoints.len() {
            let index = (self.current.get() + step) % self.endpoints.len();
            let url = format!("{}{path}", self.endpoints[index]);
            let mut response = match self.client.post(&url).send_json(body).await {
                Ok(response) => response,
                Err(e) => {
                    last = EtcdError::Unreachable(format!("{url}: {e}"));
                    continue;
                }
            };
            self.current.set(index);
            let bytes = response
                .body()
                .limit(64 * 1024 * 1024)
                .await
                .map_err(|e| EtcdError::Decode(e.to_string()))?;
            if !response.status().is_success() {
                return Err(EtcdError::Status {
                    status: response.status().as_u16(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            return serde_json::from_slice(&bytes).map_err(|e| EtcdError::Decode(e.to_string()));
        }
        Err(last)
    }

    /// The keys under `prefix` (all keys starting with it) and the store's revision.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let body = json!({ "key": b64(prefix), "range_end": b64(&prefix_end(prefix)) });
        let answer = self.call("/v3/kv/range", &body).await?;
        let kvs = answer
            .get("kvs")
            .and_then(Value::as_array)
            .map(|kvs| kvs.iter().filter_map(kv_of).collect())
            .unwrap_or_default();
        Ok((kvs, header_revision(&answer)))
    }

    /// Sets `key` to `value` if its mod revision is `based_on` (0: the key does not exist).
    /// `Ok(false)`: it changed since.
    pub async fn put_if(&self, key: &str, value: &[u8], based_on: i64) -> Result<bool, EtcdError> {
        let body = json!({
            "compare": [{ "key": b64(key), "target": "MOD", "result": "EQUAL",
                          "mod_revision": based_on.to_string() }],
            "success": [{ "request_put": { "key": b64(key), "value": B64.encode(value) } }],
        });
        let answer = self.call("/v3/kv/txn", &body).await?;
        Ok(answer.get("succeeded").and_then(Value::as_bool).unwrap_or(false))
    }

    /// Sets `key` to `value`, attached to `lease` (the key goes when the lease does).
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<(), EtcdError> {
        let body = json!({ "key": b64(key), "value": B64.encode(value), "lease": lease.to_string() });
        self.call("/v3/kv/put", &body).await.map(drop)
    }

    /// A new lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let answer = self
            .call(
                "/v3/lease/grant",
                &json!({ "TTL": ttl.as_secs().max(1).to_string() }),
            )
            .await?;
        number(answer.get("ID")).ok_or_else(|| EtcdError::Decode(format!("no lease id in {answer}")))
    }

    /// Renews `lease`; `Ok(false)` when it has expired (or never existed).
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", &json!({ "ID": lease.to_string() }))
            .await?;
        let result = answer.get("result").unwrap_or(&answer);
        Ok(number(result.get("TTL")).is_some_and(|ttl| ttl > 0))
    }

    /// Ends `lease` now: its keys go at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
            .map(drop)
    }

    /// Watches every key under `prefix` from `start_revision` on; `on_events` gets each batch
    /// of changes in order. Resolves when the stream ends (etcd went away, or the watch was
    /// cancelled): always with the reason.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        mut on_events: impl FnMut(Vec<Event>),
    ) -> EtcdError {
        let body = json!({ "create_request": {
            "key": b64(prefix), "range_end": b64(&prefix_end(prefix)),
            "start_revision": start_revision.to_string() } });
        let url = format!("{}/v3/watch", self.endpoints[self.current.get()]);
        let mut response = match self.client.post(&url).send_json(&body).await {
            Ok(response) => response,
            Err(e) => return EtcdError::Unreachable(format!("{url}: {e}")),
        };
        if !response.status().is_success() {
            return EtcdError::Status {
                status: response.status().as_u16(),
                body: String::new(),
            };
        }
        let mut buffer = BytesMut::new();
        while let Some(chunk) = response.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return EtcdError::Unreachable(format!("the watch broke: {e}")),
            };
            buffer.extend_from_slice(&chunk);
            loop {
                let mut messages = serde_json::Deserializer::from_slice(&buffer).into_iter::<Value>();
                let message = match messages.next() {
                    Some(Ok(message)) => message,
                    Some(Err(e)) if e.is_eof() => break,
                    None => break,
                    Some(Err(e)) => return EtcdError::Decode(format!("watch stream: {e}")),
                };
                let used = messages.byte_offset();
                buffer.advance(used);
                if let Some(error) = message.get("error") {
                    return EtcdError::Status {
                        status: 200,
                        body: error.to_string(),
                    };
                }
                let result = message.get("result").unwrap_or(&message);
                if result.get("canceled").and_then(Value::as_bool) == Some(true) {
                    return EtcdError::Decode(format!("the watch was cancelled: {result}"));
                }
                let events: Vec<Event> = result
                    .get("events")
                    .and_then(Value::as_array)
                    .map(|events| events.iter().filter_map(event_of).collect())
                    .unwrap_or_default();
                if !events.is_empty() {
                    on_events(events);
                }
            }
        }
        EtcdError::Unreachable("the watch ended".to_owned())
    }
}

fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// The end of the key range of every key starting with `prefix`: the prefix with its last
/// byte incremented (etcd's convention). Prefixes here are ASCII and end in `/`.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A 64-bit number etcd wrote as a string (or, leniently, as a number).
fn number(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn header_revision(answer: &Value) -> i64 {
    number(answer.get("header").and_then(|h| h.get("revision"))).unwrap_or(0)
}

fn key_of(kv: &Value) -> Option<String> {
    let key = B64.decode(kv.get("key")?.as_str()?).ok()?;
    String::from_utf8(key).ok()
}

fn kv_of(kv: &Value) -> Option<Kv> {
    let value = match kv.get("value").and_then(Value::as_str) {
        Some(v) => B64.decode(v).ok()?,
        None => Vec::new(),
    };
    Some(Kv {
        key: key_of(kv)?,
        value,
        mod_revision: number(kv.get("mod_revision")).unwrap_or(0),
    })
}

fn event_of(event: &Value) -> Option<Event> {
    let kv = event.get("kv")?;
    match event.get("type").and_then(Value::as_str) {
        Some("DELETE") => Some(Event::Delete {
            key: key_of(kv)?,
            mod_revision: number(kv.get("mod_revision")).unwrap_or(0),
        }),
        _ => kv_of(kv).map(Event::Put),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_ranges_as_the_gateway_writes_them() {
        // Captured from etcd 3.4.23's gateway.
        let put = json!({ "kv": { "key": "Zm9v", "create_revision": "2", "mod_revision": "4",
                                  "version": "2", "value": "cXV4" } });
        assert_eq!(
            event_of(&put),
            Some(Event::Put(Kv {
                key: "foo".into(),
                value: b"qux".to_vec(),
                mod_revision: 4
            }))
        );
        let delete = json!({ "type": "DELETE", "kv": { "key": "Zm9v", "mod_revision": "5" } });
        assert_eq!(
            event_of(&delete),
            Some(Event::Delete {
                key: "foo".into(),
                mod_revision: 5
            })
        );
        assert_eq!(prefix_end("/d/"), "/d0");
        assert_eq!(header_revision(&json!({ "header": { "revision": "12" } })), 12);
    }
}
