//! `mailferry login ACCOUNT`: the one interactive step of OAuth2. Runs the
//! account's sign-in flow, keeps the refresh token, and proves it works by
//! logging in to the mail server once, so a cron job set up afterwards
//! does not find out first.

use serde_json::{Value, json};

use crate::config::{Config, SecretSource};
use crate::endpoint::Protocol;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::oauth::{Flow, device, loopback};
use crate::report::Reporter;

/// Signs `name` in and checks the login.
pub async fn run(config: &Config, name: &str, rep: &Reporter, interrupt: &Interrupt) -> Result<()> {
    let acct = config.account(
        name,
        SecretSource::Default {
            env_var: "MAILFERRY_PASSWORD",
        },
    )?;
    let oc = match (&acct.name, &acct.secret) {
        (Some(_), SecretSource::OAuth2(oc)) => oc.as_ref().clone(),
        (Some(_), SecretSource::OAuth2Command(_)) => {
            return Err(Error::Usage(format!(
                "{name}: takes its tokens from oauth2_token_command; there is nothing to sign in to"
            )));
        }
        _ => {
            return Err(Error::Usage(format!(
                "{name}: login needs a config account with auth = \"oauth2\", oauth2_provider and oauth2_client_id (README, OAuth2)"
            )));
        }
    };
    // The flow's instructions are needed whatever -q says; with --json
    // scripts also get them as an event on stdout.
    let show = |human: &str, event: Value| {
        eprintln!("{human}");
        if rep.json() {
            rep.emit_value(&event);
        }
    };
    let record = match oc.flow {
        Flow::Device => device::sign_in(&oc, &show, interrupt).await?,
        Flow::Loopback => loopback::sign_in(&oc, &show, interrupt).await?,
    };
    oc.store.save(&record, &oc.owner(), &oc.account).await?;

    let timeouts = config.settings.timeouts;
    let cfg = acct.server_config("ACCOUNT", timeouts)?;
    match cfg.url.protocol {
        Protocol::Imap => {
            let (s, _) =
                crate::exec::fresh_login(async || crate::imap::connect(&cfg).await).await?;
            s.logout(timeouts.command).await;
        }
        Protocol::Pop3 => {
            let (c, _) =
                crate::exec::fresh_login(async || crate::pop3::connect(&cfg).await).await?;
            c.quit().await?;
        }
    }
    let server = cfg.url.server();
    if rep.json() {
        rep.emit_value(&json!({"event": "login", "account": name, "user": oc.user,
            "server": server, "ok": true, "token_store": oc.store.describe()}));
    } else {
        println!(
            "{name}: signed in as {} and logged in to {server}; tokens kept in {}",
            oc.user,
            oc.store.describe()
        );
    }
    Ok(())
}
