//! `serve start --listen ADDR:PORT|unix://PATH`: smolvm's HTTP API over the sim's machines,
//! for the endpoints bottle-freeze uses (health, machine list and status, exec, exec/stream,
//! file download). The answers follow `smolvm serve openapi` of smolvm 1.32.2 and what its
//! server was seen to answer (docs/smolvm-serve-api.md); the tests check them against the
//! real document. Loopback and unix sockets only: the real server has no authentication.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

use crate::error::Failure;
use crate::serve_api::{self, Body};
use crate::store::Home;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// `unix:///path` or `ADDR:PORT` (loopback only).
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Err("unix:// needs a socket path".into());
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    let addr: SocketAddr = s.parse().map_err(|e| {
        format!("invalid listen address '{s}': {e} (want ADDR:PORT or unix://PATH)")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {addr}: the API has no authentication, so the sim serves \
             loopback or a unix socket only"
        ));
    }
    Ok(Listen::Tcp(addr))
}

/// Shared by every request.
pub struct State {
    pub home: Home,
    pub started: Instant,
}

pub fn run(home: Home, listen: Listen) -> Result<i32, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::sim(format!("start the runtime: {e}")))?;
    rt.block_on(serve(home, listen))
}

async fn serve(home: Home, listen: Listen) -> Result<i32, Failure> {
    let state = Arc::new(State {
        home,
        started: Instant::now(),
    });
    match listen {
        Listen::Tcp(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| Failure::smolvm(format!("io operation failed: {e}")))?;
            let local = listener
                .local_addr()
                .map_err(|e| Failure::sim(format!("local address: {e}")))?;
            // smolvm prints the address as given; the sim prints the bound one, so a test
            // that asked for port 0 learns its port.
            println!("smolvm API server listening on http://{local}");
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                spawn_connection(TokioIo::new(stream), state.clone());
            }
        }
        Listen::Unix(path) => {
            // A stale socket from a killed server would make bind fail.
            if std::fs::symlink_metadata(&path)
                .map(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                })
                .unwrap_or(false)
            {
                let _ = std::fs::remove_file(&path);
            }
            let listener = UnixListener::bind(&path)
                .map_err(|e| Failure::smolvm(format!("io operation failed: {e}")))?;
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
            println!("smolvm API server listening on unix://{}", path.display());
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                spawn_connection(TokioIo::new(stream), state.clone());
            }
        }
    }
}

fn spawn_connection<S>(io: TokioIo<S>, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move { Ok::<Response<Body>, Infallible>(serve_api::handle(state, req).await) }
        });
        // A client that goes away mid-answer ends the connection; its streams are dropped,
        // which kills any exec behind them.
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("unix:///tmp/x.sock"),
            Ok(Listen::Unix(PathBuf::from("/tmp/x.sock")))
        );
        assert!(matches!(parse_listen("127.0.0.1:0"), Ok(Listen::Tcp(_))));
        assert!(matches!(parse_listen("[::1]:9"), Ok(Listen::Tcp(_))));
        let err = parse_listen("0.0.0.0:9000").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("unix://").is_err());
    }
}
