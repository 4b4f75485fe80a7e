//! The overview's routes panel (control plane): the route list in match order as the
//! template shows it, taken from the configured document (`GetRoutes`).

use serde_json::Value;

/// One route, ready to print.
pub struct RouteView {
    pub index: usize,
    /// The exact host, or empty for any.
    pub host: String,
    pub path_prefix: String,
    /// A cluster's name, or the single address of a "road warrior" route.
    pub target: String,
    /// The other settings (timeouts, cache, FastCGI mapping), as JSON, or empty.
    pub extra: String,
}

impl RouteView {
    /// The views of `routes`, in order.
    pub fn list(routes: &[Value]) -> Vec<RouteView> {
        routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteView::new(i, r))
            .collect()
    }

    fn new(index: usize, route: &Value) -> RouteView {
        let text = |key: &str| route.get(key).and_then(Value::as_str).map(str::to_owned);
        let extra: serde_json::Map<String, Value> = route
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "host" | "path_prefix" | "cluster" | "backend"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        RouteView {
            index,
            host: text("host").unwrap_or_default(),
            path_prefix: text("path_prefix").unwrap_or_else(|| "/".to_owned()),
            target: text("cluster").or_else(|| text("backend")).unwrap_or_default(),
            extra: if extra.is_empty() {
                String::new()
            } else {
                Value::Object(extra).to_string()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_targets() {
        let views = RouteView::list(&[
            json!({ "cluster": "a" }),
            json!({ "host": "x.example", "path_prefix": "/p/", "backend": "http://h:1", "read_timeout": "2s" }),
        ]);
        assert_eq!((views[0].index, views[0].path_prefix.as_str()), (0, "/"));
        assert_eq!((views[0].host.as_str(), views[0].target.as_str()), ("", "a"));
        assert_eq!(views[1].target, "http://h:1");
        assert_eq!(views[1].extra, r#"{"read_timeout":"2s"}"#);
    }
}
