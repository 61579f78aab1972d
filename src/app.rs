//! Dispatch from a parsed command line to the command implementations,
//! and the mapping of their outcome to an exit code.

use crate::cli::{Cli, Command, PlanCommand};
use crate::config::Config;
use crate::error::{Error, ExitCode, Result};
use crate::report::Reporter;

/// Runs one invocation to its exit code. Every error passes through the
/// reporter so `--json` users get it as an event too.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Generate(g) = &cli.command {
        return match crate::docs::write_all(&g.dir) {
            Ok(()) => ExitCode::Ok,
            Err(e) => {
                eprintln!("mailferry: {}: {e}", g.dir.display());
                ExitCode::Partial
            }
        };
    }
    let config = match Config::load(&cli.global) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailferry: {e}");
            return e.exit_code();
        }
    };
    let mut settings = config.settings.clone();
    if matches!(cli.command, Command::Plan(_)) {
        settings.dry_run = true;
    }
    let reporter = Reporter::new(&settings);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailferry: cannot start the async runtime: {e}");
            return ExitCode::Partial;
        }
    };
    let result = rt.block_on(dispatch(&cli.command, &config, &settings, &reporter));
    reporter.finish(result.as_ref().err())
}

async fn dispatch(
    cmd: &Command,
    config: &Config,
    settings: &crate::config::Settings,
    reporter: &Reporter,
) -> Result<()> {
    let _ = (settings, reporter);
    match cmd {
        Command::Fetch(a) => {
            let _job = config.fetch_job(a)?;
            Err(Error::NotImplemented("fetch"))
        }
        Command::Push(a) => {
            let _job = config.push_job(a)?;
            Err(Error::NotImplemented("push"))
        }
        Command::Prune(a) => {
            let _job = config.prune_job(a)?;
            Err(Error::NotImplemented("prune"))
        }
        Command::Verify(a) => {
            let _job = config.verify_job(a)?;
            Err(Error::NotImplemented("verify"))
        }
        Command::Plan(p) => match &p.what {
            PlanCommand::Fetch(a) => {
                let _job = config.fetch_job(a)?;
                Err(Error::NotImplemented("plan fetch"))
            }
            PlanCommand::Push(a) => {
                let _job = config.push_job(a)?;
                Err(Error::NotImplemented("plan push"))
            }
            PlanCommand::Prune(a) => {
                let _job = config.prune_job(a)?;
                Err(Error::NotImplemented("plan prune"))
            }
        },
        Command::Status(_) => Err(Error::NotImplemented("status")),
        Command::Check(c) => {
            let secret = crate::config::secret_of(&c.secret, "MAILFERRY_PASSWORD");
            crate::commands::check::run(config, &c.urls, secret, reporter).await
        }
        Command::Run(r) => {
            let jobs = config.file_jobs(&r.jobs)?;
            if jobs.is_empty() {
                return Err(Error::Usage("the config file has no [[job]]".into()));
            }
            Err(Error::NotImplemented("run"))
        }
        Command::Generate(_) => unreachable!("handled before the runtime starts"),
    }
}
