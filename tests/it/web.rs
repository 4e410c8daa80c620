//! The browser pages end to end: the live view of `follow --view` on the bundled Bach chorale
//! replayed at 4x, and the interpretation switcher of `switch` on the bundled performance and
//! a time-warped copy made here, both loaded in headless Chromium and checked in the DOM.
//!
//! Chromium is driven through its DevTools protocol over a pipe (`--remote-debugging-pipe`:
//! JSON messages ending in NUL, written to its fd 3 and read from its fd 4), so no driver or
//! WebSocket crate is needed. The tests that need Chromium fail with a message saying how to
//! install it when it is missing (`apt-get install chromium`, or `SCOREFOLLOW_CHROMIUM=path`).
//! With `SCOREFOLLOW_SCREENSHOTS=DIR` they save the pages' screenshots there (the README's are
//! made with `SCOREFOLLOW_SCREENSHOTS=assets cargo test --test it web::`).
//!
//! The server's own guarantees that need no browser are here too: the token, and a browser
//! that stops reading is dropped while the publisher never waits.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bach() -> PathBuf {
    root().join("scores/bach_bwv66_6")
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sf_web_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The tests that start programs and browsers run one at a time: each replays in real time
/// (4x) and shares two cores with the others.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- a DevTools client over a pipe -----------------------------------------------------

fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCOREFOLLOW_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A browser for test `name`, or None when the machine has none: the test is then skipped
/// with a message (a plain `cargo test` needs no system package), except under CI (`CI` set),
/// where a missing browser fails the test, as a missing ALSA device fails the live tests.
fn browser_or_skip(name: &str) -> Option<Browser> {
    if chromium_path().is_some() {
        return Some(Browser::launch(name));
    }
    let why = "these tests drive a real browser and found none: install Chromium (Debian: \
               `apt-get install chromium`) or set SCOREFOLLOW_CHROMIUM to a Chromium or Chrome \
               binary";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("skipped web::{name}: {why} (CI=true makes this a failure)");
    None
}

/// A headless Chromium and its DevTools pipe; killed when dropped.
struct Browser {
    child: Child,
    pipe: std::cell::RefCell<Pipe>,
    profile: PathBuf,
}

struct Pipe {
    to: File,
    from: BufReader<File>,
    next_id: u64,
}

impl Browser {
    fn launch(name: &str) -> Browser {
        let exe = chromium_path().expect("checked by browser_or_skip");
        let profile = tmp_dir(&format!("chromium_{name}"));
        let (cmd_read, cmd_write) = std::io::pipe().expect("pipe");
        let (resp_read, resp_write) = std::io::pipe().expect("pipe");
        use std::os::fd::AsRawFd;
        let (r, w) = (cmd_read.as_raw_fd(), resp_write.as_raw_fd());
        let log = File::create(profile.join("chromium.log")).expect("log");
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            // A tab opened over the protocol counts as hidden: its frames and timers would be
            // throttled, and the page drawn late.
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--window-size=1280,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2). The pipe
        // ends go to fds 3 and 4, where --remote-debugging-pipe expects them; they are first
        // moved above 10 so that neither is overwritten if it already was 3 or 4.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(r, libc::F_DUPFD, 10);
                let b = libc::fcntl(w, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        drop((cmd_read, resp_write));
        Browser {
            child,
            pipe: std::cell::RefCell::new(Pipe {
                to: File::from(std::os::fd::OwnedFd::from(cmd_write)),
                from: BufReader::new(File::from(std::os::fd::OwnedFd::from(resp_read))),
                next_id: 1,
            }),
            profile,
        }
    }

