//! `bottle-freeze doctor [--json]`.

use std::path::Path;
use std::process::ExitCode;

use crate::args::DoctorArgs;
use crate::config::Settings;
use crate::doctor::HostCheck;
use crate::doctor::{examine, Inputs};
use crate::freeze::FreezeConfig;
use crate::hosts::{self, HostListing};
use crate::sanitize::escape_str;

/// What one host's listing says about it.
fn host_check(l: &HostListing, prefix: &str) -> HostCheck {
    let address = escape_str(&l.host.address());
    let (ok, detail, fix) = match &l.machines {
        Ok(ms) => {
            let bottles = crate::machines::bottle_machines(ms.clone(), prefix, true);
            let running = bottles.iter().filter(|b| b.machine.is_running()).count();
            (
                true,
                format!(
                    "{} bot-bottle machines, {running} running (answered in {})",
                    bottles.len(),
                    crate::format::duration(l.took)
                ),
                None,
            )
        }
        Err(why) => (
            false,
            format!("unreachable: {why}"),
            Some(if l.host.is_local() {
                "check that smolvm works here (`smolvm machine ls`)".to_string()
            } else {
                format!(
                    "start `smolvm serve start --listen …` there, or the SSH forward to it, and check {address}"
                )
            }),
        ),
    };
    HostCheck {
        host: l.host.label.to_string(),
        address,
        ok,
        version: l.health.as_ref().map(|h| escape_str(&h.version)),
        detail,
        fix,
    }
}

pub async fn run(
    cfg: &FreezeConfig,
    args: &DoctorArgs,
    registry_bin: Option<&Path>,
    settings: &Settings,
) -> ExitCode {
    let hosts = match hosts::parse_all(&settings.hosts, settings.insecure_remote) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bottle-freeze: {e}");
            return ExitCode::from(2);
        }
    };
    // This machine's parts and every host at once, each host with its own timeout.
    let inputs = Inputs {
        smolvm: &cfg.smolvm,
        state_dir: &cfg.state_dir,
        registry_bin,
        kvm: Path::new(crate::doctor::KVM),
    };
    let (mut report, listings) = tokio::join!(
        examine(&inputs),
        hosts::list_hosts(&hosts, &cfg.smolvm, cfg.smolvm.query_timeout())
    );
    report.hosts = listings
        .iter()
        .map(|l| host_check(l, &cfg.prefix))
        .collect();
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("bottle-freeze: cannot encode JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.render());
    }
    if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
