//! From what the user wrote (flags, config file) to what a run needs:
//! settings, accounts with their secrets and trust, and jobs. Both the
//! command line and `[[job]]` entries resolve to the same [`Job`], so
//! `mailferry run` and a hand-typed command behave identically.

mod file;
pub mod filter;
mod oauth;
pub mod secret;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::date::rfc3339;
pub use file::{ConfigFile, expand_tilde};
pub use filter::{Filter, Glob, parse_date, parse_size};
pub use secret::SecretSource;

use crate::cli::{self, GlobalArgs};
use crate::endpoint::{
    Endpoint, Protocol, Security, ServerConfig, ServerUrl, Timeouts, TlsOptions,
};
use crate::error::{Error, Result};
use crate::provider::{self, Applied, ProfileUse};

/// How a run behaves, from global flags and the config file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_path: PathBuf,
    pub dry_run: bool,
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Connections per server.
    pub connections: u16,
    pub timeouts: Timeouts,
}

/// An endpoint with what it takes to reach it.
#[derive(Debug, Clone)]
pub struct Account {
    /// The config name, if it came from the config file.
    pub name: Option<String>,
    pub endpoint: Endpoint,
    pub secret: SecretSource,
    pub tls: TlsOptions,
    pub connections: Option<u16>,
    /// The provider profile that applies (named in the config, or found
    /// by the URL's host): quirks, connection cap, budgets.
    pub profile: Option<ProfileUse>,
    /// Bytes this account may download / upload in any 24 hours: its own
    /// setting, else its profile's; `None` is no limit.
    pub daily_download: Option<u64>,
    pub daily_upload: Option<u64>,
}

impl Account {
    /// How to name this account in messages: its config name or URL key.
    pub fn describe(&self) -> String {
        match (&self.name, &self.endpoint) {
            (Some(n), _) => n.clone(),
            (None, Endpoint::Server(u)) => u.account_key(),
            (None, Endpoint::Maildir(p)) => p.display().to_string(),
        }
    }

    /// The server URL, or a usage error naming `role` when this is a Maildir.
    pub fn server_url(&self, role: &str) -> Result<&ServerUrl> {
        match &self.endpoint {
            Endpoint::Server(u) => Ok(u),
            Endpoint::Maildir(p) => Err(Error::Usage(format!(
                "{role} must be an IMAP or POP3 URL, not the Maildir {}",
                p.display()
            ))),
        }
    }

    /// Reads the secret and builds what a protocol client needs to connect.
    pub fn server_config(&self, role: &str, timeouts: Timeouts) -> Result<ServerConfig> {
        let url = self.server_url(role)?.clone();
        let credentials = self.secret.resolve(&self.describe())?;
        Ok(ServerConfig {
            url,
            credentials,
            tls: self.tls.clone(),
            timeouts,
            quirks: self.profile.map(|p| p.profile.quirks).unwrap_or_default(),
            pace: Default::default(),
        })
    }

    /// Connections to open to this account: the run's (`--connections`),
    /// at most the account's own `connections`, else its profile's cap.
    /// Never more than the run's: `migrate` reserves that many per host.
    pub fn max_connections(&self, run: u16) -> u16 {
        let cap = self
            .connections
            .or(self.profile.map(|p| p.profile.max_connections));
        cap.map_or(run, |c| run.min(c)).max(1)
    }

    /// Who a daily budget belongs to: the provider's account (IMAP and
    /// POP3 of one Gmail account share theirs), e.g. `gmail:alice@gmail.com`.
    pub fn budget_key(&self) -> Option<String> {
        let Endpoint::Server(u) = &self.endpoint else {
            return None;
        };
        let who = match self.profile {
            Some(p) => p.profile.name.to_string(),
            None => u.host.to_ascii_lowercase(),
        };
        Some(format!("{who}:{}", u.user.to_ascii_lowercase()))
    }
}

/// Server retention for fetch (SPEC §2): what to delete on the source
/// after the local copy is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Keep,
    AfterDays(u32),
    AfterFetch,
}

/// `fetch`.
#[derive(Debug, Clone)]
pub struct FetchJob {
    pub from: Account,
    pub to: PathBuf,
    pub filter: Filter,
    pub retention: Retention,
    pub allow_expunge_all: bool,
}

