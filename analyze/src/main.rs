//! The `analyze` binary: parse arguments, run, report errors.

use std::process::ExitCode;

use analyze::cli::{Cli, Command};
use anyhow::Context as _;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Command::try_from(cli)
        .context("invalid arguments")
        .and_then(|c| analyze::run(c).map_err(anyhow::Error::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("analyze: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
