//! A small HTTP/1.1 server on `std::net`, enough for the project's own pages: one thread
//! accepts, each connection gets a thread (at most [`HttpServer::spawn`]'s limit at once), one
//! request per connection (`Connection: close`) except the event streams that handlers keep.
//! No async runtime: a show has a handful of browsers, not thousands.
//!
//! The request parser is fuzzed (random bytes and mutations of valid requests give an error,
//! never a panic); heads and bodies are bounded ([`MAX_HEAD`], [`MAX_BODY`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;

/// Longest request head (request line and headers), bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body, bytes (commands are a few dozen).
pub const MAX_BODY: usize = 64 * 1024;

/// How long a connection may take to send its request, and how long a write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was refused before any handler saw it: the status to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// One line for the client.
    pub reason: String,
}

impl HttpError {
    fn bad(reason: impl Into<String>) -> Self {
        Self {
            status: 400,
            reason: reason.into(),
        }
    }
}

/// Parse a request head (everything before the blank line, without it). Returns the request
/// without its body and the body's length. Never panics, whatever the bytes.
pub fn parse_head(head: &[u8]) -> Result<(Request, usize), HttpError> {
    let text =
        std::str::from_utf8(head).map_err(|_| HttpError::bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(HttpError::bad("malformed request line")),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::bad("malformed method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError {
            status: 505,
            reason: "only HTTP/1.x".into(),
        });
    }
    if !target.starts_with('/') {
        return Err(HttpError::bad("the target must be a path"));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path).ok_or_else(|| HttpError::bad("bad escape in the path"))?;
    let query = parse_query(raw_query).ok_or_else(|| HttpError::bad("bad escape in the query"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::bad("malformed header line"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpError::bad("malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(HttpError {
            status: 501,
            reason: "chunked request bodies are not accepted".into(),
        });
    }
    let body_len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| HttpError::bad("bad Content-Length"))?,
    };
    if body_len > MAX_BODY {
        return Err(HttpError {
            status: 413,
            reason: format!("bodies are limited to {MAX_BODY} bytes"),
        });
    }
    req.body.reserve(body_len);
    Ok((req, body_len))
}

/// Parse `a=1&b=x%20y` (a `+` is a space, as forms send it). None on a bad escape.
pub fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((
                percent_decode(&k.replace('+', " "))?,
                percent_decode(&v.replace('+', " "))?,
            ))
        })
        .collect()
}

/// Decode `%XX` escapes. None on a truncated or non-hex escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode everything but unreserved characters (for URLs the program prints).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Read one request from `r`: the head up to the blank line (at most [`MAX_HEAD`] bytes),
/// then the body.
pub fn read_request(r: &mut impl BufRead) -> Result<Request, HttpError> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| HttpError::bad(format!("read: {e}")))?;
        if buf.is_empty() {
            return Err(HttpError::bad("connection closed before the request ended"));
        }
        // The terminator may straddle two reads: search from just before the new bytes.
        let from = head.len().saturating_sub(3);
        let take = buf.len().min(MAX_HEAD + 4 - head.len());
        head.extend_from_slice(&buf[..take]);
        if let Some(end) = find(&head[from..], b"\r\n\r\n").map(|k| from + k) {
            // Give back what belongs to the body.
            let extra = head.len() - (end + 4);
            r.consume(take - extra);
            head.truncate(end);
            break;
        }
        r.consume(take);
        if head.len() > MAX_HEAD {
            return Err(HttpError {
                status: 431,
                reason: format!("request heads are limited to {MAX_HEAD} bytes"),
            });
        }
    }
    let (mut req, body_len) = parse_head(&head)?;
    req.body.resize(body_len, 0);
    r.read_exact(&mut req.body)
        .map_err(|e| HttpError::bad(format!("body: {e}")))?;
    Ok(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The reason phrase of a status code.
pub fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Write a whole response and close the exchange (`Connection: close`).
pub fn respond(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        status_text(status),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// A plain-text error response.
pub fn respond_error(w: &mut impl Write, status: u16, reason: &str) -> std::io::Result<()> {
    respond(
        w,
        status,
        "text/plain; charset=utf-8",
        &[],
        format!("{status} {}: {reason}\n", status_text(status)).as_bytes(),
    )
}

/// A byte range of a `Range` header, against a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable range: send the whole file (several ranges are answered this way too).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Outside the file: answer 416.
    Unsatisfiable,
}

/// Interpret a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) for a file of `len` bytes.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeSpec {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (false, true) => match num(a) {
            Some(s) => (s, len.saturating_sub(1)),
            None => return RangeSpec::Whole,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if e >= s => (s, e.min(len.saturating_sub(1))),
            _ => return RangeSpec::Whole,
        },
        (true, false) => match num(b) {
            Some(0) => return RangeSpec::Unsatisfiable,
            Some(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            None => return RangeSpec::Whole,
        },
        (true, true) => return RangeSpec::Whole,
    };
    if len == 0 || start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part { start, end }
}

