//! A small W3C WebDriver client for the browser test: Debian's headless
//! Chromium driven through chromedriver, over plain HTTP on loopback.
//!
//! Chromedriver is started on a free port as a child process and killed when
//! the [`Browser`] is dropped (after the session, and with it Chromium, is
//! closed). Each browser gets a fresh profile in a temporary directory.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Bound on one WebDriver command (a page load, a screenshot).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Headless Chromium under chromedriver, one WebDriver session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: tempfile::TempDir,
    pub driver_log: PathBuf,
}

/// Chromium and chromedriver are part of the test setup: missing means
/// scripts/test.sh was not run, which is a failure, not a reason to skip.
pub fn require_chromium() {
    for p in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(p).exists(),
            "{p} is not installed: run scripts/test.sh, which installs the Debian packages \
             chromium and chromium-driver"
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub fn start() -> Browser {
        require_chromium();
        let profile = tempfile::tempdir().expect("profile dir");
        let driver_log = profile.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", driver_log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            profile,
            driver_log,
        };
        b.wait_driver();
        let user_data = b.profile.path().join("chromium-profile");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            "--window-size=1400,1000",
                            format!("--user-data-dir={}", user_data.display()),
                        ],
                    },
                },
            },
        });
        let v = b.call("POST", "/session", Some(&caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}\n{}", b.log()))
            .to_string();
        b
    }

    fn wait_driver(&mut self) {
        let t = Instant::now();
        loop {
            if let Some(st) = self.driver.try_wait().unwrap() {
                panic!("chromedriver exited ({st}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (_, v) = http(self.port, "GET", "/status", None);
                if v["value"]["ready"].as_bool() == Some(true) {
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "chromedriver never became ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Chromedriver's log, for failure messages.
    pub fn log(&self) -> String {
        let s = std::fs::read_to_string(&self.driver_log).unwrap_or_default();
        // The tail is what matters; the start is the command line.
        let cut = s.len().saturating_sub(8000);
        let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s[cut..].to_string()
    }

    /// One WebDriver command; returns `value`, panics on a WebDriver error.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// One WebDriver command; `Err` carries the WebDriver error.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let (status, v) = http(self.port, method, path, body);
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status == 200 {
            Ok(value)
        } else {
            Err(format!(
                "HTTP {status}: {} {}",
                value["error"].as_str().unwrap_or(""),
                value["message"].as_str().unwrap_or(&v.to_string())
            ))
        }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(&json!({ "url": url })));
    }

    /// The element matching a CSS selector; panics when there is none.
    pub fn find(&self, css: &str) -> String {
        self.try_find(css)
            .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
    }

    pub fn try_find(&self, css: &str) -> Result<String, String> {
        let v = self.try_call(
            "POST",
            &self.s("/element"),
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element reference in {v}"))
    }

    /// Types `text` into an element (appending to what is there).
    pub fn send_keys(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{element}/value")),
            Some(&json!({ "text": text })),
        );
    }

    pub fn clear(&self, element: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{element}/clear")),
            Some(&json!({})),
        );
    }

    pub fn click(&self, element: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{element}/click")),
            Some(&json!({})),
        );
    }

    /// The rendered text of an element.
    pub fn text(&self, element: &str) -> String {
        self.call("GET", &self.s(&format!("/element/{element}/text")), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The rendered text of the element matching `css`.
    pub fn text_of(&self, css: &str) -> String {
        self.text(&self.find(css))
    }

    /// A DOM property (e.g. `value`) of an element.
    pub fn property(&self, element: &str, name: &str) -> Value {
        self.call(
            "GET",
            &self.s(&format!("/element/{element}/property/{name}")),
            None,
        )
    }

    /// Chooses the option with `value` in the `<select>` matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let option = self.find(&format!("{css} option[value=\"{value}\"]"));
        self.click(&option);
        let sel = self.find(css);
        assert_eq!(
            self.property(&sel, "value").as_str(),
            Some(value),
            "option {value:?} of {css} was not selected"
        );
    }

    /// The current DOM, serialized.
    pub fn page_source(&self) -> String {
        self.call("GET", &self.s("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn execute_script(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// A PNG screenshot of the viewport, written to `path`; returns its bytes.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let v = self.call("GET", &self.s("/screenshot"), None);
        let png = base64_decode(v.as_str().expect("screenshot is a base64 string"))
            .expect("screenshot is valid base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, &png).unwrap();
        png
    }

    /// A PNG screenshot of one element (scrolled into view), written to
    /// `path`; returns its bytes.
    pub fn element_screenshot(&self, element: &str, path: &Path) -> Vec<u8> {
        let v = self.call(
            "GET",
            &self.s(&format!("/element/{element}/screenshot")),
            None,
        );
        let png = base64_decode(v.as_str().expect("screenshot is a base64 string"))
            .expect("screenshot is valid base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, &png).unwrap();
        png
    }

    /// Polls `read` until `done` holds for its result, up to `deadline`;
    /// returns the last result. Panics with `what` and that result otherwise.
    pub fn wait_for<T: std::fmt::Debug>(
        &self,
        what: &str,
        deadline: Duration,
        mut read: impl FnMut(&Browser) -> T,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let t = Instant::now();
        loop {
            let v = read(self);
            if done(&v) {
                return v;
            }
            assert!(
                t.elapsed() < deadline,
                "timed out waiting for {what}; last: {v:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium; then chromedriver can go.
            let _ = self.try_call("DELETE", &self.s(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 request to chromedriver: (status, JSON body).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect chromedriver");
    s.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).expect("send to chromedriver");

    // Read the head, then exactly Content-Length bytes (or to EOF).
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("read from chromedriver");
        assert!(
            n > 0,
            "chromedriver closed the connection without a response"
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP head from chromedriver: {head}"));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    let mut body = raw.split_off(head_end);
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            break;
        }
        let n = s.read(&mut buf).expect("read from chromedriver");
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk(&body);
    }
    if let Some(l) = length {
        body.truncate(l);
    }
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "chromedriver sent no JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    };
    (status, v)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&b[..i]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let rest = &b[i + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        b = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Standard base64 (RFC 4648, with or without padding; whitespace ignored).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let data = match digits.iter().position(|&c| c == b'=') {
        Some(p) if digits[p..].iter().all(|&c| c == b'=') && digits.len().is_multiple_of(4) => {
            &digits[..p]
        }
        Some(_) => return None,
        None => &digits[..],
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// `target/screenshots/<name>`, where the browser tests keep their pictures.
pub fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name)
}
