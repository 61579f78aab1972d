//! Where a password or OAuth2 token comes from (SPEC §1), resolved at the
//! last moment so a secret is read only when a connection needs it.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::endpoint::{Credentials, Secret};
use crate::error::{Error, Result};

/// One configured secret source. `Default` means "the environment variable
/// the SPEC names, else a prompt on a terminal".
#[derive(Debug, Clone)]
pub enum SecretSource {
    Command(String),
    File(PathBuf),
    Env(String),
    /// A password written in the config file (allowed only when the file is
    /// not group/world readable).
    Plain(Secret),
    /// `oauth2_token_command`: prints an access token; run again when a
    /// server refuses it.
    OAuth2Command(String),
    /// mailferry's own OAuth2 client (`auth = "oauth2"`): tokens from the
    /// store that `mailferry login` fills, refreshed as needed.
    OAuth2(Box<crate::oauth::OAuthConfig>),
    /// Nothing set: `env_var` (e.g. MAILFERRY_PASSWORD), then a prompt.
    Default {
        env_var: &'static str,
    },
}

impl SecretSource {
    /// Picks the first set source in the SPEC's order.
    pub fn pick(
        command: Option<String>,
        file: Option<PathBuf>,
        env: Option<String>,
        oauth2: Option<String>,
        env_var: &'static str,
    ) -> SecretSource {
        if let Some(c) = oauth2 {
            SecretSource::OAuth2Command(c)
        } else if let Some(c) = command {
            SecretSource::Command(c)
        } else if let Some(f) = file {
            SecretSource::File(f)
        } else if let Some(v) = env {
            SecretSource::Env(v)
        } else {
            SecretSource::Default { env_var }
        }
    }

    /// True when no source was configured explicitly.
    pub fn is_default(&self) -> bool {
        matches!(self, SecretSource::Default { .. })
    }

    /// Reads the secret. `who` names the account in messages, never the secret.
    pub fn resolve(&self, who: &str) -> Result<Credentials> {
        match self {
            SecretSource::Command(c) => Ok(Credentials::Password(run_command(c, who)?)),
            SecretSource::OAuth2Command(c) => {
                Ok(Credentials::OAuth2(crate::oauth::Bearer::command(c, who)))
            }
            SecretSource::OAuth2(o) => Ok(Credentials::OAuth2(crate::oauth::Bearer::grant(o))),
            SecretSource::File(p) => {
                let s = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                Ok(Credentials::Password(Secret::new(first_line(&s))))
            }
            SecretSource::Env(v) => match std::env::var(v) {
                Ok(s) => Ok(Credentials::Password(Secret::new(s))),
                Err(_) => Err(Error::Usage(format!(
                    "{who}: environment variable {v} is not set"
                ))),
            },
            SecretSource::Plain(s) => Ok(Credentials::Password(s.clone())),
            SecretSource::Default { env_var } => {
                if let Ok(s) = std::env::var(env_var) {
                    return Ok(Credentials::Password(Secret::new(s)));
                }
                if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                    return prompt(who).map(Credentials::Password);
                }
                Err(Error::Usage(format!(
                    "{who}: no password: use --password-command, --password-file, --password-env or set {env_var}"
                )))
            }
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn run_command(cmd: &str, who: &str) -> Result<Secret> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Usage(format!("{who}: password command could not start: {e}")))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "{who}: password command failed ({})",
            out.status
        )));
    }
    let s = String::from_utf8(out.stdout)
        .map_err(|_| Error::Usage(format!("{who}: password command printed non-UTF-8")))?;
    let line = first_line(&s);
    if line.is_empty() {
        return Err(Error::Usage(format!(
            "{who}: password command printed nothing"
        )));
    }
    Ok(Secret::new(line))
}

fn prompt(who: &str) -> Result<Secret> {
    use std::io::Write;
    eprint!("Password for {who}: ");
    let _ = std::io::stderr().flush();
    // No echo: stty is everywhere a terminal is; the crate set has no tty helper.
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let _ = stty("-echo");
    let mut line = String::new();
    let r = std::io::stdin().read_line(&mut line);
    let _ = stty("echo");
    eprintln!();
    r.map_err(|e| Error::Usage(format!("{who}: reading password: {e}")))?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(c: Credentials) -> String {
        match c {
            Credentials::Password(s) => s.expose().to_string(),
            Credentials::OAuth2(b) => format!("oauth:{b:?}"),
        }
    }

    #[test]
    fn command_file_env_in_order() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "from-file\nsecond\n").unwrap();
        let s = SecretSource::pick(
            Some("echo from-cmd".into()),
            Some(f.clone()),
            None,
            None,
            "X",
        );
        assert_eq!(pw(s.resolve("t").unwrap()), "from-cmd");
        let s = SecretSource::pick(None, Some(f), Some("HOME".into()), None, "X");
        assert_eq!(pw(s.resolve("t").unwrap()), "from-file");
        let s = SecretSource::pick(None, None, None, Some("echo tok".into()), "X");
        // Run when a connection needs it (oauth::bearer's tests).
        assert_eq!(pw(s.resolve("t").unwrap()), "oauth:Bearer(command for t)");
    }

    #[test]
    fn failing_command_is_a_usage_error_without_secret() {
        let s = SecretSource::Command("echo hunter2; exit 3".into());
        let e = s.resolve("acct").unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Usage);
        assert!(!e.to_string().contains("hunter2"));
    }
}
