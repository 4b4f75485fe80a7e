//! Sans-io protocol rules: no sockets, no actix, unit-testable.

pub mod cgi;
pub mod fastcgi;
pub mod header_lines;
pub mod http1;
pub mod http_headers;
pub mod path;
