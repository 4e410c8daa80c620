//! The interpretation switcher's page (`scorefollow switch REC... --view HOST:PORT`): play
//! any version; a click on another continues it at the same musical position, playing or
//! paused as before; one shared timeline shows where every version is, with bar numbers when
//! a score is given.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /versions.json` | the common timeline (bars) and each version's map to it |
//! | `GET /audio/N` | version N's file (0-based), with `Range` support for seeking |
//! | `GET /map?from=A&to=B&t=T` | the time in version B (1-based) of time T (s) in A, as `{"t": ...}` |

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use super::http::{self, Guard, HttpServer, Request};
use super::versions::Versions;
use super::ViewAddress;

fn page() -> String {
    include_str!("assets/switch.html")
        .replace("/*STYLE*/", super::STYLE_CSS)
        .replace("/*SCRIPT*/", include_str!("assets/switch.js"))
}

/// A running switcher page; stops serving when dropped.
pub struct SwitchServer {
    server: HttpServer,
    /// The URL to open.
    pub url: String,
}

impl SwitchServer {
    /// Serve `versions` on `view`.
    pub fn start(versions: Arc<Versions>, view: &ViewAddress) -> crate::Result<Self> {
        let listener = http::bind(view.addr)?;
        let data = Arc::new(versions.to_json(|i| format!("audio/{i}")));
        let page = Arc::new(page());
        let guard = Guard::new(view.token.as_deref());
        let handler = move |req: Request, stream: TcpStream| {
            handle(req, stream, &guard, &versions, &page, &data)
        };
        let server = HttpServer::spawn(listener, Arc::new(handler), 64)?;
        let url = view.url(server.local_addr);
        Ok(Self { server, url })
    }

    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr
    }
}

fn handle(
    req: Request,
    mut stream: TcpStream,
    guard: &Guard,
    versions: &Versions,
    page: &str,
    data: &str,
) {
    if let Err(e) = guard.check(&req) {
        let _ = http::respond_error(&mut stream, e.status, &e.reason);
        return;
    }
    if req.method != "GET" && req.method != "HEAD" {
        let _ = http::respond_error(&mut stream, 405, "this page only reads");
        return;
    }
    let json = "application/json";
    let _ = match req.path.as_str() {
        "/" | "/index.html" => http::respond(
            &mut stream,
            200,
            "text/html; charset=utf-8",
            &[],
            page.as_bytes(),
        ),
        "/versions.json" => http::respond(&mut stream, 200, json, &[], data.as_bytes()),
        "/map" => match map_query(&req, versions) {
            Ok(t) => http::respond(
                &mut stream,
                200,
                json,
                &[],
                serde_json::json!({ "t": t }).to_string().as_bytes(),
            ),
            Err(reason) => http::respond_error(&mut stream, 400, &reason),
        },
        p => match p
            .strip_prefix("/audio/")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|i| versions.versions.get(i))
        {
            Some(v) => http::serve_file(
                &mut stream,
                &req,
                &v.path,
                http::audio_content_type(&v.path),
            ),
            None => http::respond_error(&mut stream, 404, "no such page"),
        },
    };
}

fn map_query(req: &Request, versions: &Versions) -> Result<f64, String> {
    let num = |k: &str| -> Result<f64, String> {
        req.param(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("give {k} as a number"))
    };
    let index = |k: &str| -> Result<usize, String> {
        let n = num(k)?;
        if n.fract() != 0.0 || n < 1.0 || n > versions.versions.len() as f64 {
            return Err(format!(
                "{k} must be a version from 1 to {}",
                versions.versions.len()
            ));
        }
        Ok(n as usize - 1)
    };
    versions
        .map(index("from")?, index("to")?, num("t")?)
        .map_err(|e| e.to_string())
}