    /// Send a command (to a page's session, or to the browser) and wait for its result;
    /// events in between are skipped.
    fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let mut pipe = self.pipe.borrow_mut();
        let id = pipe.next_id;
        pipe.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        pipe.to.write_all(&bytes).expect("write to chromium");
        loop {
            let mut buf = Vec::new();
            let n = pipe
                .from
                .read_until(0, &mut buf)
                .expect("read from chromium");
            if n == 0 {
                let log =
                    std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default();
                panic!("chromium closed its pipe during {method}; its log:\n{log}");
            }
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).expect("JSON from chromium");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn open(&self, url: &str) -> Page<'_> {
        // A window each: a background tab would not be drawn (no animation frames).
        let target = self.call(
            None,
            "Target.createTarget",
            json!({ "url": "about:blank", "newWindow": true }),
        );
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        let mut page = Page {
            browser: self,
            session,
        };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        );
        page.call("Page.bringToFront", json!({}));
        page.call("Page.navigate", json!({ "url": url }));
        page.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        );
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One tab.
struct Page<'a> {
    browser: &'a Browser,
    session: String,
}

impl Page<'_> {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params)
    }

    /// The value of a JavaScript expression (promises awaited).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Wait until `expr` is truthy; its value.
    fn wait_for(&mut self, expr: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(&format!(
                "(() => {{ try {{ return ({expr}); }} catch (e) {{ return null; }} }})()"
            ));
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {expr}; the page says:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A real mouse click in the middle of the element `selector`.
    fn click(&mut self, selector: &str) {
        let r = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let (x, y) = (r[0].as_f64().expect("x"), r[1].as_f64().expect("y"));
        self.click_at(x, y);
    }

    fn click_at(&mut self, x: f64, y: f64) {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Press and release a key (`key` as in KeyboardEvent.key).
    fn key(&mut self, key: &str, code: &str, key_code: u32) {
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code }),
            );
        }
    }

    /// A PNG of the page; saved into $SCOREFOLLOW_SCREENSHOTS/`name` when that is set.
    fn screenshot(&mut self, name: &str) -> Vec<u8> {
        let h = self
            .eval("Math.ceil(document.body.getBoundingClientRect().bottom)")
            .as_f64()
            .unwrap_or(900.0);
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": 1280, "height": h.max(100.0), "scale": 1 } }),
        );
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        if let Some(dir) = std::env::var_os("SCOREFOLLOW_SCREENSHOTS") {
            let dir = root().join(dir);
            std::fs::create_dir_all(&dir).expect("screenshot dir");
            std::fs::write(dir.join(name), &png).expect("write screenshot");
        }
        png
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[test]
fn base64_decodes_the_rfc_4648_vectors() {
    for (enc, dec) in [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9v", "foo"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(base64_decode(enc), dec.as_bytes());
    }
}

// ---- the programs under test -----------------------------------------------------------------

/// A scorefollow process whose stderr is collected; killed when dropped.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Program {
    fn start(args: &[&str]) -> Program {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scorefollow");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Program {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The rest of the first stderr line that starts with `prefix`.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!(
                    "no line '{prefix}' from scorefollow; it said:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Wait for the exit; the exit status and everything it printed on stderr.
    fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(l);
                }
                return (status, self.log.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("scorefollow did not end; it said:\n{}", self.log.join("\n"));
            }
            while let Ok(l) = self.lines.try_recv() {
                self.log.push(l);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(addr: SocketAddr, method: &str, target: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = Vec::new();
    // Event streams do not end: read what comes within a moment.
    let _ = s.set_read_timeout(Some(Duration::from_millis(1500)));
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || out.len() > 1 << 16 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {url}"))
}

fn follow_args<'a>(speed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "follow",
        "--replay",
        "scores/bach_bwv66_6/performance.flac",
        "--score",
        "scores/bach_bwv66_6/score.mid",
        "--cues",
        "scores/bach_bwv66_6/cues.toml",
        "--speed",
        speed,
        "--print-every",
        "0",
    ];
    v.extend_from_slice(extra);
    v
}

// ---- the live view -------------------------------------------------------------------------

