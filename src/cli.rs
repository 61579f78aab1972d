//! The command line (SPEC §2): every command and option, with help texts
//! that carry an example each. Parsing only; meaning is given by `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  mailferry check imaps://alice%40example.com@imap.example.com
  mailferry fetch --from imaps://alice@imap.example.com --to ~/Mail/alice
  mailferry fetch --from pop3s://bob@pop.example.com --to ~/Mail/bob --delete-after 30
  mailferry push --from imaps://alice@old.example --to imaps://alice@new.example
  mailferry verify --from imaps://alice@old.example --to imaps://alice@new.example
  mailferry run            # every job of ~/.config/mailferry/config.toml (cron)

Exit codes: 0 done, 1 some messages failed or missing, 2 usage/config,
3 authentication, 4 connection/TLS, 75 another run holds the lock,
130 interrupted (state saved; a rerun continues).";

/// mailferry moves mail between POP3 servers, IMAP servers and Maildirs,
/// resumably: a rerun never duplicates and never loses a message.
#[derive(Debug, Parser)]
#[command(name = "mailferry", version, after_long_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command name.
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]
    #[arg(
        short = 'c',
        long,
        global = true,
        value_name = "FILE",
        env = "MAILFERRY_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// State database [default: $XDG_STATE_HOME/mailferry/state.db]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "MAILFERRY_STATE",
        hide_env_values = true
    )]
    pub state: Option<PathBuf>,
    /// Show what would happen; change nothing on any server or disk
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// One JSON object per line on stdout (events, then a summary)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more (repeat for protocol detail)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Connections per server (folders run in parallel over them)
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: Option<u16>,
    /// Allow imap:// and pop3:// without TLS (passwords go in clear!)
    #[arg(long, global = true)]
    pub insecure_plaintext: bool,
    /// Extra trusted CA certificates (PEM), added to the system roots
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly this server certificate: sha256:HEX (see `mailferry check`)
    #[arg(long, global = true, value_name = "sha256:HEX")]
    pub tls_fingerprint: Option<String>,
    /// Seconds to wait for any server response before giving up
    #[arg(long, global = true, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

/// The commands (SPEC §2).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy new mail from an IMAP or POP3 account into a Maildir
    #[command(
        after_help = "Example:\n  mailferry fetch --from imaps://alice@imap.example.com --to ~/Mail/alice --delete-after 30"
    )]
    Fetch(FetchArgs),
    /// Copy mail into an IMAP account (migration), keeping flags and dates
    #[command(
        after_help = "Example:\n  mailferry push --from imaps://alice@old.example --to imaps://alice@new.example --map 'Sent Items=Sent'"
    )]
    Push(PushArgs),
    /// Delete mail on an account or Maildir by retention rules
    #[command(
        after_help = "Example:\n  mailferry prune --on imaps://alice@imap.example.com --older-than 365 --only-if-stored-in ~/Mail/alice --dry-run"
    )]
    Prune(PruneArgs),
    /// Prove that the target holds every message of the source
    #[command(
        after_help = "Example:\n  mailferry verify --from imaps://alice@old.example --to imaps://alice@new.example --deep"
    )]
    Verify(VerifyArgs),
    /// Show what fetch, push or prune would do, changing nothing
    #[command(
        after_help = "Example:\n  mailferry plan fetch --from imaps://alice@imap.example.com --to ~/Mail/alice"
    )]
    Plan(PlanArgs),
    /// Show what the state knows: per folder counts, last run, errors
    #[command(after_help = "Example:\n  mailferry status backup-work --json")]
    Status(StatusArgs),
    /// Connect, check TLS, authenticate, list capabilities and folders
    #[command(
        after_help = "Example:\n  mailferry check imaps://alice@imap.example.com pop3s://alice@pop.example.com"
    )]
    Check(CheckArgs),
    /// Run the jobs of the config file (the cron entry point)
    #[command(after_help = "Example (crontab):\n  */15 * * * * mailferry run backup-work")]
    Run(RunArgs),
    /// Sign in to an OAuth2 account once (code or browser) and keep its refresh token
    #[command(after_help = LOGIN_HELP)]
    Login(LoginArgs),
    /// Push many accounts at once from a CSV manifest (or the config's push jobs)
    #[command(after_help = MIGRATE_HELP)]
    Migrate(MigrateArgs),
    /// Write the man pages and shell completions (for packagers)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// Where passwords and tokens come from, first that is set (SPEC §1).
