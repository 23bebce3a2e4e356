use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use capture::cli::Args;
use capture::{CaptureError, Config};
use clap::Parser as _;

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.check_ready {
        return Ok(capture::ready::check(path)?);
    }
    let config = Config::try_from(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    match capture::run(&config, stop) {
        Ok(summary) => {
            print!("{summary}");
            Ok(())
        }
        Err(CaptureError::Write {
            message,
            partial,
            summary,
        }) => {
            print!("{summary}");
            let partial = partial
                .map(|p| format!("; incomplete segment left as {p}"))
                .unwrap_or_default();
            anyhow::bail!(
                "writing traces failed: {message}{partial}; finalized files above are complete"
            )
        }
        Err(e) => Err(e).context(format!("capturing into {}", config.output.display())),
    }
}