/// `push`.
#[derive(Debug, Clone)]
pub struct PushJob {
    pub from: Account,
    pub to: Account,
    pub filter: Filter,
    pub maps: Vec<String>,
    pub max_rate: Option<f64>,
}

/// Retention rules of `prune`; their union decides.
#[derive(Debug, Clone, Default)]
pub struct PruneRules {
    pub older_than_days: Option<u32>,
    pub keep_last: Option<u64>,
    pub max_total: Option<u64>,
    pub larger_than: Option<u64>,
    /// Only unread (not `\Seen`) messages are candidates.
    pub only_unread: bool,
}

impl PruneRules {
    /// True when no rule is set: nothing would ever be deleted.
    pub fn is_empty(&self) -> bool {
        self.older_than_days.is_none()
            && self.keep_last.is_none()
            && self.max_total.is_none()
            && self.larger_than.is_none()
    }
}

/// `prune`.
#[derive(Debug, Clone)]
pub struct PruneJob {
    pub on: Account,
    pub filter: Filter,
    pub rules: PruneRules,
    /// Per-folder rules from the config: the first matching glob wins over
    /// `rules` for that folder.
    pub folder_rules: Vec<(Glob, PruneRules)>,
    pub only_if_stored_in: Option<Account>,
    pub to_trash: bool,
    pub max_delete: Option<u64>,
    pub yes: bool,
    /// Flagged messages may go too (kept by default).
    pub include_flagged: bool,
    pub allow_expunge_all: bool,
}

impl PruneJob {
    /// The rules for one folder.
    pub fn rules_for(&self, folder: &crate::types::FolderName) -> &PruneRules {
        self.folder_rules
            .iter()
            .find(|(g, _)| g.matches(folder))
            .map(|(_, r)| r)
            .unwrap_or(&self.rules)
    }
}

/// `verify`.
#[derive(Debug, Clone)]
pub struct VerifyJob {
    pub from: Account,
    pub to: Account,
    pub filter: Filter,
    pub deep: bool,
}

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobKind {
    Fetch(FetchJob),
    Push(PushJob),
    Prune(PruneJob),
    Verify(VerifyJob),
}

/// A named unit of work; command-line runs get the name of their command.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub kind: JobKind,
}

/// The loaded configuration: settings plus the config file, if any.
#[derive(Debug)]
pub struct Config {
    pub settings: Settings,
    pub file: Option<ConfigFile>,
    global: GlobalArgs,
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(fallback),
    }
}

impl Config {
    /// Loads the config file (explicit `-c` must exist; the default may
    /// not) and merges it with the global flags, flags winning.
    pub fn load(global: &GlobalArgs) -> Result<Config> {
        let default_path = xdg_dir("XDG_CONFIG_HOME", ".config").join("mailferry/config.toml");
        let file = match &global.config {
            Some(p) => Some(ConfigFile::load(p)?),
            None if default_path.exists() => Some(ConfigFile::load(&default_path)?),
            None => None,
        };
        let raw = file.as_ref().map(|f| &f.raw);
        let state_path = match (&global.state, raw.and_then(|r| r.state.as_ref())) {
            (Some(p), _) => p.clone(),
            (None, Some(s)) => expand_tilde(s.get_ref()),
            (None, None) => xdg_dir("XDG_STATE_HOME", ".local/state").join("mailferry/state.db"),
        };
        let timeout = global
            .timeout
            .or(raw.and_then(|r| r.timeout))
            .unwrap_or(120);
        let settings = Settings {
            state_path,
            dry_run: global.dry_run,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            connections: global
                .connections
                .or(raw.and_then(|r| r.connections))
                .unwrap_or(4)
                .max(1),
            timeouts: Timeouts {
                connect: Duration::from_secs(timeout.min(30)),
                command: Duration::from_secs(timeout),
            },
        };
        Ok(Config {
            settings,
            file,
            global: global.clone(),
        })
    }

    fn cli_tls(&self) -> Result<TlsOptions> {
        Ok(TlsOptions {
            ca_file: self.global.ca_file.clone(),
            fingerprint: self
                .global
                .tls_fingerprint
                .as_deref()
                .map(TlsOptions::parse_fingerprint)
                .transpose()?,
            min_tls13: false,
        })
    }

