//! smolvm-sim's HTTP API (`serve start`) against smolvm 1.32.2's OpenAPI document: every
//! answer's status is one the document lists for its route, and every JSON body fits the
//! document's schema (no key missing, none invented, types right). Plus the behaviour the
//! document states in words: `autoStart: false` answers 409 and wakes nothing, SSE events,
//! file bytes or a directory listing, loopback only.

mod common;
mod serve_support;

use bottle_freeze::serve_client::{ExecRequest, SseParser};
use hyper::Method;
use serde_json::{json, Value};

use serve_support::{conform, openapi};

/// Route in the document, method, path asked, body, the status wanted.
type Case = (&'static str, Method, String, Option<Vec<u8>>, u16);

fn machine_state(sim: &common::Sim, name: &str) -> String {
    let out = sim.ok(&["machine", "ls", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn fleet_sim() -> (common::Sim, tempfile::TempDir) {
    let sim = common::Sim::new();
    let root = common::small_root();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/greeting"), b"hello \xff bytes\n").unwrap();
    sim.create("bot-bottle-run", "running", Some(root.path()));
    sim.create("bot-bottle-new", "created", None);
    sim.create("bot-bottle-off", "stopped", None);
    (sim, root)
}

#[tokio::test]
async fn sim_answers_conform_to_the_real_openapi_document() {
    let doc = openapi();
    let (sim, _root) = fleet_sim();
    let server = serve_support::sim_tcp(sim.home());
    let c = server.client();
    let exec_body = |cmd: &[&str], auto: bool| {
        serde_json::to_vec(&json!({"command": cmd, "autoStart": auto})).unwrap()
    };
    let cases: Vec<Case> = vec![
        ("/health", Method::GET, "/health".into(), None, 200),
        (
            "/api/v1/machines",
            Method::GET,
            "/api/v1/machines".into(),
            None,
            200,
        ),
        (
            "/api/v1/machines/{name}",
            Method::GET,
            "/api/v1/machines/bot-bottle-run".into(),
            None,
            200,
        ),
        (
            "/api/v1/machines/{name}",
            Method::GET,
            "/api/v1/machines/nope".into(),
            None,
            404,
        ),
        (
            "/api/v1/machines/{id}/exec",
            Method::POST,
            "/api/v1/machines/bot-bottle-run/exec".into(),
            Some(exec_body(&["cat", "/etc/greeting"], false)),
            200,
        ),
        (
            "/api/v1/machines/{id}/exec",
            Method::POST,
            "/api/v1/machines/bot-bottle-new/exec".into(),
            Some(exec_body(&["true"], false)),
            409,
        ),
        (
            "/api/v1/machines/{id}/exec",
            Method::POST,
            "/api/v1/machines/nope/exec".into(),
            Some(exec_body(&["true"], false)),
            404,
        ),
        (
            "/api/v1/machines/{id}/exec",
            Method::POST,
            "/api/v1/machines/bot-bottle-run/exec".into(),
            Some(exec_body(&[], false)),
            400,
        ),
        (
            "/api/v1/machines/{id}/exec/stream",
            Method::POST,
            "/api/v1/machines/bot-bottle-run/exec/stream".into(),
            Some(exec_body(&["echo", "hi"], false)),
            200,
        ),
        (
            "/api/v1/machines/{id}/exec/stream",
            Method::POST,
            "/api/v1/machines/bot-bottle-off/exec/stream".into(),
            Some(exec_body(&["echo", "hi"], false)),
            409,
        ),
        (
            "/api/v1/machines/{id}/exec/stream",
            Method::POST,
            "/api/v1/machines/nope/exec/stream".into(),
            Some(exec_body(&["echo", "hi"], false)),
            404,
        ),
        (
            "/api/v1/machines/{id}/files/{path}",
            Method::GET,
            "/api/v1/machines/bot-bottle-run/files/etc/greeting".into(),
            None,
            200,
        ),
        (
            "/api/v1/machines/{id}/files/{path}",
            Method::GET,
            "/api/v1/machines/bot-bottle-run/files/etc/missing".into(),
            None,
            404,
        ),
        (
            "/api/v1/machines/{id}/files/{path}",
            Method::GET,
            "/api/v1/machines/nope/files/etc".into(),
            None,
            404,
        ),
    ];
    for (route, method, path, body, want) in cases {
        let a = c.request(method.clone(), &path, body).await.unwrap();
        assert_eq!(
            a.status.as_u16(),
            want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        conform(
            &doc,
            route,
            &method.as_str().to_ascii_lowercase(),
            a.status.as_u16(),
            &a.body,
        );
        // Every error answer of the API is `{"error","code"}` (checked by the schema
        // above where the document gives one; here also where it gives none).
        if want >= 400 {
            let v: Value = serde_json::from_slice(&a.body).unwrap();
            assert!(v["error"].is_string() && v["code"].is_string(), "{v}");
        }
        // The document's content types: SSE for the stream, bytes for a file.
        if route.ends_with("/stream") && want == 200 {
            assert_eq!(a.content_type.as_deref(), Some("text/event-stream"));
        }
        if route.ends_with("{path}") && want == 200 {
            assert_eq!(a.content_type.as_deref(), Some("application/octet-stream"));
            assert_eq!(&a.body[..], b"hello \xff bytes\n");
        }
    }
    // The listing says `stopped` for the machine the CLI calls `created`.
    let ms = c.machines().await.unwrap();
    let new = ms.iter().find(|m| m.name == "bot-bottle-new").unwrap();
    assert_eq!(new.state, "stopped");
    assert_eq!(machine_state(&sim, "bot-bottle-new"), "created");
}

#[tokio::test]
async fn exec_without_auto_start_refuses_and_wakes_nothing() {
    let (sim, _root) = fleet_sim();
    let server = serve_support::sim_tcp(sim.home());
    let c = server.client();
    for name in ["bot-bottle-new", "bot-bottle-off"] {
        let e = c
            .exec(name, &ExecRequest::running_only(vec!["true".into()]))
            .await
            .unwrap_err();
        assert!(e.is_not_running(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("CONFLICT") && msg.contains("autoStart"),
            "{msg}"
        );
    }
    assert_eq!(machine_state(&sim, "bot-bottle-new"), "created");
    assert_eq!(machine_state(&sim, "bot-bottle-off"), "stopped");
    // Byte-exact output of a running machine through stdoutB64.
    let out = c
        .exec(
            "bot-bottle-run",
            &ExecRequest::running_only(vec!["cat".into(), "/etc/greeting".into()]),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout, b"hello \xff bytes\n");
}

#[tokio::test]
async fn request_fields_are_checked_like_the_real_server() {
    let (sim, _root) = fleet_sim();
    let server = serve_support::sim_tcp(sim.home());
    let c = server.client();
    let path = "/api/v1/machines/bot-bottle-run/exec";
    // smolvm 1.32.2 answers a misspelt field 422 in plain text (its document says 400).
    let a = c
        .request(
            Method::POST,
            path,
            Some(br#"{"command":["true"],"timeout_secs":3}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(a.status.as_u16(), 422);
    let text = String::from_utf8_lossy(&a.body);
    assert!(text.contains("unknown field `timeout_secs`"), "{text}");
    let a = c
        .request(Method::POST, path, Some(b"{not json".to_vec()))
        .await
        .unwrap();
    assert_eq!(a.status.as_u16(), 400);
    let a = c.request(Method::GET, path, None).await.unwrap();
    assert_eq!(a.status.as_u16(), 405);
}

#[tokio::test]
async fn exec_stream_sends_stdout_stderr_and_exit_events() {
    let (sim, _root) = fleet_sim();
    let server = serve_support::sim_tcp(sim.home());
    let c = server.client();
    let body = serde_json::to_vec(&ExecRequest::running_only(vec![
        "cat".into(),
        "/etc/greeting".into(),
        "/nope".into(),
    ]))
    .unwrap();
    let a = c
        .request(
            Method::POST,
            "/api/v1/machines/bot-bottle-run/exec/stream",
            Some(body),
        )
        .await
        .unwrap();
    let events = SseParser::default().push(&a.body);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert!(
        kinds.contains(&"stdout") && kinds.contains(&"stderr"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"exit"));
    let out: String = events
        .iter()
        .filter(|e| e.event == "stdout")
        .map(|e| e.data.as_str())
        .collect();
    // Text, not bytes: the invalid byte arrives as U+FFFD, as from smolvm's server.
    assert_eq!(out, "hello \u{fffd} bytes\n");
    let exit: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(exit, json!({"exitCode": 1}));
}

#[tokio::test]
async fn files_gives_a_directory_listing_as_json() {
    let (sim, _root) = fleet_sim();
    let server = serve_support::sim_tcp(sim.home());
    let a = server
        .client()
        .request(
            Method::GET,
            "/api/v1/machines/bot-bottle-run/files/etc",
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    let greeting = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "greeting")
        .unwrap();
    assert_eq!(greeting["kind"], "file");
    assert_eq!(greeting["size"], 14);
}

#[tokio::test]
async fn serves_a_private_unix_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let (sim, _root) = fleet_sim();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("smolvm.sock");
    let server = serve_support::sim_unix(sim.home(), &sock);
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let h = server.client().health().await.unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!(h.machines.unwrap().total, 3);
}

#[test]
fn refuses_to_listen_beyond_loopback() {
    let sim = common::Sim::new();
    let out = sim
        .cmd()
        .args(["serve", "start", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}