/// The live view in a browser while the bundled chorale is replayed at 4x: bar numbers
/// advance, the roll moves, a fired cue is listed, a seek clicked on the page is
/// acknowledged, and a quit clicked on the page ends the run.
#[test]
fn live_view_in_a_browser() {
    let _one = one_at_a_time();
    let Some(browser) = browser_or_skip("live") else {
        return;
    };
    let mut prog = Program::start(&follow_args("4", &["--view", "127.0.0.1:0"]));
    let url = prog.wait_line("live view:", Duration::from_secs(60));
    let mut page = browser.open(&url);
    page.wait_for(
        "document.getElementById('bar').dataset.bar",
        Duration::from_secs(10),
    );
    let read = |page: &mut Page| -> (i64, f64, f64) {
        let v = page.eval(
            "[+document.getElementById('bar').dataset.bar, +document.getElementById('score-time').dataset.score, +document.getElementById('roll').dataset.t0]",
        );
        (
            v[0].as_i64().unwrap_or(0),
            v[1].as_f64().unwrap_or(f64::NAN),
            v[2].as_f64().unwrap_or(f64::NAN),
        )
    };
    let first = read(&mut page);
    let mut later = first;
    let deadline = Instant::now() + Duration::from_secs(6);
    while later.0 <= first.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        later = read(&mut page);
    }
    assert!(
        later.0 > first.0,
        "the bar did not advance: {first:?} then {later:?}"
    );
    assert!(
        later.1 > first.1,
        "the score position did not advance: {first:?} then {later:?}"
    );
    assert!(
        later.2 > first.2,
        "the roll (and its cursor) did not move: {first:?} then {later:?}"
    );
    // The input level meter shows the replayed audio.
    page.wait_for(
        "document.getElementById('level').textContent.endsWith('dBFS')",
        Duration::from_secs(5),
    );
    // The key the follower detected (the chorale is played as written) and the tuning it
    // assumes, not only what was asked for.
    let key = page
        .wait_for(
            "document.getElementById('key').textContent.startsWith('as written') && document.getElementById('key').textContent",
            Duration::from_secs(15),
        )
        .to_string();
    assert!(key.contains("(auto)"), "{key}");
    let tuning = page
        .eval("document.getElementById('tuning').textContent")
        .to_string();
    assert!(tuning.contains("cents (fixed)"), "{tuning}");
    // A cue the follower fired, listed by its id from cues.toml.
    let fired = page
        .wait_for(
            "[...document.querySelectorAll('#fired-cues li')].map(l => l.textContent).join('|')",
            Duration::from_secs(8),
        )
        .to_string();
    assert!(fired.contains("line"), "{fired}");
    // Latency from the follower's output to the page drawn, read back from the page.
    page.wait_for(
        "scorefollow.latency().drawn.n >= 10",
        Duration::from_secs(5),
    );
    let lat = page.eval("scorefollow.latency()");
    eprintln!("live view latency (ms): {lat}");
    assert!(lat["drawn"]["n"].as_u64().unwrap_or(0) >= 10, "{lat}");
    // Generous for a debug build at 4x on a loaded machine; the README gives the release
    // figure at real time (`live_view_latency_at_real_time`).
    let p99 = lat["drawn"]["p99"].as_f64().expect("latency samples");
    assert!(p99 < 500.0, "{lat}");
    // A second browser watching at the same time.
    let mut other = browser.open(&url);
    other.wait_for(
        "document.getElementById('bar').dataset.bar",
        Duration::from_secs(10),
    );
    page.call("Page.bringToFront", json!({}));
    // A seek to bar 2 from the page's form, with real mouse clicks; every page shows the ack.
    page.eval("document.getElementById('seek-bar').value = '2'");
    page.click("#seek");
    let ack = page.wait_for(
        "[...document.querySelectorAll('#acks li.ack-ok')].map(l => l.textContent).find(t => t.includes('/scorefollow/seek_bar 2'))",
        Duration::from_secs(5),
    );
    assert!(ack.to_string().contains("seek_bar 2"), "{ack}");
    other.wait_for(
        "[...document.querySelectorAll('#acks li.ack-ok')].some(l => l.textContent.includes('/scorefollow/seek_bar 2'))",
        Duration::from_secs(5),
    );
    page.call("Page.bringToFront", json!({}));
    std::thread::sleep(Duration::from_millis(300));
    page.screenshot("live_view.png");
    // Quit: two clicks (a stray one does not end the show).
    page.click("#quit");
    page.click("#quit");
    let (status, log) = prog.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{log}");
    assert!(log.contains("remote control: 2 messages accepted"), "{log}");
}

