use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    use bottle_freeze::args::Cli;
    // Everything this process and its children write (archives, images' layers in the
    // registry, artifacts, logs) holds the guest's data: private whatever the umask.
    bottle_freeze::private::private_umask();
    // The matches are kept beside the parsed struct: they say which values were given
    // as flags, which the configuration file must not override.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    bottle_freeze::entry::run(cli, &matches)
}
