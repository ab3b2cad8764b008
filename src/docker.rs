//! Connecting to the Docker engine (bollard), with the API version negotiated so that
//! older daemons (Debian's 20.10 speaks API 1.41) accept our requests.

use bollard::Docker;

#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Docker daemon at {host}: {why} (start dockerd, or set DOCKER_HOST)")]
pub struct DockerUnreachable {
    pub host: String,
    pub why: String,
}

/// The daemon address in use: `DOCKER_HOST` or the local socket.
pub fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects, negotiates the API version and pings the daemon.
pub async fn connect() -> Result<Docker, DockerUnreachable> {
    let err = |why: String| DockerUnreachable { host: host(), why };
    let docker = Docker::connect_with_defaults().map_err(|e| err(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| err(e.to_string()))?;
    docker.ping().await.map_err(|e| err(e.to_string()))?;
    Ok(docker)
}
