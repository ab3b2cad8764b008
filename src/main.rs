use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bottle_freeze::cli::run(bottle_freeze::args::Cli::parse())
}