    /// Resolves what the user wrote for an endpoint: a config account name,
    /// a URL, or a Maildir path. `secret` is the command line's secret for
    /// this side; `env_var` the SPEC's default variable.
    pub fn account(&self, spec: &str, secret: SecretSource) -> Result<Account> {
        if let Some(cf) = &self.file
            && let Some(a) = cf.raw.account.get(spec)
        {
            return self.file_account(cf, spec, a, secret);
        }
        let looks_like_path = spec.contains('/') || spec.starts_with('.') || spec.starts_with('~');
        if !spec.contains("://") && !spec.starts_with("maildir:") && !looks_like_path {
            let known = self
                .file
                .as_ref()
                .map(|f| f.raw.account.keys().cloned().collect::<Vec<_>>().join(", "));
            return Err(Error::Usage(match known {
                Some(k) if !k.is_empty() => {
                    format!(
                        "{spec:?}: no such account in the config (known: {k}); write a URL or a path with a /"
                    )
                }
                _ => format!(
                    "{spec:?}: not a URL and no config account of that name; write imaps://USER@HOST or ./{spec}"
                ),
            }));
        }
        let endpoint = match Endpoint::parse(spec, self.global.insecure_plaintext)? {
            Endpoint::Maildir(p) => Endpoint::Maildir(expand_tilde(&p.to_string_lossy())),
            e => e,
        };
        let profile = detect(&endpoint);
        Ok(Account {
            name: None,
            endpoint,
            secret,
            tls: self.cli_tls()?,
            connections: None,
            profile,
            daily_download: profile.and_then(|p| p.profile.daily_download),
            daily_upload: profile.and_then(|p| p.profile.daily_upload),
        })
    }

