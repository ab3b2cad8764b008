//! smolvm-sim: the process tree dies with the sim.

mod sim_support;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use sim_support::{dead, root_with_noise, tar_args, wait_for_grandchild, wait_until, Sim};

fn hanging_tar(sim: &Sim, own_group: bool) -> std::process::Child {
    let mut cmd = sim.cmd();
    cmd.args(["machine", "exec", "--name", "m", "--stream", "--"])
        .args(tar_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if own_group {
        cmd.process_group(0);
    }
    cmd.spawn().unwrap()
}

fn setup() -> (tempfile::TempDir, Sim) {
    let root = root_with_noise(4 * 1024 * 1024);
    let sim = Sim::new();
    sim.create("m", root.path());
    sim.ok(&["sim", "set", "m", "--hang-after", "64K"]);
    (root, sim)
}

#[test]
fn sigterm_to_the_sim_kills_its_child() {
    let (_root, sim) = setup();
    let mut child = hanging_tar(&sim, false);
    let tar = wait_for_grandchild(&child);
    assert!(!dead(tar));
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), None);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(
        wait_until(Duration::from_secs(5), || dead(tar)),
        "tar {tar} outlived the sim"
    );
}

#[test]
fn group_kill_reaches_the_child() {
    let (_root, sim) = setup();
    let mut child = hanging_tar(&sim, true);
    let tar = wait_for_grandchild(&child);
    // Same process group as the sim: no setsid.
    let pgid_of = |pid: u32| unsafe { libc::getpgid(pid as i32) };
    assert_eq!(pgid_of(tar), child.id() as i32);
    let rc = unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0);
    child.wait().unwrap();
    assert!(wait_until(Duration::from_secs(5), || dead(tar)));
}

#[test]
fn sigkill_to_the_sim_alone_still_takes_the_child() {
    // `sleep` writes nothing, so no broken pipe would end it: only the parent-death signal.
    let sim = Sim::new();
    sim.ok(&["sim", "create", "m"]);
    let mut child = sim
        .cmd()
        .args([
            "machine", "exec", "--name", "m", "--stream", "--", "sleep", "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sleeper = wait_for_grandchild(&child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || dead(sleeper)),
        "sleep {sleeper} orphaned"
    );
}
