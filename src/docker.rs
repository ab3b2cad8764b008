//! Connecting to the Docker engine (bollard), with the API version negotiated so that
//! older daemons (Debian's 20.10 speaks API 1.41) accept our requests.

use bollard::Docker;

#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Docker daemon at {host}: {why} (start dockerd, or set DOCKER_HOST)")]
pub struct DockerUnreachable {
    pub host: String,
    pub why: String,
}

/// The daemon's local socket when `DOCKER_HOST` names none.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// `DOCKER_HOST` when it names something: set but empty means unset, as the docker CLI
/// takes it.
fn docker_host_env() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
}

/// The daemon address in use: `DOCKER_HOST` or the local socket.
pub fn host() -> String {
    docker_host_env().unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

/// Connects, negotiates the API version and pings the daemon.
pub async fn connect() -> Result<Docker, DockerUnreachable> {
    let err = |why: String| DockerUnreachable { host: host(), why };
    let docker = match docker_host_env() {
        Some(_) => Docker::connect_with_defaults(),
        // bollard would read the empty DOCKER_HOST as an address.
        None => Docker::connect_with_unix(DEFAULT_SOCKET, 120, bollard::API_DEFAULT_VERSION),
    }
    .map_err(|e| err(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| err(e.to_string()))?;
    docker.ping().await.map_err(|e| err(e.to_string()))?;
    Ok(docker)
}
