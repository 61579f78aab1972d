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
    let ctx = || crate::exec::Ctx {
        settings,
        reporter,
        interrupt: crate::interrupt::Interrupt::install(),
        now: crate::exec::now(),
    };
    match cmd {
        Command::Fetch(a) => crate::exec::run_job(&config.fetch_job(a)?, "fetch", &ctx()).await,
        Command::Push(a) => crate::exec::run_job(&config.push_job(a)?, "push", &ctx()).await,
        Command::Prune(a) => crate::exec::run_job(&config.prune_job(a)?, "prune", &ctx()).await,
        Command::Verify(a) => crate::exec::run_job(&config.verify_job(a)?, "verify", &ctx()).await,
        Command::Plan(p) => match &p.what {
            PlanCommand::Fetch(a) => {
                crate::exec::run_job(&config.fetch_job(a)?, "plan", &ctx()).await
            }
            PlanCommand::Push(a) => {
                crate::exec::run_job(&config.push_job(a)?, "plan", &ctx()).await
            }
            PlanCommand::Prune(a) => {
                crate::exec::run_job(&config.prune_job(a)?, "plan", &ctx()).await
            }
        },
        Command::Status(st) => {
            crate::commands::status::run(config, &st.jobs, st.remote, reporter).await
        }
        Command::Check(c) => {
            let secret = crate::config::secret_of(&c.secret, "MAILFERRY_PASSWORD");
            crate::commands::check::run(config, &c.urls, secret, reporter).await
        }
        Command::Run(r) => {
            let jobs = config.file_jobs(&r.jobs)?;
            if jobs.is_empty() {
                return Err(Error::Usage("the config file has no [[job]]".into()));
            }
            let ctx = ctx();
            // Every job runs; the worst outcome decides the exit code.
            let mut first_err = None;
            for job in &jobs {
                if let Err(e) = crate::exec::run_job(job, "run", &ctx).await {
                    if matches!(e, Error::Interrupted | Error::Locked { .. }) {
                        return Err(e);
                    }
                    reporter.fatal(Some(&job.name), &e);
                    first_err.get_or_insert(e);
                }
            }
            match first_err {
                Some(e) => Err(Error::Reported(Box::new(e))),
                None => Ok(()),
            }
        }
        Command::Login(l) => {
            crate::commands::login::run(
                config,
                &l.account,
                reporter,
                &crate::interrupt::Interrupt::install(),
            )
            .await
        }
        Command::Migrate(m) => {
            crate::migrate::run(
                config,
                m,
                settings,
                reporter,
                crate::interrupt::Interrupt::install(),
            )
            .await
        }
        Command::Generate(_) => unreachable!("handled before the runtime starts"),
    }
}
