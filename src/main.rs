use std::process::ExitCode;

use clap::FromArgMatches as _;

// The simulator (`src/bin/smolvm-sim/`) is compiled in too: started through a link named
// `smolvm-sim`, this binary is the simulator, so `bottle-freeze demo` needs nothing beside
// it (`cargo run` builds only this binary). Its modules name each other `crate::…`, so
// they are brought to this crate's root, as they sit in the simulator's own binary.
#[path = "bin/smolvm-sim/main.rs"]
mod sim;
#[allow(unused_imports)]
use sim::*;

fn main() -> ExitCode {
    if bottle_freeze::demo::invoked_as_sim(std::env::args_os().next().as_deref()) {
        // Exits with the simulator's status.
        sim::main();
    }
    // Everything this process and its children write (archives, images' layers in the
    // registry, artifacts, logs) holds the guest's data: private whatever the umask.
    bottle_freeze::private::private_umask();
    bottle_freeze::entry::complete_if_asked();
    use bottle_freeze::args::{command, Cli};
    // The matches are kept beside the parsed struct: they say which values were given
    // as flags, which the configuration file must not override.
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut command()).exit(),
    };
    bottle_freeze::entry::run(cli, &matches)
}