/// Against a recording (no score): no notes or bars, a time ruler, no bar seek; positions
/// still advance and a seek clicked on the roll is acknowledged.
#[test]
fn live_view_against_a_recording() {
    let _one = one_at_a_time();
    let Some(browser) = browser_or_skip("recording") else {
        return;
    };
    let perf = "scores/bach_bwv66_6/performance.flac";
    let mut prog = Program::start(&[
        "follow",
        "--replay",
        perf,
        "--reference",
        perf,
        "--speed",
        "4",
        "--print-every",
        "0",
        "--view",
        "127.0.0.1:0",
    ]);
    let url = prog.wait_line("live view:", Duration::from_secs(60));
    let mut page = browser.open(&url);
    let first = page
        .wait_for(
            "+document.getElementById('score-time').dataset.score",
            Duration::from_secs(10),
        )
        .as_f64()
        .expect("score time");
    let later = page
        .wait_for(
            &format!(
                "(s => s > {first} + 1 && s)(+document.getElementById('score-time').dataset.score)"
            ),
            Duration::from_secs(6),
        )
        .as_f64()
        .expect("score time");
    assert!(later > first + 1.0);
    // Not drawn at all (not merely marked hidden).
    assert_eq!(
        page.eval("document.getElementById('seek-form').offsetParent === null"),
        json!(true)
    );
    assert_eq!(
        page.eval("document.getElementById('fire-form').offsetParent === null"),
        json!(true)
    );
    assert_eq!(
        page.eval("document.getElementById('bar').textContent"),
        json!("–")
    );
    page.screenshot("live_view_recording.png");
    // A click on the roll, a third of the way in: follow from there.
    let r = page.eval("(() => { const r = document.getElementById('roll').getBoundingClientRect(); return [r.left + r.width / 3, r.top + r.height / 2]; })()");
    page.click_at(r[0].as_f64().expect("x"), r[1].as_f64().expect("y"));
    page.wait_for(
        "[...document.querySelectorAll('#acks li.ack-ok')].some(l => l.textContent.includes('/scorefollow/seek '))",
        Duration::from_secs(5),
    );
    page.eval("scorefollow.send('/scorefollow/quit')");
    let (status, log) = prog.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{log}");
}

/// The latency the issue asks for, at real time: from a position leaving the follower's
/// output thread to the page drawn with it, read back from the page after 30 s of the
/// chorale. Needs optimised code: `cargo test --release --test it -- --ignored web::live_view_latency`.
#[test]
#[ignore = "needs optimised code: cargo test --release --test it -- --ignored web::live_view_latency"]
fn live_view_latency_at_real_time() {
    let _one = one_at_a_time();
    let Some(browser) = browser_or_skip("latency") else {
        return;
    };
    let mut prog = Program::start(&follow_args("1", &["--view", "127.0.0.1:0"]));
    let url = prog.wait_line("live view:", Duration::from_secs(60));
    let mut page = browser.open(&url);
    page.wait_for(
        "document.getElementById('bar').dataset.bar",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(30));
    let lat = page.eval("scorefollow.latency()");
    println!("live view latency at real time (ms): {lat}");
    page.eval("scorefollow.send('/scorefollow/quit')");
    let (status, log) = prog.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{log}");
    let p99 = lat["drawn"]["p99"].as_f64().expect("latency samples");
    assert!(lat["drawn"]["n"].as_u64().unwrap_or(0) > 500, "{lat}");
    assert!(p99 <= 50.0, "p99 {p99} ms: {lat}");
}