    fn file_account(
        &self,
        cf: &ConfigFile,
        name: &str,
        a: &toml::Spanned<file::RawAccount>,
        cli_secret: SecretSource,
    ) -> Result<Account> {
        let raw = a.get_ref();
        let plaintext = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("required") => self.global.insecure_plaintext,
            Some("none") => true,
            Some(other) => {
                return Err(cf.error_at(
                    raw.tls.as_ref().unwrap().span(),
                    format!("account.{name}.tls: {other:?} is not \"required\" or \"none\""),
                ));
            }
        };
        let named = match &raw.provider {
            Some(p) => Some(ProfileUse {
                profile: provider::by_name(p.get_ref()).ok_or_else(|| {
                    cf.error_at(
                        p.span(),
                        format!(
                            "account.{name}.provider: {:?} is not a known provider (known: {})",
                            p.get_ref(),
                            provider::names()
                        ),
                    )
                })?,
                applied: Applied::Named,
            }),
            None => None,
        };
        let endpoint = match (&raw.url, named) {
            (Some(url), _) => {
                for (key, v) in [("user", &raw.user), ("protocol", &raw.protocol)] {
                    if let Some(v) = v {
                        return Err(cf.error_at(
                            v.span(),
                            format!("account.{name}.{key}: goes in the url when there is one"),
                        ));
                    }
                }
                Endpoint::parse(url.get_ref(), plaintext)
                    .map_err(|e| cf.error_at(url.span(), format!("account.{name}.url: {e}")))?
            }
            (None, Some(p)) => profile_endpoint(cf, name, a, p.profile)?,
            (None, None) => {
                return Err(cf.error_at(
                    a.span(),
                    format!(
                        "account.{name}: needs url, or provider and user (provider = \"gmail\", user = \"alice@gmail.com\")"
                    ),
                ));
            }
        };
        let profile = named.or_else(|| detect(&endpoint));
        let budget = |v: &Option<toml::Spanned<String>>, key: &str, default: Option<u64>| {
            let Some(v) = v else {
                return Ok(default);
            };
            match v.get_ref().trim().to_ascii_lowercase().as_str() {
                "none" | "unlimited" => Ok(None),
                t => match parse_size(t) {
                    Ok(0) => Ok(None),
                    Ok(n) => Ok(Some(n)),
                    Err(e) => Err(cf.error_at(v.span(), format!("account.{name}.{key}: {e}"))),
                },
            }
        };
        let daily_download = budget(
            &raw.daily_download,
            "daily_download",
            profile.and_then(|p| p.profile.daily_download),
        )?;
        let daily_upload = budget(
            &raw.daily_upload,
            "daily_upload",
            profile.and_then(|p| p.profile.daily_upload),
        )?;
        let endpoint = match endpoint {
            Endpoint::Maildir(p) => Endpoint::Maildir(expand_tilde(&p.to_string_lossy())),
            Endpoint::Server(u) if plaintext && u.security == Security::StartTls => {
                Endpoint::Server(ServerUrl {
                    security: Security::Plaintext,
                    ..u
                })
            }
            e => e,
        };
        let oauth = oauth::resolve(
            cf,
            name,
            (raw, a.span()),
            &endpoint,
            profile,
            &self.token_dir(),
            self.settings.timeouts,
        )?;
        let secret = if !cli_secret.is_default() {
            cli_secret
        } else if let Some(o) = oauth {
            SecretSource::OAuth2(Box::new(o))
        } else if let Some(c) = &raw.oauth2_token_command {
            SecretSource::OAuth2Command(c.clone())
        } else if let Some(c) = &raw.password_command {
            SecretSource::Command(c.clone())
        } else if let Some(f) = &raw.password_file {
            SecretSource::File(expand_tilde(f))
        } else if let Some(v) = &raw.password_env {
            SecretSource::Env(v.clone())
        } else if let Some(p) = &raw.password {
            SecretSource::Plain(crate::endpoint::Secret::new(p.get_ref().clone()))
        } else {
            cli_secret
        };
        let mut tls = self.cli_tls()?;
        if tls.ca_file.is_none() {
            tls.ca_file = raw.ca_file.as_deref().map(expand_tilde);
        }
        if tls.fingerprint.is_none()
            && let Some(fp) = &raw.tls_fingerprint
        {
            tls.fingerprint = Some(TlsOptions::parse_fingerprint(fp.get_ref()).map_err(|e| {
                cf.error_at(fp.span(), format!("account.{name}.tls_fingerprint: {e}"))
            })?);
        }
        Ok(Account {
            name: Some(name.to_string()),
            endpoint,
            secret,
            tls,
            connections: raw.connections,
            profile,
            daily_download,
            daily_upload,
        })
    }

    /// The jobs of the config file, all or the named ones, in file order.
    pub fn file_jobs(&self, names: &[String]) -> Result<Vec<Job>> {
        let Some(cf) = &self.file else {
            return Err(Error::Usage(
                "no config file: write ~/.config/mailferry/config.toml or pass -c FILE".into(),
            ));
        };
        for n in names {
            if !cf.raw.job.iter().any(|j| j.get_ref().name.get_ref() == n) {
                return Err(Error::Config {
                    file: cf.path.display().to_string(),
                    line: None,
                    msg: format!("no job named {n:?}"),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut jobs = Vec::new();
        for j in &cf.raw.job {
            let name = j.get_ref().name.get_ref();
            if !seen.insert(name.clone()) {
                return Err(cf.error_at(
                    j.get_ref().name.span(),
                    format!("job {name:?} is defined twice"),
                ));
            }
            if names.is_empty() || names.contains(name) {
                jobs.push(self.file_job(cf, j.get_ref())?);
            }
        }
        Ok(jobs)
    }

    fn file_job(&self, cf: &ConfigFile, j: &file::RawJob) -> Result<Job> {
        let name = j.name.get_ref().clone();
        let need = |f: &Option<toml::Spanned<String>>, key: &str| -> Result<String> {
            f.as_ref().map(|s| s.get_ref().clone()).ok_or_else(|| {
                cf.error_at(
                    j.command.span(),
                    format!("job {name:?}: {} needs `{key}`", j.command.get_ref()),
                )
            })
        };
        let size = |f: &Option<toml::Spanned<String>>, key: &str| -> Result<Option<u64>> {
            f.as_ref()
                .map(|s| {
                    parse_size(s.get_ref())
                        .map_err(|e| cf.error_at(s.span(), format!("job {name:?}: {key}: {e}")))
                })
                .transpose()
        };
        let since = j
            .since
            .as_ref()
            .map(|s| {
                parse_date(s.get_ref())
                    .map_err(|e| cf.error_at(s.span(), format!("job {name:?}: since: {e}")))
            })
            .transpose()?;
        let filter = Filter {
            folders: j.folders.iter().map(|g| Glob::new(g)).collect(),
            excludes: j.exclude.iter().map(|g| Glob::new(g)).collect(),
            max_size: size(&j.max_size, "max_size")?,
            since,
        };
        let acct =
            |f: &Option<toml::Spanned<String>>, key: &str, env: &'static str| -> Result<Account> {
                let spec = need(f, key)?;
                self.account(&spec, SecretSource::Default { env_var: env })
                    .map_err(|e| match e {
                        Error::Usage(m) => cf.error_at(
                            f.as_ref().unwrap().span(),
                            format!("job {name:?}: {key}: {m}"),
                        ),
                        e => e,
                    })
            };
        let kind = match j.command.get_ref().as_str() {
            "fetch" => {
                if j.delete_after.is_some() && j.delete_after_fetch {
                    return Err(cf.error_at(
                        j.command.span(),
                        format!(
                            "job {name:?}: delete_after and delete_after_fetch exclude each other"
                        ),
                    ));
                }
                let from = acct(&j.from, "from", "MAILFERRY_PASSWORD")?;
                from.server_url("from")
                    .map_err(|e| cf.error_at(j.from.as_ref().unwrap().span(), e.to_string()))?;
                let to = self.maildir_path(&need(&j.to, "to")?)?;
                JobKind::Fetch(FetchJob {
                    from,
                    to,
                    filter,
                    retention: retention(j.delete_after, j.delete_after_fetch),
                    allow_expunge_all: j.allow_expunge_all,
                })
            }
            "push" => JobKind::Push(PushJob {
                from: acct(&j.from, "from", "MAILFERRY_FROM_PASSWORD")?,
                to: acct(&j.to, "to", "MAILFERRY_TO_PASSWORD")?,
                filter,
                maps: j.map.clone(),
                max_rate: j.max_rate,
            }),
            "prune" => {
                let mut folder_rules = Vec::new();
                for r in &j.rules {
                    folder_rules.push((
                        Glob::new(&r.folder),
                        PruneRules {
                            older_than_days: r.older_than,
                            keep_last: r.keep_last,
                            max_total: size(&r.max_total, "rules.max_total")?,
                            larger_than: size(&r.larger_than, "rules.larger_than")?,
                            only_unread: r.only_unread,
                        },
                    ));
                }
                // By default a prune of an account another job fetches or
                // pushes from deletes only what that job stored.
                let store = match (&j.only_if_stored_in, j.only_if_stored) {
                    (Some(_), _) => j.only_if_stored_in.clone(),
                    (None, Some(false)) => None,
                    (None, _) => cf
                        .raw
                        .job
                        .iter()
                        .map(|o| o.get_ref())
                        .find(|o| {
                            matches!(o.command.get_ref().as_str(), "fetch" | "push")
                                && o.from.as_ref().map(|f| f.get_ref())
                                    == j.on.as_ref().map(|f| f.get_ref())
                        })
                        .and_then(|o| o.to.clone()),
                };
                JobKind::Prune(PruneJob {
                    on: acct(&j.on, "on", "MAILFERRY_PASSWORD")?,
                    filter,
                    rules: PruneRules {
                        older_than_days: j.older_than,
                        keep_last: j.keep_last,
                        max_total: size(&j.max_total, "max_total")?,
                        larger_than: size(&j.larger_than, "larger_than")?,
                        only_unread: j.only_unread,
                    },
                    folder_rules,
                    only_if_stored_in: match &store {
                        Some(_) => {
                            Some(acct(&store, "only_if_stored_in", "MAILFERRY_TO_PASSWORD")?)
                        }
                        None => None,
                    },
                    to_trash: j.to_trash,
                    max_delete: j.max_delete,
                    yes: false,
                    include_flagged: j.include_flagged,
                    allow_expunge_all: j.allow_expunge_all,
                })
            }
            "verify" => JobKind::Verify(VerifyJob {
                from: acct(&j.from, "from", "MAILFERRY_FROM_PASSWORD")?,
                to: acct(&j.to, "to", "MAILFERRY_TO_PASSWORD")?,
                filter,
                deep: j.deep,
            }),
            other => {
                return Err(cf.error_at(
                    j.command.span(),
                    format!("job {name:?}: command {other:?} is not fetch, push, prune or verify"),
                ));
            }
        };
        Ok(Job { name, kind })
    }

    fn maildir_path(&self, spec: &str) -> Result<PathBuf> {
        match self
            .account(
                spec,
                SecretSource::Default {
                    env_var: "MAILFERRY_PASSWORD",
                },
            )?
            .endpoint
        {
            Endpoint::Maildir(p) => Ok(p),
            Endpoint::Server(u) => Err(Error::Usage(format!(
                "fetch writes to a Maildir, not to {}; use push to copy to an IMAP server",
                u.account_key()
            ))),
        }
    }

    /// `fetch` from the command line.
    pub fn fetch_job(&self, a: &cli::FetchArgs) -> Result<Job> {
        let from = self.account(&a.from, secret_of(&a.secret, "MAILFERRY_PASSWORD"))?;
        from.server_url("--from")?;
        Ok(Job {
            name: "fetch".into(),
            kind: JobKind::Fetch(FetchJob {
                from,
                to: self.maildir_path(&a.to)?,
                filter: filter_of(&a.filter)?,
                retention: retention(a.delete_after, a.delete_after_fetch),
                allow_expunge_all: a.allow_expunge_all,
            }),
        })
    }

    /// `push` from the command line.
    pub fn push_job(&self, a: &cli::PushArgs) -> Result<Job> {
        let s = &a.from_secret;
        let from = SecretSource::pick(
            s.from_password_command.clone(),
            s.from_password_file.clone(),
            s.from_password_env.clone(),
            s.from_oauth2_token_command.clone(),
            "MAILFERRY_FROM_PASSWORD",
        );
        let t = &a.to_secret;
        let to = SecretSource::pick(
            t.to_password_command.clone(),
            t.to_password_file.clone(),
            t.to_password_env.clone(),
            t.to_oauth2_token_command.clone(),
            "MAILFERRY_TO_PASSWORD",
        );
        Ok(Job {
            name: "push".into(),
            kind: JobKind::Push(PushJob {
                from: self.account(&a.from, from)?,
                to: self.account(&a.to, to)?,
                filter: filter_of(&a.filter)?,
                maps: a.maps.clone(),
                max_rate: a.max_rate,
            }),
        })
    }

    /// `prune` from the command line.
    pub fn prune_job(&self, a: &cli::PruneArgs) -> Result<Job> {
        Ok(Job {
            name: "prune".into(),
            kind: JobKind::Prune(PruneJob {
                on: self.account(&a.on, secret_of(&a.secret, "MAILFERRY_PASSWORD"))?,
                filter: filter_of(&a.filter)?,
                rules: PruneRules {
                    older_than_days: a.older_than,
                    keep_last: a.keep_last,
                    max_total: a.max_total.as_deref().map(parse_size).transpose()?,
                    larger_than: a.larger_than.as_deref().map(parse_size).transpose()?,
                    only_unread: a.only_unread,
                },
                folder_rules: Vec::new(),
                only_if_stored_in: a
                    .only_if_stored_in
                    .as_deref()
                    .map(|s| {
                        self.account(
                            s,
                            SecretSource::Default {
                                env_var: "MAILFERRY_TO_PASSWORD",
                            },
                        )
                    })
                    .transpose()?,
                to_trash: a.to_trash,
                max_delete: a.max_delete,
                yes: a.yes,
                include_flagged: a.include_flagged,
                allow_expunge_all: a.allow_expunge_all,
            }),
        })
    }

    /// `verify` from the command line.
    pub fn verify_job(&self, a: &cli::VerifyArgs) -> Result<Job> {
        let s = &a.from_secret;
        let t = &a.to_secret;
        Ok(Job {
            name: "verify".into(),
            kind: JobKind::Verify(VerifyJob {
                from: self.account(
                    &a.from,
                    SecretSource::pick(
                        s.from_password_command.clone(),
                        s.from_password_file.clone(),
                        s.from_password_env.clone(),
                        s.from_oauth2_token_command.clone(),
                        "MAILFERRY_FROM_PASSWORD",
                    ),
                )?,
                to: self.account(
                    &a.to,
                    SecretSource::pick(
                        t.to_password_command.clone(),
                        t.to_password_file.clone(),
                        t.to_password_env.clone(),
                        t.to_oauth2_token_command.clone(),
                        "MAILFERRY_TO_PASSWORD",
                    ),
                )?,
                filter: filter_of(&a.filter)?,
                deep: a.deep,
            }),
        })
    }

    /// The state file path, for messages.
    pub fn state_path(&self) -> &Path {
        &self.settings.state_path
    }

    /// Where `mailferry login` keeps OAuth2 tokens by default: `tokens/`
    /// beside the state file (never inside it).
    pub fn token_dir(&self) -> PathBuf {
        self.settings
            .state_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("tokens")
    }
}

/// The command line's secret options for a single-account command.
pub fn secret_of(s: &cli::SecretArgs, env_var: &'static str) -> SecretSource {
    SecretSource::pick(
        s.password_command.clone(),
        s.password_file.clone(),
        s.password_env.clone(),
        s.oauth2_token_command.clone(),
        env_var,
    )
}

/// The profile a server endpoint's host selects on its own, if any.
fn detect(endpoint: &Endpoint) -> Option<ProfileUse> {
    match endpoint {
        Endpoint::Server(u) => provider::by_host(&u.host).map(|profile| ProfileUse {
            profile,
            applied: Applied::ByHost,
        }),
        Endpoint::Maildir(_) => None,
    }
}

/// `provider` + `user` (+ `protocol`) without a `url`: the profile's
/// server over implicit TLS.
fn profile_endpoint(
    cf: &ConfigFile,
    name: &str,
    a: &toml::Spanned<file::RawAccount>,
    p: &'static provider::Profile,
) -> Result<Endpoint> {
    let raw = a.get_ref();
    let Some(user) = &raw.user else {
        return Err(cf.error_at(
            a.span(),
            format!(
                "account.{name}: provider {:?} needs user (or a url)",
                p.name
            ),
        ));
    };
    let (protocol, server) = match raw.protocol.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("imap") => (Protocol::Imap, p.imap),
        Some("pop3") => (Protocol::Pop3, p.pop3),
        Some(other) => {
            return Err(cf.error_at(
                raw.protocol.as_ref().unwrap().span(),
                format!("account.{name}.protocol: {other:?} is not \"imap\" or \"pop3\""),
            ));
        }
    };
    let Some((host, port)) = server else {
        return Err(cf.error_at(
            a.span(),
            format!(
                "account.{name}: {} has no {} server",
                p.title,
                if protocol == Protocol::Pop3 {
                    "POP3"
                } else {
                    "IMAP"
                }
            ),
        ));
    };
    if user.get_ref().trim().is_empty() {
        return Err(cf.error_at(user.span(), format!("account.{name}.user: empty")));
    }
    Ok(Endpoint::Server(ServerUrl {
        protocol,
        security: Security::Implicit,
        host: host.to_string(),
        port,
        user: user.get_ref().trim().to_string(),
        folder: None,
    }))
}

fn retention(delete_after: Option<u32>, after_fetch: bool) -> Retention {
    match (delete_after, after_fetch) {
        (_, true) => Retention::AfterFetch,
        (Some(d), false) => Retention::AfterDays(d),
        (None, false) => Retention::Keep,
    }
}

/// The command line's filters (push, migrate rows).
pub fn filter_of(a: &cli::FilterArgs) -> Result<Filter> {
    Ok(Filter {
        folders: a.folders.iter().map(|g| Glob::new(g)).collect(),
        excludes: a.excludes.iter().map(|g| Glob::new(g)).collect(),
        max_size: a.max_size.as_deref().map(parse_size).transpose()?,
        since: a.since.as_deref().map(parse_date).transpose()?,
    })
}

#[cfg(test)]
mod tests;
