//! The real smolvm 1.32.2 API server (`smolvm serve start`, the wheel's binary named by
//! `BOTTLE_FREEZE_REAL_SMOLVM`): its OpenAPI document is the fixture the sim is checked
//! against, and its answers have the shapes the sim gives. No VM boots here, so only what
//! needs none is asked: health, the machine list, and the refusals before any boot.

mod common;
mod serve_support;

use std::collections::BTreeMap;

use bottle_freeze::serve_client::{ExecRequest, ServeClient};
use hyper::Method;
use serde_json::Value;

use serve_support::{conform, openapi};

/// Key → JSON type, one level deep.
fn shape(v: &Value) -> BTreeMap<String, &'static str> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, x)| {
            let t = match x {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float",
                Value::Number(_) => "integer",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (k.clone(), t)
        })
        .collect()
}

#[test]
fn the_fixture_is_the_document_the_real_smolvm_prints() {
    let Some(bin) = serve_support::real_bin() else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let out = serve_support::real_cmd(&bin, state.path())
        .args(["serve", "openapi"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        printed == openapi(),
        "smolvm serve openapi differs from tests/fixtures/smolvm-1.32.2-openapi.json; \
         regenerate it with `smolvm serve openapi > tests/fixtures/…` and review the sim"
    );
}

async fn answer(c: &ServeClient, method: Method, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let a = c
        .request(method, path, body.map(|b| b.as_bytes().to_vec()))
        .await
        .unwrap();
    (a.status.as_u16(), a.body.to_vec())
}

#[tokio::test]
async fn real_and_sim_servers_answer_alike() {
    let Some(bin) = serve_support::real_bin() else {
        return;
    };
    let doc = openapi();
    let state = tempfile::tempdir().unwrap();
    serve_support::real_create(&bin, state.path(), "bot-bottle-alpha");
    let real = serve_support::real_tcp(&bin, state.path());

    let sim = common::Sim::new();
    sim.create("bot-bottle-alpha", "created", None);
    let simsrv = serve_support::sim_tcp(sim.home());

    let (rc, sc) = (real.client(), simsrv.client());
    let stopped_exec = r#"{"command":["true"],"autoStart":false}"#;
    let unknown_field = r#"{"command":["true"],"timeout_secs":3}"#;
    let cases: Vec<(&str, &str, Method, &str, Option<&str>)> = vec![
        ("/health", "/health", Method::GET, "get", None),
        (
            "/api/v1/machines",
            "/api/v1/machines",
            Method::GET,
            "get",
            None,
        ),
        (
            "/api/v1/machines/{name}",
            "/api/v1/machines/nope",
            Method::GET,
            "get",
            None,
        ),
        (
            "/api/v1/machines/{id}/exec",
            "/api/v1/machines/bot-bottle-alpha/exec",
            Method::POST,
            "post",
            Some(stopped_exec),
        ),
        (
            "/api/v1/machines/{id}/exec/stream",
            "/api/v1/machines/bot-bottle-alpha/exec/stream",
            Method::POST,
            "post",
            Some(stopped_exec),
        ),
        (
            "/api/v1/machines/{id}/exec",
            "/api/v1/machines/nope/exec",
            Method::POST,
            "post",
            Some(stopped_exec),
        ),
    ];
    for (route, path, method, m, body) in cases {
        let (rs, rb) = answer(&rc, method.clone(), path, body).await;
        let (ss, sb) = answer(&sc, method.clone(), path, body).await;
        assert_eq!(rs, ss, "{method} {path}: real {rs}, sim {ss}");
        conform(&doc, route, m, rs, &rb);
        conform(&doc, route, m, ss, &sb);
        let (rv, sv): (Value, Value) = (
            serde_json::from_slice(&rb).unwrap(),
            serde_json::from_slice(&sb).unwrap(),
        );
        if route == "/api/v1/machines" {
            let (rm, sm) = (&rv["machines"][0], &sv["machines"][0]);
            assert_eq!(shape(rm), shape(sm), "MachineInfo of a stopped machine");
            assert_eq!(
                rm["state"], "stopped",
                "the API calls a created machine stopped"
            );
            assert_eq!(sm["state"], "stopped");
        } else if route == "/health" {
            assert_eq!(shape(&rv), shape(&sv), "health");
        } else {
            assert_eq!(rv["code"], sv["code"], "{method} {path}");
            assert_eq!(rv["error"], sv["error"], "{method} {path}");
        }
    }
    // Unknown fields: 422 in plain text from both (the document says 400).
    let path = "/api/v1/machines/bot-bottle-alpha/exec";
    let (rs, rb) = answer(&rc, Method::POST, path, Some(unknown_field)).await;
    let (ss, sb) = answer(&sc, Method::POST, path, Some(unknown_field)).await;
    assert_eq!((rs, ss), (422, 422));
    for b in [rb, sb] {
        let t = String::from_utf8_lossy(&b).into_owned();
        assert!(t.contains("unknown field `timeout_secs`"), "{t}");
    }
    // The client's own request is accepted as far as the machine's state: 409, not 4xx
    // for its body, and the machine stays stopped.
    let e = rc
        .exec(
            "bot-bottle-alpha",
            &ExecRequest::running_only(vec!["true".into()]),
        )
        .await
        .unwrap_err();
    assert!(e.is_not_running(), "{e}");
    let m = rc.machine("bot-bottle-alpha").await.unwrap();
    assert_eq!(m.state, "stopped");
}