#[derive(Debug, Clone, Args, Default)]
pub struct SecretArgs {
    /// Run CMD with sh -c; its first output line is the password
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Read the password from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the password from environment variable VAR
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token
    #[arg(long, value_name = "CMD")]
    pub oauth2_token_command: Option<String>,
}

/// Secrets for the source side of push/verify.
#[derive(Debug, Clone, Args, Default)]
pub struct FromSecretArgs {
    /// Source password: run CMD with sh -c
    #[arg(long, value_name = "CMD")]
    pub from_password_command: Option<String>,
    /// Source password: first line of FILE
    #[arg(long, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Source password: environment variable VAR
    #[arg(long, value_name = "VAR")]
    pub from_password_env: Option<String>,
    /// Source OAuth2: CMD prints the access token
    #[arg(long, value_name = "CMD")]
    pub from_oauth2_token_command: Option<String>,
}

/// Secrets for the target side of push/verify.
#[derive(Debug, Clone, Args, Default)]
pub struct ToSecretArgs {
    /// Target password: run CMD with sh -c
    #[arg(long, value_name = "CMD")]
    pub to_password_command: Option<String>,
    /// Target password: first line of FILE
    #[arg(long, value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Target password: environment variable VAR
    #[arg(long, value_name = "VAR")]
    pub to_password_env: Option<String>,
    /// Target OAuth2: CMD prints the access token
    #[arg(long, value_name = "CMD")]
    pub to_oauth2_token_command: Option<String>,
}

/// Which messages a command considers.
#[derive(Debug, Clone, Args, Default)]
pub struct FilterArgs {
    /// Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable
    #[arg(long = "folder", value_name = "PATTERN")]
    pub folders: Vec<String>,
    /// Skip folders matching this glob; repeatable, wins over --folder
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Skip messages larger than SIZE (e.g. 20M, 512k)
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Only messages that arrived on or after DATE (YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

/// `fetch`: POP3/IMAP → Maildir.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// Source account URL or config account name (imaps://, imap://, pop3s://, pop3://)
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target Maildir (created if missing)
    #[arg(long, value_name = "MAILDIR")]
    pub to: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Delete on the server messages stored locally at least DAYS ago
    #[arg(long, value_name = "DAYS", conflicts_with = "delete_after_fetch")]
    pub delete_after: Option<u32>,
    /// Delete on the server each message once it is stored locally
    #[arg(long)]
    pub delete_after_fetch: bool,
    /// Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients' \Deleted mail)
    #[arg(long)]
    pub allow_expunge_all: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `push`: IMAP/Maildir/POP3 → IMAP.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Source: IMAP/POP3 URL, Maildir path, or config account name
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target IMAP account URL or config account name
    #[arg(long, value_name = "URL")]
    pub to: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Rename folders: OLD=NEW globs (* one level, ** any; NEW takes the matched text in order); repeatable
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub maps: Vec<String>,
    /// Upload at most this many messages per second (provider limits)
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    #[command(flatten)]
    pub from_secret: FromSecretArgs,
    #[command(flatten)]
    pub to_secret: ToSecretArgs,
}

/// `prune`: retention rules on an account or Maildir.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Account URL, Maildir path or config account name to prune
    #[arg(long, value_name = "URL")]
    pub on: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Delete messages older than DAYS (by arrival date)
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<u32>,
    /// Keep only the newest N messages per folder
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u64>,
    /// Keep each folder under SIZE, deleting oldest first
    #[arg(long, value_name = "SIZE")]
    pub max_total: Option<String>,
    /// Delete messages larger than SIZE
    #[arg(long, value_name = "SIZE")]
    pub larger_than: Option<String>,
    /// Delete only if the state (or a lookup) proves it is stored there
    #[arg(long, value_name = "MAILDIR|URL")]
    pub only_if_stored_in: Option<String>,
    /// Move to the Trash folder instead of expunging
    #[arg(long)]
    pub to_trash: bool,
    /// Refuse to delete more than N messages without --yes [default: 1000, or more than 10% of a
    /// folder when that is also more than 20 messages]
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Confirm a deletion above the --max-delete guard
    #[arg(long)]
    pub yes: bool,
    /// Rules apply only to unread (not \Seen) messages
    #[arg(long)]
    pub only_unread: bool,
    /// Let rules delete flagged messages too (by default they are kept)
    #[arg(long, conflicts_with = "skip_flagged")]
    pub include_flagged: bool,
    /// Keep flagged messages whatever the rules say (the default; spelled
    /// out for scripts that want to say so)
    #[arg(long)]
    pub skip_flagged: bool,
    /// Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients' \Deleted mail)
    #[arg(long)]
    pub allow_expunge_all: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `verify`: compare source and target.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Source account URL, Maildir or config account name
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target account URL, Maildir or config account name
    #[arg(long, value_name = "URL|MAILDIR")]
    pub to: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Also compare content digests (downloads both sides)
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub from_secret: FromSecretArgs,
    #[command(flatten)]
    pub to_secret: ToSecretArgs,
}

