//! Servers of smolvm's HTTP API for the tests: smolvm-sim's `serve start` and the real
//! smolvm's, each a child process stopped when dropped; and a checker of JSON answers
//! against smolvm 1.32.2's OpenAPI document (tests/fixtures/smolvm-1.32.2-openapi.json).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bottle_freeze::serve_client::{Endpoint, ServeClient};
use serde_json::Value;

pub const OPENAPI_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/smolvm-1.32.2-openapi.json"
);

pub fn openapi() -> Value {
    serde_json::from_slice(&std::fs::read(OPENAPI_FIXTURE).unwrap()).unwrap()
}

/// A running API server (sim or real); killed and reaped on drop.
pub struct Server {
    child: Child,
    pub endpoint: Endpoint,
}

impl Server {
    pub fn client(&self) -> ServeClient {
        ServeClient::new(self.endpoint.clone(), Duration::from_secs(10))
    }

    /// The `--host` spec of this server.
    pub fn spec(&self, label: &str) -> String {
        format!("{label}={}", self.endpoint)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server now (SIGTERM, then reaped).
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `smolvm-sim serve start --listen 127.0.0.1:0` over `home`; the bound port is read from
/// the line the server prints.
pub fn sim_tcp(home: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smolvm-sim"))
        .env("SMOLVM_SIM_HOME", home)
        .args(["serve", "start", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit_once("http://")
        .map(|(_, a)| a.to_string())
        .unwrap_or_else(|| panic!("sim serve printed {line:?}"));
    Server {
        child,
        endpoint: Endpoint::Tcp(addr),
    }
}

/// `smolvm-sim serve start --listen unix://SOCK`, waiting until it answers.
pub fn sim_unix(home: &Path, sock: &Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_smolvm-sim"))
        .env("SMOLVM_SIM_HOME", home)
        .args(["serve", "start", "--listen"])
        .arg(format!("unix://{}", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        endpoint: Endpoint::Unix(sock.to_path_buf()),
    };
    wait_healthy(&s);
    s
}

fn wait_healthy(s: &Server) {
    // On a thread of its own: callers may be inside a runtime already.
    let endpoint = s.endpoint.clone();
    std::thread::spawn(move || wait_healthy_at(endpoint))
        .join()
        .unwrap();
}

fn wait_healthy_at(endpoint: Endpoint) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = ServeClient::new(endpoint.clone(), Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if rt.block_on(c.health()).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} did not answer /health within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real smolvm of the wheel (`BOTTLE_FREEZE_REAL_SMOLVM`), or None after
/// `common::missing` (a failure under CI).
pub fn real_bin() -> Option<PathBuf> {
    match std::env::var_os("BOTTLE_FREEZE_REAL_SMOLVM") {
        Some(p) if !p.is_empty() && Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => {
            crate::common::missing(
                "the real smolvm CLI (BOTTLE_FREEZE_REAL_SMOLVM; .ci/run downloads smolmachines==1.32.2)",
            );
            None
        }
    }
}

/// The real smolvm with its wheel's library dirs and a private state dir.
pub fn real_cmd(bin: &Path, state: &Path) -> Command {
    let lib = std::env::var_os("SMOLVM_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.parent().unwrap().to_path_buf());
    let mut c = Command::new(bin);
    c.env("SMOLVM_LIB_DIR", &lib)
        .env("SMOLVM_AGENT_ROOTFS_TAR", lib.join("agent-rootfs.tar.zst"))
        .env("NO_COLOR", "1")
        .env_remove("SMOLVM_MACHINE_NAME")
        .env_remove("SMOLVM_GUEST_ROLLOUT_HOST_PORT")
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null());
    c
}

/// `smolvm machine create --name NAME` in `state` (no VM boots for that).
pub fn real_create(bin: &Path, state: &Path, name: &str) {
    let out = real_cmd(bin, state)
        .args(["machine", "create", "--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "machine create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `smolvm serve start` on a loopback port. Every server also binds a "guest rollout"
/// port (10081 by default), so each gets a free one of its own.
pub fn real_tcp(bin: &Path, state: &Path) -> Server {
    let port = free_port();
    let rollout = free_port();
    let child = real_cmd(bin, state)
        .args(["serve", "start", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--guest-rollout-port")
        .arg(rollout.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        endpoint: Endpoint::Tcp(format!("127.0.0.1:{port}")),
    };
    wait_healthy(&s);
    s
}

/// `smolvm serve start` on a unix socket.
pub fn real_unix(bin: &Path, state: &Path, sock: &Path) -> Server {
    let rollout = free_port();
    let child = real_cmd(bin, state)
        .args(["serve", "start", "--listen"])
        .arg(format!("unix://{}", sock.display()))
        .arg("--guest-rollout-port")
        .arg(rollout.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        endpoint: Endpoint::Unix(sock.to_path_buf()),
    };
    wait_healthy(&s);
    s
}

/// The statuses the document lists for `method path` (path as in the document).
pub fn documented_statuses(doc: &Value, path: &str, method: &str) -> Vec<String> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("the document has no {method} {path}"))
        .keys()
        .cloned()
        .collect()
}

/// The schema the document gives for `status` of `method path` as JSON, if any.
pub fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Option<Value> {
    let r = &doc["paths"][path][method]["responses"][status.to_string()];
    let s = &r["content"]["application/json"]["schema"];
    (!s.is_null()).then(|| s.clone())
}

/// Checks `v` against `schema` (the subset smolvm's document uses: $ref, oneOf, type,
/// enum, required, properties, items, minimum). Keys the schema does not declare are
/// errors: an answer must not invent fields.
pub fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "unresolved {r}");
        return check(doc, target, v, at, errs);
    }
    if let Some(alts) = schema["oneOf"].as_array() {
        let ok = alts.iter().any(|alt| {
            let mut e = Vec::new();
            check(doc, alt, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errs.push(format!("{at}: {v} matches no alternative of oneOf"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        errs.push(format!("{at}: {v} is not of type {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            errs.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if n < min {
            errs.push(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let key = req.as_str().unwrap();
            if !obj.contains_key(key) {
                errs.push(format!("{at}: required key {key:?} is missing"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, x) in obj {
                match props.get(k) {
                    Some(ps) => check(doc, ps, x, &format!("{at}.{k}"), errs),
                    None => errs.push(format!("{at}: key {k:?} is not in the document")),
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Checks one answer against the document: its status is one the document lists for the
/// route, and a JSON body fits the schema given for that status.
pub fn conform(doc: &Value, path: &str, method: &str, status: u16, body: &[u8]) {
    let listed = documented_statuses(doc, path, method);
    assert!(
        listed.contains(&status.to_string()),
        "{method} {path} answered {status}, the document lists {listed:?}"
    );
    if let Some(schema) = response_schema(doc, path, method, status) {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{method} {path} {status}: not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        let mut errs = Vec::new();
        check(doc, &schema, &v, "$", &mut errs);
        assert!(errs.is_empty(), "{method} {path} {status}: {errs:#?}\n{v}");
    }
}