/// The media type of an audio file, by extension.
pub fn audio_content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("flac") => "audio/flac",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// Send a file, honouring a single `Range` (206 with `Content-Range`), as `<audio>` needs to
/// seek. `HEAD` gets the headers only.
pub fn serve_file(
    w: &mut impl Write,
    req: &Request,
    path: &Path,
    content_type: &str,
) -> std::io::Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(_) => return respond_error(w, 404, "no such file"),
    };
    let len = file.metadata()?.len();
    let (status, start, end) = match parse_range(req.header("range"), len) {
        RangeSpec::Whole => (200, 0, len.saturating_sub(1)),
        RangeSpec::Part { start, end } => (206, start, end),
        RangeSpec::Unsatisfiable => {
            let cr = format!("bytes */{len}");
            return respond(
                w,
                416,
                "text/plain",
                &[("Content-Range", &cr)],
                b"416 Range Not Satisfiable\n",
            );
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {count}\r\nAccept-Ranges: bytes\r\nConnection: close\r\nCache-Control: no-store\r\n",
        status_text(status)
    );
    if status == 206 {
        head.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if req.method != "HEAD" && count > 0 {
        file.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut file.take(count), w)?;
    }
    w.flush()
}

/// Whether an HTTP client may reach a server bound to `ip` without a token: only when the
/// server listens on the loopback interface alone.
pub fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Access rules shared by the pages: a token when one is set (query `token` or header
/// `X-Scorefollow-Token`); without one (loopback only), a `Host` naming this machine, so a
/// web page elsewhere cannot reach the server through a DNS name it controls; commands only
/// as JSON from the same origin, which a cross-site form cannot send.
#[derive(Clone, Debug)]
pub struct Guard {
    token: Option<String>,
}

impl Guard {
    /// Require `token` when given.
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_string),
        }
    }

    /// The token, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Check a request; the refusal says why.
    pub fn check(&self, req: &Request) -> Result<(), HttpError> {
        let forbid = |reason: &str| HttpError {
            status: 403,
            reason: reason.into(),
        };
        match &self.token {
            Some(t) => {
                let given = req
                    .param("token")
                    .or_else(|| req.header("x-scorefollow-token"))
                    .unwrap_or("");
                if !constant_time_eq(given.as_bytes(), t.as_bytes()) {
                    return Err(forbid("a valid token is required (?token=...)"));
                }
            }
            None => {
                let host = req.header("host").unwrap_or("");
                if !is_loopback_host(host) {
                    return Err(forbid("this server answers requests for localhost only"));
                }
            }
        }
        if req.method == "POST" {
            let json = req
                .header("content-type")
                .is_some_and(|c| c.split(';').next().unwrap_or("").trim() == "application/json");
            if !json {
                return Err(HttpError {
                    status: 415,
                    reason: "commands are JSON (Content-Type: application/json)".into(),
                });
            }
            if let (Some(origin), Some(host)) = (req.header("origin"), req.header("host")) {
                let same = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host);
                if !same {
                    return Err(forbid("commands must come from the page itself"));
                }
            }
        }
        Ok(())
    }
}

/// A `Host` header naming the loopback interface (`localhost`, `127.x.x.x`, `[::1]`, with or
/// without a port).
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a server does with each request: it owns the connection (to answer, or to keep it
/// for an event stream).
pub type Handler = dyn Fn(Request, TcpStream) + Send + Sync;

/// A running server; stops when dropped or on [`HttpServer::stop`].
pub struct HttpServer {
    /// The address it listens on (useful with port 0).
    pub local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Bind a listener (fails early, before any audio, when the address is taken).
pub fn bind(addr: SocketAddr) -> crate::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| Error::invalid("view address", addr.to_string(), e.to_string()))
}