/// The token: without it every page, stream and command is refused; an address beyond this
/// machine without a token is refused before anything starts.
#[test]
fn live_view_token_is_required() {
    let _one = one_at_a_time();
    let out = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args(follow_args("4", &["--view", "0.0.0.0:0"]))
        .current_dir(root())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--view-token"), "{err}");

    let token = "s3cret-token";
    let mut prog = Program::start(&follow_args(
        "1",
        &["--view", "127.0.0.1:0", "--view-token", token],
    ));
    let url = prog.wait_line("live view:", Duration::from_secs(60));
    assert!(url.ends_with(&format!("?token={token}")), "{url}");
    let addr = addr_of(&url);
    let json = "Content-Type: application/json\r\n";
    let stop = r#"{"addr":"/scorefollow/stop"}"#;
    for (method, target, headers, body) in [
        ("GET", "/".to_string(), "", ""),
        ("GET", "/score.json".to_string(), "", ""),
        ("GET", "/events".to_string(), "", ""),
        ("POST", "/command".to_string(), json, stop),
        ("GET", "/?token=wrong-token".to_string(), "", ""),
        ("POST", "/command?token=s3cret-toke".to_string(), json, stop),
    ] {
        let (status, body) = http(addr, method, &target, headers, body);
        assert_eq!(status, 403, "{method} {target}: {body}");
    }
    let ok = |t: &str| format!("{t}?token={token}");
    assert_eq!(http(addr, "GET", &ok("/"), "", "").0, 200);
    assert_eq!(http(addr, "GET", &ok("/score.json"), "", "").0, 200);
    let (status, body) = http(addr, "GET", &ok("/events"), "", "");
    assert_eq!(status, 200);
    assert!(body.contains("data: {"), "{body}");
    // The header works as well as the query.
    let (status, body) = http(
        addr,
        "POST",
        "/command",
        &format!("{json}X-Scorefollow-Token: {token}\r\n"),
        stop,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/scorefollow/ack"), "{body}");
    let (status, body) = http(
        addr,
        "POST",
        &ok("/command"),
        json,
        r#"{"addr":"/scorefollow/seek_bar","args":[99]}"#,
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("/scorefollow/error") && body.contains("not in the score"),
        "{body}"
    );
    let (status, _) = http(
        addr,
        "POST",
        &ok("/command"),
        json,
        r#"{"addr":"/scorefollow/quit"}"#,
    );
    assert_eq!(status, 200);
    let (status, log) = prog.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{log}");
    assert!(log.contains("2 messages accepted, 1 refused"), "{log}");
}

/// A browser that stops reading is dropped; the publisher (the follower's output thread)
/// never waits for it, and a browser that reads gets everything to the end.
#[test]
fn a_stalled_browser_is_dropped_not_waited_for() {
    use scorefollow::web::http::{HttpServer, Request};
    use scorefollow::web::hub::{self, Hub, Keep};
    let _one = one_at_a_time();
    // A queue long enough that the reading browser is never dropped on a busy machine.
    let hub = Hub::new(2000);
    let handler = {
        let hub = Arc::clone(&hub);
        move |_req: Request, stream: TcpStream| hub::stream_events(&hub, stream)
    };
    let listener =
        scorefollow::web::http::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let server = HttpServer::spawn(listener, Arc::new(handler), 8).expect("server");
    let addr = server.local_addr;
    let subscribe = || {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
        s
    };
    let stalled = subscribe();
    let reader = subscribe();
    let got_last = std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return false;
            }
            if line.contains("\"k\":14999") {
                return true;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.clients() < 2 {
        assert!(Instant::now() < deadline, "the browsers did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    // 30 MB in all: more than the kernel buffers of the stalled connection and its queue
    // hold.
    let pad = "x".repeat(2000);
    let mut slowest = Duration::ZERO;
    for k in 0..15_000 {
        let t = Instant::now();
        hub.publish(
            Arc::from(format!("{{\"k\":{k},\"pad\":\"{pad}\"}}")),
            Keep::No,
        );
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_micros(50));
    }
    let dropped = hub
        .stats
        .dropped_slow
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        got_last.join().unwrap_or(false),
        "the reading browser did not get the last message ({dropped} dropped)"
    );
    assert_eq!(dropped, 1);
    assert_eq!(hub.clients(), 1);
    // Waiting on the stalled socket would take seconds (its write timeout): far above this.
    assert!(
        slowest < Duration::from_millis(500),
        "a publish took {slowest:?}"
    );
    drop(stalled);
}

// ---- the interpretation switcher -------------------------------------------------------------

/// Local speed of the warped version (input seconds per output second) at output time `tau`.
fn warp_rate(tau: f64) -> f64 {
    1.0 + 0.25 * (2.0 * std::f64::consts::PI * tau / 13.0).sin()
}

/// The bundled performance time-warped without changing its pitch (overlap-add of Hann
/// grains read at a varying pace); returns the samples and the map output time -> input time
/// tabulated every `hop` output samples.
fn time_warp(input: &[f32], rate_hz: u32) -> (Vec<f32>, Vec<(f64, f64)>) {
    let n = 1024usize;
    let hop = n / 4;
    let win: Vec<f32> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
        .collect();
    let mut out = Vec::new();
    let mut map = Vec::new();
    let (mut tau, mut t) = (0.0f64, 0.0f64);
    let dt = hop as f64 / rate_hz as f64;
    loop {
        let pos = (t * rate_hz as f64) as usize;
        if pos + n > input.len() {
            break;
        }
        let at = (tau * rate_hz as f64).round() as usize;
        if out.len() < at + n {
            out.resize(at + n, 0.0);
        }
        for i in 0..n {
            // Hann grains at a quarter-window hop sum to 2.
            out[at + i] += 0.5 * win[i] * input[pos + i];
        }
        map.push((tau, t));
        t += dt * warp_rate(tau);
        tau += dt;
    }
    (out, map)
}

fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let mut f = std::io::BufWriter::new(File::create(path).expect("create wav"));
    let data_len = (samples.len() * 2) as u32;
    let mut head = Vec::new();
    head.extend_from_slice(b"RIFF");
    head.extend_from_slice(&(36 + data_len).to_le_bytes());
    head.extend_from_slice(b"WAVEfmt ");
    head.extend_from_slice(&16u32.to_le_bytes());
    head.extend_from_slice(&1u16.to_le_bytes());
    head.extend_from_slice(&1u16.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes());
    head.extend_from_slice(&(rate * 2).to_le_bytes());
    head.extend_from_slice(&2u16.to_le_bytes());
    head.extend_from_slice(&16u16.to_le_bytes());
    head.extend_from_slice(b"data");
    head.extend_from_slice(&data_len.to_le_bytes());
    f.write_all(&head).expect("write wav");
    for &x in samples {
        let v = (x.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        f.write_all(&v.to_le_bytes()).expect("write wav");
    }
    f.flush().expect("write wav");
}

/// Time in the warped version of time `t` in the original (the inverse of the tabulated map).
fn warped_time_of(map: &[(f64, f64)], t: f64) -> f64 {
    let i = map
        .partition_point(|&(_, x)| x <= t)
        .clamp(1, map.len() - 1);
    let ((a0, x0), (a1, x1)) = (map[i - 1], map[i]);
    a0 + (a1 - a0) * (t - x0) / (x1 - x0)
}

/// The switcher in a browser: the bundled performance and a time-warped copy; a switch keeps
/// the musical position (within 100 ms of the warp's truth, and the same as the library's
/// mapping) and the playing state; keys jump by bars and versions; a second start reads the
/// alignments from the cache; `--map` prints what the page computes.
#[test]
fn switcher_in_a_browser() {
    let _one = one_at_a_time();
    let dir = tmp_dir("switch");
    let rate = 22_050;
    let original = bach().join("performance.flac");
    let samples = scorefollow::audio::decode::load_mono(&original, rate).expect("decode");
    let (warped, map) = time_warp(&samples, rate);
    std::fs::create_dir_all(dir.join("time-warped")).expect("dir");
    let warped_path = dir.join("time-warped/performance.wav");
    write_wav(&warped_path, rate, &warped);
    let cache = dir.join("cache");
    let (a, b, c) = (
        original.to_string_lossy().to_string(),
        warped_path.to_string_lossy().to_string(),
        cache.to_string_lossy().to_string(),
    );
    let Some(browser) = browser_or_skip("switch") else {
        return;
    };
    let score = "scores/bach_bwv66_6/score.mid";
    let mut prog = Program::start(&[
        "switch",
        &a,
        &b,
        "--score",
        score,
        "--cache",
        &c,
        "--view",
        "127.0.0.1:0",
    ]);
    let summary = prog.wait_line("2 versions", Duration::from_secs(120));
    assert!(
        summary.contains("(2 aligned, 0 from the cache"),
        "{summary}"
    );
    let url = prog.wait_line("switcher:", Duration::from_secs(10));
    let url = url.split(' ').next().unwrap_or_default().to_string();
    let mut page = browser.open(&url);
    page.wait_for(
        "document.querySelectorAll('.version').length === 2 && [...document.querySelectorAll('#audios audio')].every(a => a.readyState >= 1)",
        Duration::from_secs(20),
    );
    // Four bars on: bar 5, where the performance's ground truth puts it.
    for _ in 0..4 {
        page.key("ArrowRight", "ArrowRight", 39);
    }
    page.wait_for(
        "document.getElementById('bar').textContent === '5'",
        Duration::from_secs(5),
    );
    let t = page
        .eval("+document.getElementById('time').dataset.t")
        .as_f64()
        .expect("time");
    let gt = scorefollow::eval::read_xy(&bach().join("gt.csv")).expect("gt");
    let bar5 = scorefollow::eval::predict(&gt.1, &gt.0, 4.0 * 60.0 / 72.0 * 4.0, false);
    assert!(
        (t - bar5).abs() < 0.1,
        "bar 5 at {t:.3} s; the ground truth says {bar5:.3} s"
    );
    page.key(" ", "Space", 32);
    page.wait_for(
        "document.body.dataset.playing === 'yes'",
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(600));
    page.screenshot("switcher.png");
    // Next version with the keyboard: same musical moment, still playing.
    page.key("n", "KeyN", 78);
    page.wait_for(
        "document.getElementById('version').dataset.index === '1'",
        Duration::from_secs(5),
    );
    let sw = page.eval("Object.assign({}, document.getElementById('last-switch').dataset)");
    let (t_from, t_to) = (
        sw["tFrom"]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .expect("tFrom"),
        sw["tTo"]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .expect("tTo"),
    );
    let truth = warped_time_of(&map, t_from);
    assert!(
        (t_to - truth).abs() < 0.1,
        "switched at {t_from:.3} s to {t_to:.3} s; the warp puts that moment at {truth:.3} s"
    );
    page.wait_for(
        "document.body.dataset.playing === 'yes'",
        Duration::from_secs(5),
    );
    let now = page
        .eval("document.querySelectorAll('#audios audio')[1].currentTime")
        .as_f64()
        .expect("time");
    assert!(
        now >= t_to - 0.05 && now < t_to + 3.0,
        "version 2 plays from {now}, not {t_to}"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#audios audio')[0].paused"),
        json!(true)
    );
    // The page maps exactly as the library does (served at /map).
    let lib: Value = serde_json::from_str(
        &http(
            addr_of(&url),
            "GET",
            &format!("/map?from=1&to=2&t={t_from}"),
            "",
            "",
        )
        .1,
    )
    .expect("map JSON");
    let lib = lib["t"].as_f64().expect("t");
    assert!((lib - t_to).abs() < 0.002, "page {t_to}, library {lib}");
    // Back with a click on the first version: the moment carries over again.
    page.click(".version[data-index='0']");
    page.wait_for(
        "document.getElementById('version').dataset.index === '0'",
        Duration::from_secs(5),
    );
    let back = page.eval("Object.assign({}, document.getElementById('last-switch').dataset)");
    let (f2, t2) = (
        back["tFrom"]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .expect("tFrom"),
        back["tTo"]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .expect("tTo"),
    );
    assert!(
        (warped_time_of(&map, t2) - f2).abs() < 0.1,
        "back from {f2} to {t2}"
    );
    drop(page);
    drop(prog);
    // A second start reads both alignments from the cache and maps as the page did.
    let out = Command::new(env!("CARGO_BIN_EXE_scorefollow"))
        .args([
            "switch",
            &a,
            &b,
            "--score",
            score,
            "--cache",
            &c,
            "--map",
            &format!("{t_from}"),
            "--from",
            "1",
            "--to",
            &b,
        ])
        .current_dir(root())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("(0 aligned, 2 from the cache"), "{err}");
    let printed: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number");
    assert!(
        (printed - t_to).abs() < 0.002,
        "--map {printed}, page {t_to}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