/// `plan`: the planner's output for fetch/push/prune, without executing.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub what: PlanCommand,
}

/// What `plan` can plan.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Plan a fetch
    Fetch(FetchArgs),
    /// Plan a push
    Push(PushArgs),
    /// Plan a prune
    Prune(PruneArgs),
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Jobs of the config file to show (default: everything in the state)
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
    /// Also ask each job's server, per folder, how many messages it holds that
    /// the state has no record of (pending for the next run, or skipped by the
    /// job's filters); an unreachable server gets its own error line
    #[arg(long)]
    pub remote: bool,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Account URLs or config account names
    #[arg(value_name = "URL", required = true)]
    pub urls: Vec<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

const LOGIN_HELP: &str = "\
The account is a config account with auth = \"oauth2\", oauth2_provider and
your own oauth2_client_id (mailferry has none). Microsoft signs in with a
code to enter at a URL on any device; Google with a browser on this machine
that comes back to http://127.0.0.1:PORT/. The refresh token is kept in
tokens/ beside the state file (mode 0600), or by token_store_command. The
account is then checked by logging in once. Later runs refresh the access
token by themselves; run login again when told to (grant revoked or
expired).

Examples:
  mailferry login work
  mailferry login work --json   # the URL and code as a JSON line, for scripts";

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Config account name (with auth = "oauth2")
    #[arg(value_name = "ACCOUNT")]
    pub account: String,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Jobs to run (default: all jobs in the config file, in order)
    #[arg(value_name = "JOB")]
    pub jobs: Vec<String>,
}

const MIGRATE_HELP: &str = "\
The manifest is CSV with a header; columns id, source, target (required),
source_secret, target_secret. A secret is a reference, never a password:
env:VAR, file:PATH, command:CMD or oauth2-command:CMD; a row holding an
inline password is refused. Without --manifest the rows are the config
file's push jobs (id = job name, secrets from their accounts).

Each account runs `push` with its own state file and lock in --state-dir
(accounts never block each other); a rerun after a kill continues each
account where it stopped. Shard I/N (0-based) takes the ids with
fnv1a64(id) % N == I.

Examples:
  mailferry migrate --manifest accounts.csv --jobs 8 --report report.html
  mailferry migrate --manifest accounts.csv --shard 2/4 --json
  parallel mailferry migrate --manifest accounts.csv --shard {}/4 ::: 0 1 2 3
  mailferry migrate --manifest accounts.csv --shards 4   # index from $JOB_COMPLETION_INDEX

Exit code: the worst account's (interrupted 130, then 2, 3, 4, 75, 1).";

/// `migrate`: many push jobs in one run.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// CSV manifest, one row per account pair (default: the config file's push jobs)
    #[arg(long, value_name = "CSV")]
    pub manifest: Option<PathBuf>,
    /// One state file, lock and event log per account in DIR [default: the --state file's directory/migrate]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Accounts that run at the same time
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: u16,
    /// Connections per server host, all accounts together (each account also keeps to --connections per side)
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub per_host_connections: u32,
    /// Only this runner's part: I/N, 0-based (the ids with fnv1a64(id) % N == I)
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split into N shards, this runner's index from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub shards: Option<u64>,
    /// Write a self-contained HTML report to FILE at the end
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Do not contact accounts whose last migrate run finished ok (a resumed mass run; new mail waits for a run without it)
    #[arg(long)]
    pub skip_done: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Rename folders in every account: OLD=NEW globs, as for push; repeatable
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub maps: Vec<String>,
    /// Upload at most this many messages per second per account
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
}

/// `generate`: writes `man/` and `completions/`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory holding man/ and completions/
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_command() {
        let c = Cli::try_parse_from([
            "mailferry",
            "fetch",
            "--from",
            "imaps://a@h",
            "--to",
            "/tmp/m",
            "--json",
            "-n",
        ])
        .unwrap();
        assert!(c.global.json && c.global.dry_run);
    }

    #[test]
    fn delete_options_conflict() {
        let r = Cli::try_parse_from([
            "mailferry",
            "fetch",
            "--from",
            "pop3s://a@h",
            "--to",
            "/m",
            "--delete-after",
            "3",
            "--delete-after-fetch",
        ]);
        assert!(r.is_err());
    }
}
