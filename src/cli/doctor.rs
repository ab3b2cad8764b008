//! `bottle-freeze doctor [--json]`.

use std::path::Path;
use std::process::ExitCode;

use crate::args::DoctorArgs;
use crate::doctor::{examine, Inputs};
use crate::freeze::FreezeConfig;

pub async fn run(cfg: &FreezeConfig, args: &DoctorArgs, registry_bin: Option<&Path>) -> ExitCode {
    let report = examine(&Inputs {
        smolvm: &cfg.smolvm,
        state_dir: &cfg.state_dir,
        registry_bin,
        kvm: Path::new(crate::doctor::KVM),
    })
    .await;
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
