# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mailferry_global_optspecs
    string join \n c/config= state= n/dry-run json q/quiet v/verbose connections= insecure-plaintext ca-file= tls-fingerprint= timeout= h/help V/version
end

function __fish_mailferry_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mailferry_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mailferry_using_subcommand
    set -l cmd (__fish_mailferry_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mailferry -n "__fish_mailferry_needs_command" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_needs_command" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_needs_command" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_needs_command" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_needs_command" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_needs_command" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_needs_command" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_needs_command" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_needs_command" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_needs_command" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_needs_command" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mailferry -n "__fish_mailferry_needs_command" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "fetch" -d 'Copy new mail from an IMAP or POP3 account into a Maildir'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "push" -d 'Copy mail into an IMAP account (migration), keeping flags and dates'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "prune" -d 'Delete mail on an account or Maildir by retention rules'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "verify" -d 'Prove that the target holds every message of the source'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "plan" -d 'Show what fetch, push or prune would do, changing nothing'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "status" -d 'Show what the state knows: per folder counts, last run, errors'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "check" -d 'Connect, check TLS, authenticate, list capabilities and folders'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "run" -d 'Run the jobs of the config file (the cron entry point)'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "login" -d 'Sign in to an OAuth2 account once (code or browser) and keep its refresh token'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "migrate" -d 'Push many accounts at once from a CSV manifest (or the config\'s push jobs)'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "generate" -d 'Write the man pages and shell completions (for packagers)'
complete -c mailferry -n "__fish_mailferry_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l from -d 'Source account URL or config account name (imaps://, imap://, pop3s://, pop3://)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l to -d 'Target Maildir (created if missing)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l delete-after -d 'Delete on the server messages stored locally at least DAYS ago' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l password-command -d 'Run CMD with sh -c; its first output line is the password' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l password-file -d 'Read the password from the first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l password-env -d 'Read the password from environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l oauth2-token-command -d 'Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l delete-after-fetch -d 'Delete on the server each message once it is stored locally'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l allow-expunge-all -d 'Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients\' \\Deleted mail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand fetch" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l from -d 'Source: IMAP/POP3 URL, Maildir path, or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l to -d 'Target IMAP account URL or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l map -d 'Rename folders: OLD=NEW globs (* one level, ** any; NEW takes the matched text in order); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l max-rate -d 'Upload at most this many messages per second (provider limits)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l from-password-command -d 'Source password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l from-password-file -d 'Source password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l from-password-env -d 'Source password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l from-oauth2-token-command -d 'Source OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l to-password-command -d 'Target password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l to-password-file -d 'Target password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l to-password-env -d 'Target password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l to-oauth2-token-command -d 'Target OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand push" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l on -d 'Account URL, Maildir path or config account name to prune' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l older-than -d 'Delete messages older than DAYS (by arrival date)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l keep-last -d 'Keep only the newest N messages per folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l max-total -d 'Keep each folder under SIZE, deleting oldest first' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l larger-than -d 'Delete messages larger than SIZE' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l only-if-stored-in -d 'Delete only if the state (or a lookup) proves it is stored there' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l max-delete -d 'Refuse to delete more than N messages without --yes [default: 1000, or more than 10% of a folder when that is also more than 20 messages]' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l password-command -d 'Run CMD with sh -c; its first output line is the password' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l password-file -d 'Read the password from the first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l password-env -d 'Read the password from environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l oauth2-token-command -d 'Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l to-trash -d 'Move to the Trash folder instead of expunging'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l yes -d 'Confirm a deletion above the --max-delete guard'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l only-unread -d 'Rules apply only to unread (not \\Seen) messages'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l include-flagged -d 'Let rules delete flagged messages too (by default they are kept)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l skip-flagged -d 'Keep flagged messages whatever the rules say (the default; spelled out for scripts that want to say so)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l allow-expunge-all -d 'Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients\' \\Deleted mail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand prune" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l from -d 'Source account URL, Maildir or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l to -d 'Target account URL, Maildir or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l from-password-command -d 'Source password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l from-password-file -d 'Source password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l from-password-env -d 'Source password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l from-oauth2-token-command -d 'Source OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l to-password-command -d 'Target password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l to-password-file -d 'Target password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l to-password-env -d 'Target password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l to-oauth2-token-command -d 'Target OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l deep -d 'Also compare content digests (downloads both sides)'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand verify" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -f -a "fetch" -d 'Plan a fetch'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -f -a "push" -d 'Plan a push'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -f -a "prune" -d 'Plan a prune'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and not __fish_seen_subcommand_from fetch push prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l from -d 'Source account URL or config account name (imaps://, imap://, pop3s://, pop3://)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l to -d 'Target Maildir (created if missing)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l delete-after -d 'Delete on the server messages stored locally at least DAYS ago' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l password-command -d 'Run CMD with sh -c; its first output line is the password' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l password-file -d 'Read the password from the first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l password-env -d 'Read the password from environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l oauth2-token-command -d 'Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l delete-after-fetch -d 'Delete on the server each message once it is stored locally'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l allow-expunge-all -d 'Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients\' \\Deleted mail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from fetch" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l from -d 'Source: IMAP/POP3 URL, Maildir path, or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l to -d 'Target IMAP account URL or config account name' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l map -d 'Rename folders: OLD=NEW globs (* one level, ** any; NEW takes the matched text in order); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l max-rate -d 'Upload at most this many messages per second (provider limits)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l from-password-command -d 'Source password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l from-password-file -d 'Source password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l from-password-env -d 'Source password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l from-oauth2-token-command -d 'Source OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l to-password-command -d 'Target password: run CMD with sh -c' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l to-password-file -d 'Target password: first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l to-password-env -d 'Target password: environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l to-oauth2-token-command -d 'Target OAuth2: CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from push" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l on -d 'Account URL, Maildir path or config account name to prune' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l older-than -d 'Delete messages older than DAYS (by arrival date)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l keep-last -d 'Keep only the newest N messages per folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l max-total -d 'Keep each folder under SIZE, deleting oldest first' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l larger-than -d 'Delete messages larger than SIZE' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l only-if-stored-in -d 'Delete only if the state (or a lookup) proves it is stored there' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l max-delete -d 'Refuse to delete more than N messages without --yes [default: 1000, or more than 10% of a folder when that is also more than 20 messages]' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l password-command -d 'Run CMD with sh -c; its first output line is the password' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l password-file -d 'Read the password from the first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l password-env -d 'Read the password from environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l oauth2-token-command -d 'Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l to-trash -d 'Move to the Trash folder instead of expunging'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l yes -d 'Confirm a deletion above the --max-delete guard'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l only-unread -d 'Rules apply only to unread (not \\Seen) messages'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l include-flagged -d 'Let rules delete flagged messages too (by default they are kept)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l skip-flagged -d 'Keep flagged messages whatever the rules say (the default; spelled out for scripts that want to say so)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l allow-expunge-all -d 'Allow a plain EXPUNGE on servers without UIDPLUS (may remove other clients\' \\Deleted mail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from prune" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "fetch" -d 'Plan a fetch'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "push" -d 'Plan a push'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Plan a prune'
complete -c mailferry -n "__fish_mailferry_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l remote -d 'Also ask each job\'s server, per folder, how many messages it holds that the state has no record of (pending for the next run, or skipped by the job\'s filters); an unreachable server gets its own error line'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand status" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l password-command -d 'Run CMD with sh -c; its first output line is the password' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l password-file -d 'Read the password from the first line of FILE' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l password-env -d 'Read the password from environment variable VAR' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l oauth2-token-command -d 'Authenticate with OAuth2 (XOAUTH2/OAUTHBEARER); CMD prints the access token' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand check" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand run" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand login" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l manifest -d 'CSV manifest, one row per account pair (default: the config file\'s push jobs)' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l state-dir -d 'One state file, lock and event log per account in DIR [default: the --state file\'s directory/migrate]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l jobs -d 'Accounts that run at the same time' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l per-host-connections -d 'Connections per server host, all accounts together (each account also keeps to --connections per side)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l shard -d 'Only this runner\'s part: I/N, 0-based (the ids with fnv1a64(id) % N == I)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l shards -d 'Split into N shards, this runner\'s index from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l report -d 'Write a self-contained HTML report to FILE at the end' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l folder -d 'Only folders matching this glob (`*` within a level, `**` across; `/` separates levels); repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l exclude -d 'Skip folders matching this glob; repeatable, wins over --folder' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l max-size -d 'Skip messages larger than SIZE (e.g. 20M, 512k)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l since -d 'Only messages that arrived on or after DATE (YYYY-MM-DD)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l map -d 'Rename folders in every account: OLD=NEW globs, as for push; repeatable' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l max-rate -d 'Upload at most this many messages per second per account' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l skip-done -d 'Do not contact accounts whose last migrate run finished ok (a resumed mass run; new mail waits for a run without it)'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand migrate" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s c -l config -d 'Config file [default: $XDG_CONFIG_HOME/mailferry/config.toml]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l state -d 'State database [default: $XDG_STATE_HOME/mailferry/state.db]' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l connections -d 'Connections per server (folders run in parallel over them)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l ca-file -d 'Extra trusted CA certificates (PEM), added to the system roots' -r -F
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l tls-fingerprint -d 'Trust exactly this server certificate: sha256:HEX (see `mailferry check`)' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l timeout -d 'Seconds to wait for any server response before giving up' -r
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s n -l dry-run -d 'Show what would happen; change nothing on any server or disk'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l json -d 'One JSON object per line on stdout (events, then a summary)'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s q -l quiet -d 'Print nothing but errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s v -l verbose -d 'Say more (repeat for protocol detail)'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -l insecure-plaintext -d 'Allow imap:// and pop3:// without TLS (passwords go in clear!)'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s h -l help -d 'Print help'
complete -c mailferry -n "__fish_mailferry_using_subcommand generate" -s V -l version -d 'Print version'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "fetch" -d 'Copy new mail from an IMAP or POP3 account into a Maildir'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "push" -d 'Copy mail into an IMAP account (migration), keeping flags and dates'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "prune" -d 'Delete mail on an account or Maildir by retention rules'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "verify" -d 'Prove that the target holds every message of the source'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "plan" -d 'Show what fetch, push or prune would do, changing nothing'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "status" -d 'Show what the state knows: per folder counts, last run, errors'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "check" -d 'Connect, check TLS, authenticate, list capabilities and folders'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "run" -d 'Run the jobs of the config file (the cron entry point)'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "login" -d 'Sign in to an OAuth2 account once (code or browser) and keep its refresh token'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "migrate" -d 'Push many accounts at once from a CSV manifest (or the config\'s push jobs)'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "generate" -d 'Write the man pages and shell completions (for packagers)'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and not __fish_seen_subcommand_from fetch push prune verify plan status check run login migrate generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "fetch" -d 'Plan a fetch'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "push" -d 'Plan a push'
complete -c mailferry -n "__fish_mailferry_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "prune" -d 'Plan a prune'