impl HttpServer {
    /// Serve `listener` with `handler`, at most `max_connections` connections at once (more
    /// are answered 503).
    pub fn spawn(
        listener: TcpListener,
        handler: Arc<Handler>,
        max_connections: usize,
    ) -> crate::Result<Self> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("view socket: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("scorefollow-http".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(stream) = conn else { continue };
                        accept(stream, &handler, &active, max_connections);
                    }
                })
                .map_err(|e| Error::Other(format!("cannot start the view thread: {e}")))?
        };
        Ok(Self {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop accepting and wait for the accept thread (connection threads end on their own:
    /// event streams when their hub closes, others after one request).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Wake the blocking accept.
            let mut wake = self.local_addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake.ip() {
                    IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(stream: TcpStream, handler: &Arc<Handler>, active: &Arc<AtomicUsize>, max: usize) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    if active.fetch_add(1, Ordering::AcqRel) >= max {
        active.fetch_sub(1, Ordering::AcqRel);
        let mut s = stream;
        let _ = respond_error(&mut s, 503, "too many connections");
        let _ = s.shutdown(Shutdown::Both);
        return;
    }
    let (handler, active2) = (Arc::clone(handler), Arc::clone(active));
    let spawned = std::thread::Builder::new()
        .name("scorefollow-http-conn".into())
        .spawn(move || {
            connection(stream, &handler);
            active2.fetch_sub(1, Ordering::AcqRel);
        });
    if spawned.is_err() {
        active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn connection(stream: TcpStream, handler: &Arc<Handler>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    match read_request(&mut reader) {
        Ok(req) => handler(req, stream),
        Err(e) => {
            let mut s = stream;
            let _ = respond_error(&mut s, e.status, &e.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Request, HttpError> {
        read_request(&mut BufReader::new(text.as_bytes()))
    }

    #[test]
    fn requests_parse() {
        let r = parse(
            "GET /a%20b?x=1&token=t%2Bu&flag HTTP/1.1\r\nHost: localhost:8080\r\nX-Y:  z \r\n\r\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/a b");
        assert_eq!(r.param("x"), Some("1"));
        assert_eq!(r.param("token"), Some("t+u"));
        assert_eq!(r.param("flag"), Some(""));
        assert_eq!(r.header("x-y"), Some("z"));
        let r = parse("POST /command HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.body, b"hello");
        for (bad, status) in [
            ("GET / HTTP/2\r\n\r\n", 505),
            ("GET /\r\n\r\n", 400),
            ("get / HTTP/1.1\r\n\r\n", 400),
            ("GET x HTTP/1.1\r\n\r\n", 400),
            ("GET /%zz HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort", 400),
            ("GET / HTTP/1.1\r\n", 400),
        ] {
            assert_eq!(parse(bad).map_err(|e| e.status), Err(status), "{bad:?}");
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&huge).map_err(|e| e.status), Err(431));
    }

    /// A head split across reads at every byte still parses (the terminator may straddle).
    #[test]
    fn heads_split_anywhere_parse() {
        let text = b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
        for cap in 1..text.len() {
            let mut r = BufReader::with_capacity(cap, &text[..]);
            let req = read_request(&mut r).unwrap_or_else(|e| panic!("cap {cap}: {e:?}"));
            assert_eq!((req.path.as_str(), req.body.as_slice()), ("/x", &b"ok"[..]));
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeSpec::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(
            parse_range(Some("bytes=0-"), 100),
            Part { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=10-19"), 100),
            Part { start: 10, end: 19 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-200"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-500"), 100),
            Part { start: 0, end: 99 }
        );
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=x-"), 100), Whole);
    }

    /// The reference the range arithmetic is checked against: the bytes a range selects.
    fn range_bytes(data: &[u8], spec: RangeSpec) -> Option<&[u8]> {
        match spec {
            RangeSpec::Whole => Some(data),
            RangeSpec::Part { start, end } => data.get(start as usize..=end as usize),
            RangeSpec::Unsatisfiable => None,
        }
    }

    #[test]
    fn served_ranges_are_the_right_bytes() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let path = std::env::temp_dir().join(format!("sf_http_{}.bin", std::process::id()));
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        for range in [
            None,
            Some("bytes=0-"),
            Some("bytes=100-199"),
            Some("bytes=-7"),
            Some("bytes=4999-"),
        ] {
            let mut req = Request {
                method: "GET".into(),
                ..Request::default()
            };
            if let Some(r) = range {
                req.headers.push(("range".into(), r.into()));
            }
            let mut out = Vec::new();
            serve_file(&mut out, &req, &path, "audio/flac").unwrap_or_else(|e| panic!("{e}"));
            let split = find(&out, b"\r\n\r\n").unwrap_or_else(|| panic!("no head")) + 4;
            let head = String::from_utf8_lossy(&out[..split]).to_string();
            let want = range_bytes(&data, parse_range(range, data.len() as u64))
                .unwrap_or_else(|| panic!("{range:?}"));
            assert_eq!(&out[split..], want, "{range:?}");
            assert!(
                head.contains(&format!("Content-Length: {}", want.len())),
                "{head}"
            );
            assert_eq!(head.starts_with("HTTP/1.1 206"), range.is_some(), "{head}");
        }
        let mut req = Request {
            method: "GET".into(),
            ..Request::default()
        };
        req.headers.push(("range".into(), "bytes=6000-".into()));
        let mut out = Vec::new();
        serve_file(&mut out, &req, &path, "audio/flac").unwrap_or_else(|e| panic!("{e}"));
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 416"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn guard_wants_the_token_or_a_local_host() {
        let req = |host: &str, query: &str| {
            parse(&format!("GET /{query} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let open = Guard::new(None);
        for host in ["localhost:8080", "127.0.0.1:1", "[::1]:80", "localhost"] {
            assert!(open.check(&req(host, "")).is_ok(), "{host}");
        }
        for host in ["evil.example:8080", "192.168.1.2:8080", ""] {
            assert_eq!(
                open.check(&req(host, "")).map_err(|e| e.status),
                Err(403),
                "{host}"
            );
        }
        let locked = Guard::new(Some("s3cret"));
        assert!(locked
            .check(&req("192.168.1.2:8080", "?token=s3cret"))
            .is_ok());
        for q in [
            "",
            "?token=",
            "?token=s3cre",
            "?token=s3cret2",
            "?tok=s3cret",
        ] {
            assert_eq!(
                locked.check(&req("h", q)).map_err(|e| e.status),
                Err(403),
                "{q}"
            );
        }
        let post = |ct: &str, origin: &str| {
            parse(&format!(
                "POST /command?token=s3cret HTTP/1.1\r\nHost: h:1\r\nContent-Type: {ct}\r\n{origin}\r\n"
            ))
            .unwrap_or_else(|e| panic!("{e:?}"))
        };
        assert!(locked.check(&post("application/json", "")).is_ok());
        assert!(locked
            .check(&post("application/json", "Origin: http://h:1\r\n"))
            .is_ok());
        assert_eq!(
            locked.check(&post("text/plain", "")).map_err(|e| e.status),
            Err(415)
        );
        assert_eq!(
            locked
                .check(&post("application/json", "Origin: http://evil:1\r\n"))
                .map_err(|e| e.status),
            Err(403)
        );
    }

    #[test]
    fn percent_coding_round_trips() {
        for s in ["", "abc", "a b+c/ü?&=%"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = read_request(&mut BufReader::new(&bytes[..]));
            let _ = parse_head(&bytes);
        }

        #[test]
        fn mutated_requests_never_panic(
            edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..6)
        ) {
            let mut bytes = b"POST /command?token=a%20b&x=1 HTTP/1.1\r\nHost: localhost:1\r\nRange: bytes=0-9\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n{}{}".to_vec();
            for (pos, byte, kind) in edits {
                let i = pos as usize % (bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            if let Ok(req) = read_request(&mut BufReader::new(&bytes[..])) {
                let _ = Guard::new(Some("t")).check(&req);
                let _ = Guard::new(None).check(&req);
                let _ = parse_range(req.header("range"), 100);
            }
        }

        #[test]
        fn ranges_stay_inside_the_file(h in "[ -~]{0,24}", len in 0u64..10_000) {
            match parse_range(Some(&h), len) {
                RangeSpec::Part { start, end } => prop_assert!(start <= end && end < len),
                RangeSpec::Whole | RangeSpec::Unsatisfiable => {}
            }
        }
    }
}
