//! Proves the real parts the suite relies on answer: the Docker daemon builds a
//! `FROM scratch` image, Debian's registry binary starts on a loopback port (through the
//! same code the freeze uses) and the daemon pushes to it.

mod common;

use std::io::Write;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt;

#[tokio::test]
async fn daemon_builds_and_pushes_to_spawned_registry() {
    let Some(docker) = common::docker().await else {
        return;
    };
    let Some(reg_bin) = common::registry_bin() else {
        return;
    };
    let Some(busybox) = common::busybox() else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let reg = bottle_freeze::registry::SpawnedRegistry::start(&reg_bin, dir.path(), None)
        .await
        .expect("registry starts");
    assert!(
        reg.addr().ip().is_loopback(),
        "registry must listen on loopback only"
    );

    // Context: Dockerfile + static busybox, built in memory (it is small).
    let mut ctx = tar::Builder::new(Vec::new());
    let dockerfile = b"FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"true\"]\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ctx.append_data(&mut h, "Dockerfile", &dockerfile[..])
        .unwrap();
    ctx.append_path_with_name(&busybox, "busybox").unwrap();
    let ctx = ctx.into_inner().unwrap();

    let tag = format!("bottle-freeze-real-parts:{}", std::process::id());
    let opts = BuildImageOptionsBuilder::default().t(&tag).rm(true).build();
    let mut build = docker.build_image(opts, None, Some(bollard::body_full(ctx.into())));
    let mut log = Vec::new();
    while let Some(item) = build.next().await {
        let info = item.expect("build succeeds");
        if let Some(s) = info.stream {
            log.write_all(s.as_bytes()).unwrap();
        }
    }
    let image = docker
        .inspect_image(&tag)
        .await
        .expect("image exists after build");
    assert!(image.id.unwrap().starts_with("sha256:"));

    let repo = format!("{}/bottle-freeze-real-parts", reg.addr());
    docker
        .tag_image(
            &tag,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(&repo)
                    .tag("t1")
                    .build(),
            ),
        )
        .await
        .unwrap();
    let mut push = docker.push_image(
        &repo,
        Some(PushImageOptionsBuilder::default().tag("t1").build()),
        None,
    );
    while let Some(item) = push.next().await {
        item.expect("push succeeds");
    }

    let url = format!(
        "http://{}/v2/bottle-freeze-real-parts/tags/list",
        reg.addr()
    );
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        body.contains("\"t1\""),
        "registry lists the pushed tag: {body}"
    );

    let pid = reg.pid().unwrap();
    reg.stop().await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry stopped"
    );
    let _ = docker
        .remove_image(
            &tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    let _ = docker
        .remove_image(
            &format!("{repo}:t1"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

/// The spawned registry listens on 127.0.0.1 only, and its storage is in the folder given.
#[tokio::test]
async fn spawned_registry_binds_loopback_only() {
    let Some(reg_bin) = common::registry_bin() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reg = bottle_freeze::registry::SpawnedRegistry::start(&reg_bin, dir.path(), None)
        .await
        .expect("registry starts");
    let port = reg.addr().port();
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st 0A = LISTEN; local address is HEXIP:HEXPORT.
            if cols.len() > 3 && cols[3] == "0A" {
                if let Some((ip, p)) = cols[1].split_once(':') {
                    if u16::from_str_radix(p, 16).ok() == Some(port) {
                        listeners.push(ip.to_string());
                    }
                }
            }
        }
    }
    assert_eq!(
        listeners,
        ["0100007F"],
        "listening addresses for port {port}"
    );
    assert!(dir.path().join("registry-storage").is_dir());
    reg.stop().await;
}
