//! `bottle-freeze doctor [--json]`.

use std::path::Path;
use std::process::ExitCode;

use crate::args::{DoctorArgs, GlobalOpts};
use crate::doctor::{examine, Inputs};
use crate::smolvm::Smolvm;

/// The device smolvm opens to start a VM.
const KVM: &str = "/dev/kvm";

pub async fn run(global: &GlobalOpts, args: &DoctorArgs, registry_bin: Option<&Path>) -> ExitCode {
    let smolvm = Smolvm::new(&global.smolvm)
        .with_query_timeout(std::time::Duration::from_secs(global.query_timeout));
    let state_dir = global
        .state_dir
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let report = examine(&Inputs {
        smolvm: &smolvm,
        state_dir: &state_dir,
        registry_bin,
        kvm: Path::new(KVM),
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
