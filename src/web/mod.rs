//! Pages in the browser, served by scorefollow itself: the live view of `follow --view`
//! ([`live`]) and the interpretation switcher of `scorefollow switch` ([`switch`]).
//!
//! An edge like `output`: the core never imports it. The server is [`http`] (std::net, a
//! thread per connection, no async runtime); updates reach the browsers as server-sent events
//! through [`hub`], which never waits for a browser. The pages' HTML, CSS and JavaScript are
//! the project's own, embedded in the binary (`assets/`), with no build step and nothing
//! fetched from the network.

use std::net::SocketAddr;

use crate::Error;

pub mod http;
pub mod hub;
pub mod live;
pub mod switch;
pub mod versions;

/// The stylesheet shared by both pages.
pub const STYLE_CSS: &str = include_str!("assets/style.css");

/// Where a page server listens and who may use it.
#[derive(Clone, Debug)]
pub struct ViewAddress {
    /// The address to bind.
    pub addr: SocketAddr,
    /// The token every request must carry, if any.
    pub token: Option<String>,
}

impl ViewAddress {
    /// Parse `HOST:PORT` (port 0: any free port, printed when bound). An address beyond this
    /// machine needs a token: anyone who can reach it could otherwise pause the show.
    pub fn parse(text: &str, token: Option<&str>) -> crate::Result<Self> {
        use std::net::ToSocketAddrs;
        let bad = |reason: &str| Error::invalid("view address", text, reason);
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT, e.g. 127.0.0.1:8080"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("missing host before ':'"));
        }
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve host: {e}")))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = token {
            if t.len() < 8 || !t.chars().all(|c| c.is_ascii_graphic()) {
                return Err(Error::invalid(
                    "view token",
                    "(hidden)",
                    "use at least 8 printable characters without spaces",
                ));
            }
        }
        if !http::is_local(addr.ip()) && token.is_none() {
            return Err(Error::invalid(
                "view address",
                text,
                "it is reachable from other machines: give --view-token TOKEN (every page and command must then carry it)",
            ));
        }
        Ok(Self {
            addr,
            token: token.map(str::to_string),
        })
    }

    /// The URL to open, for the address actually bound (`local`), with the token.
    pub fn url(&self, local: SocketAddr) -> String {
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match local {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        let mut url = format!("http://{host}:{}/", local.port());
        if let Some(t) = &self.token {
            url.push_str(&format!("?token={}", http::percent_encode(t)));
        }
        url
    }
}

/// Write a number for JSON: `null` when not finite (JSON has no NaN).
pub(crate) fn json_num(out: &mut String, x: f64, decimals: usize) {
    use std::fmt::Write;
    if x.is_finite() {
        let _ = write!(out, "{x:.decimals$}");
    } else {
        out.push_str("null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_beyond_this_machine_need_a_token() {
        let ok = ViewAddress::parse("127.0.0.1:8080", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.url(ok.addr), "http://127.0.0.1:8080/");
        assert!(ViewAddress::parse("localhost:0", None).is_ok());
        let e = ViewAddress::parse("0.0.0.0:8080", None)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("--view-token")));
        let v = ViewAddress::parse("0.0.0.0:8080", Some("a b+c/d!")).err();
        assert!(v.is_some(), "a token with a space");
        let v =
            ViewAddress::parse("0.0.0.0:8080", Some("abc+def/g")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.url(v.addr), "http://127.0.0.1:8080/?token=abc%2Bdef%2Fg");
        assert!(ViewAddress::parse("0.0.0.0:8080", Some("short")).is_err());
        assert!(ViewAddress::parse("nonsense", None).is_err());
    }

    #[test]
    fn json_numbers_are_never_nan() {
        let mut s = String::new();
        json_num(&mut s, f64::NAN, 2);
        s.push(',');
        json_num(&mut s, 1.23456, 3);
        assert_eq!(s, "null,1.235");
    }
}
