//! TCP and TLS plumbing shared by the IMAP and POP3 clients: connect with a
//! timeout, wrap in TLS with the user's trust settings, and describe the
//! peer certificate. Protocol-specific STARTTLS/STLS lives in each client.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use openssl::error::ErrorStack;
use openssl::ssl::{
    Ssl, SslContext, SslFiletype, SslMethod, SslMode, SslOptions, SslVerifyMode, SslVersion,
};
use openssl::x509::X509VerifyResult;
use openssl::x509::store::{X509Lookup, X509StoreBuilderRef};
use openssl::x509::verify::X509CheckFlags;

use crate::endpoint::TlsOptions;
use crate::error::{Error, Result};

/// What `check` shows about the server's certificate, and what pinning
/// compares.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub sha256: [u8; 32],
}

impl PeerCert {
    /// Reads subject, issuer, expiry and fingerprint from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PeerCert> {
        let x = openssl::x509::X509::from_der(der)
            .map_err(|e| Error::connect("tls", format!("unreadable peer certificate: {e}")))?;
        let digest = x
            .digest(openssl::hash::MessageDigest::sha256())
            .map_err(|e| Error::connect("tls", e.to_string()))?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&digest);
        Ok(PeerCert {
            subject: name_to_string(x.subject_name()),
            issuer: name_to_string(x.issuer_name()),
            not_after: x.not_after().to_string(),
            sha256,
        })
    }

    /// `sha256:AB:CD:…`, the form `--tls-fingerprint` accepts.
    pub fn fingerprint(&self) -> String {
        let hex: Vec<String> = self.sha256.iter().map(|b| format!("{b:02X}")).collect();
        format!("sha256:{}", hex.join(":"))
    }
}

fn name_to_string(n: &openssl::x509::X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_default();
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `fut` with a time limit; `what` says what was being waited for.
pub async fn timed<T>(
    limit: Duration,
    server: &str,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            server: server.to_string(),
            what: what.to_string(),
        }),
    }
}

/// Opens a TCP connection with a time limit, naming the cause on failure
/// (refused, unreachable, unknown host).
pub async fn tcp_connect(host: &str, port: u16, limit: Duration) -> Result<TcpStream> {
    let server = format!("{host}:{port}");
    timed(limit, &server, "TCP connect", async {
        let s = TcpStream::connect((host, port))
            .await
            .map_err(|e| Error::connect(&server, format!("cannot connect: {e}")))?;
        let _ = s.set_nodelay(true);
        // Closed with a reset, not a FIN: the kernel drops whatever is
        // still queued instead of delivering it after the process is gone.
        // Without this a killed push's last APPEND batch, queued in the
        // send buffer (megabytes on a slow uplink), still reached the
        // server seconds after the kill, was committed there, and a rerun
        // that had already looked at the folder appended it again. Every
        // normal close waits for the server's answer to LOGOUT or QUIT
        // first, so nothing the server should see is lost.
        let _ = s.set_zero_linger();
        Ok(s)
    })
    .await
}

/// A TLS stream over any transport (plain TCP, or a test proxy).
///
/// OpenSSL through tokio-openssl rather than async-native-tls (the
/// requested crate): async-native-tls builds a new native-tls connector
/// for every connection and offers no way to reuse one, and building one
/// parses the system CA bundle twice (native-tls loads OpenSSL's default
/// paths, then the same file again as found by openssl-probe). Measured:
/// about 90 ms of CPU per connection, half of a no-op POP3 fetch's CPU and
/// 7% of a 10,000-message fetch over four sessions. Here the connector is
/// built once per trust setting and process ([`connector`]).
pub type TlsStream<S> = tokio_openssl::SslStream<S>;

/// The client context for `opts`, built on first use and then shared:
/// system roots ([`add_system_roots`]) plus `--ca-file`, TLS 1.2 or later,
/// and the settings of the openssl crate's `SslConnector` (options, modes,
/// cipher list, peer verification), which is not used itself because its
/// builder parses the system CA bundle up front. With a pinned fingerprint
/// the chain is not verified here: the pin is compared right after the
/// handshake, before any protocol byte is sent.
fn connector(opts: &TlsOptions) -> Result<SslContext> {
    // The pin itself is checked after the handshake, so only whether
    // there is one matters here.
    type Key = (Option<std::path::PathBuf>, bool, bool);
    static BUILT: std::sync::Mutex<Vec<(Key, SslContext)>> = std::sync::Mutex::new(Vec::new());
    let key: Key = (
        opts.ca_file.clone(),
        opts.fingerprint.is_some(),
        opts.min_tls13,
    );
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = built.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let tls_err = |e: openssl::error::ErrorStack| Error::connect("tls", e.to_string());
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(tls_err)?;
    let mut options = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    options &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    b.set_options(options);
    b.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    b.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(tls_err)?;
    let min = if opts.min_tls13 {
        SslVersion::TLS1_3
    } else {
        SslVersion::TLS1_2
    };
    b.set_min_proto_version(Some(min)).map_err(tls_err)?;
    if opts.fingerprint.is_some() {
        b.set_verify(SslVerifyMode::NONE);
    } else {
        b.set_verify(SslVerifyMode::PEER);
        add_system_roots(b.cert_store_mut()).map_err(tls_err)?;
    }
    if let Some(ca) = &opts.ca_file {
        let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| Error::Usage(format!("--ca-file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(Error::Usage(format!(
                "--ca-file {}: no PEM certificate in file",
                ca.display()
            )));
        }
        for c in certs {
            // A certificate already among the system roots is no error.
            let _ = b.cert_store_mut().add_cert(c);
        }
    }
    let c = b.build();
    built.push((key, c.clone()));
    Ok(c)
}

/// One connection's TLS object: SNI (not for an IP address) and, unless
/// `verify_name` is false (a pinned server), the host name or IP address
/// checked against the certificate, as `SslConnector::configure` does.
fn client_ssl(
    ctx: &SslContext,
    host: &str,
    verify_name: bool,
) -> std::result::Result<Ssl, ErrorStack> {
    let mut ssl = Ssl::new(ctx)?;
    let ip = host.parse::<std::net::IpAddr>().ok();
    if ip.is_none() {
        ssl.set_hostname(host)?;
    }
    if verify_name {
        let param = ssl.param_mut();
        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match ip {
            Some(ip) => param.set_ip(ip)?,
            None => param.set_host(host)?,
        }
    }
    Ok(ssl)
}

/// The system's trusted roots, read lazily where that trusts the same
/// certificates. OpenSSL's default paths are a bundle file, parsed whole
/// when loaded (about 40 ms for Debian's 140-odd roots: a quarter of a
/// no-op POP3 fetch), and a directory of files named by subject hash, of
/// which only the issuer a chain needs is read. When every certificate of
/// the bundle is, byte for byte, in one of those files (Debian, Ubuntu,
/// Alpine and Arch generate both from one list) the directory alone trusts
/// exactly what both would, and only it is used; otherwise (a bundle-only
/// system such as Fedora, a CA appended to the bundle by hand, an
/// `SSL_CERT_FILE` of one's own) both are loaded, as OpenSSL's default.
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` override the paths, as for any
/// OpenSSL program.
fn add_system_roots(store: &mut X509StoreBuilderRef) -> std::result::Result<(), ErrorStack> {
    // SAFETY: these take no arguments and return pointers to static
    // NUL-terminated strings.
    let (file, dir) = unsafe {
        (
            default_path(
                openssl_sys::X509_get_default_cert_file_env(),
                openssl_sys::X509_get_default_cert_file(),
            ),
            default_path(
                openssl_sys::X509_get_default_cert_dir_env(),
                openssl_sys::X509_get_default_cert_dir(),
            ),
        )
    };
    match (file, dir) {
        (Some(file), Some(dir)) if dir_holds_bundle(&file, &dir) => store
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(&dir, SslFiletype::PEM),
        _ => store.set_default_paths(),
    }
}

/// The value of the environment variable named by `env`, else `path`;
/// None for a value that is not UTF-8 (then OpenSSL's own lookup is used).
///
/// # Safety
/// Both pointers must be valid NUL-terminated strings.
unsafe fn default_path(
    env: *const std::ffi::c_char,
    path: *const std::ffi::c_char,
) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    let (env, path) = unsafe {
        (
            std::ffi::CStr::from_ptr(env),
            std::ffi::CStr::from_ptr(path),
        )
    };
    match std::env::var_os(env.to_str().ok()?) {
        Some(v) => v.into_string().ok(),
        None => path.to_str().ok().map(str::to_string),
    }
}

/// True when every certificate in the bundle `file` (none if it cannot be
/// read: OpenSSL could not read it either) is also, byte for byte, in a
/// hash-named file of `dirs` (`:`-separated). Compares PEM text, parses
/// nothing.
fn dir_holds_bundle(file: &str, dirs: &str) -> bool {
    let bundle = std::fs::read(file).unwrap_or_default();
    let want = pem_blocks(&bundle);
    if want.is_empty() {
        return true;
    }
    let mut have = std::collections::HashSet::new();
    for dir in dirs.split(':') {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if is_hash_name(&e.file_name().to_string_lossy())
                && let Ok(pem) = std::fs::read(e.path())
            {
                have.extend(pem_blocks(&pem));
            }
        }
    }
    want.iter().all(|b| have.contains(b))
}

/// A hashed directory's certificate file name: `hhhhhhhh.N`.
fn is_hash_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(h, n)| {
        h.len() == 8
            && h.bytes().all(|b| b.is_ascii_hexdigit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The certificate blocks of a PEM text, each as its label and its base64
/// without white space (CRLF and LF files compare equal).
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut out = Vec::new();
    for start in memchr::memmem::find_iter(pem, BEGIN) {
        let rest = &pem[start + BEGIN.len()..];
        let Some(label_end) = memchr::memmem::find(rest, b"-----") else {
            break;
        };
        let label = &rest[..label_end];
        if label != b"CERTIFICATE" && label != b"TRUSTED CERTIFICATE" {
            continue;
        }
        let body = &rest[label_end + 5..];
        let Some(end) = memchr::memmem::find(body, b"-----END ") else {
            break;
        };
        let mut block = label.to_vec();
        block.push(b':');
        block.extend(body[..end].iter().filter(|b| !b.is_ascii_whitespace()));
        out.push(block);
    }
    out
}

/// Performs the TLS handshake with system roots plus `--ca-file`, or with a
/// pinned fingerprint. An untrusted certificate is an error that shows its
/// fingerprint and says how to trust it.
pub async fn tls_handshake<S>(
    stream: S,
    host: &str,
    port: u16,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<(TlsStream<S>, PeerCert)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let server = format!("{host}:{port}");
    let connector = connector(opts)?;
    let tls_err = |e: openssl::error::ErrorStack| Error::connect(&server, e.to_string());
    // Pinning replaces chain and name checks (see `connector`).
    let ssl = client_ssl(&connector, host, opts.fingerprint.is_none()).map_err(tls_err)?;
    let mut tls = TlsStream::new(ssl, stream).map_err(tls_err)?;
    timed(limit, &server, "TLS handshake", async {
        match std::pin::Pin::new(&mut tls).connect().await {
            Ok(()) => Ok(()),
            Err(e) => Err(classify_tls_error(&server, host, opts, &tls, e)),
        }
    })
    .await?;
    let der = tls
        .ssl()
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .ok_or_else(|| Error::connect(&server, "TLS: server sent no certificate"))?;
    let cert = PeerCert::from_der(&der)?;
    if let Some(pin) = opts.fingerprint
        && pin != cert.sha256
    {
        return Err(Error::connect(
            &server,
            format!(
                "TLS: certificate fingerprint {} does not match the pinned one; refusing (certificate changed or connection intercepted)",
                cert.fingerprint()
            ),
        ));
    }
    Ok((tls, cert))
}

/// `X509_V_ERR_HOSTNAME_MISMATCH` (x509_vfy.h): the chain is fine, the
/// name is not.
const HOSTNAME_MISMATCH: i32 = 62;

fn classify_tls_error<S>(
    server: &str,
    host: &str,
    opts: &TlsOptions,
    tls: &TlsStream<S>,
    e: openssl::ssl::Error,
) -> Error {
    // With a pin nothing was verified, so a verify result means nothing.
    let verify = tls.ssl().verify_result();
    if opts.fingerprint.is_some() || verify == X509VerifyResult::OK {
        return Error::connect(server, format!("TLS handshake failed: {e}"));
    }
    if verify.as_raw() == HOSTNAME_MISMATCH {
        return Error::connect(
            server,
            format!(
                "TLS: server certificate not trusted (hostname mismatch: it does not name {host}); connect by a name it lists (see `mailferry check`), or pin it with --tls-fingerprint sha256:…"
            ),
        );
    }
    Error::connect(
        server,
        format!(
            "TLS: server certificate not trusted ({}); add its CA with --ca-file PEM, or pin it with --tls-fingerprint sha256:… (see `mailferry check`)",
            verify.error_string()
        ),
    )
}

/// Fetches the server's leaf certificate without trusting it, so an
/// "untrusted certificate" error can show the fingerprint to pin.
pub async fn peek_certificate<S>(stream: S, host: &str, limit: Duration) -> Option<PeerCert>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opts = TlsOptions {
        fingerprint: Some([0; 32]),
        ..TlsOptions::default()
    };
    let ssl = client_ssl(&connector(&opts).ok()?, host, false).ok()?;
    let mut tls = TlsStream::new(ssl, stream).ok()?;
    tokio::time::timeout(limit, std::pin::Pin::new(&mut tls).connect())
        .await
        .ok()?
        .ok()?;
    let der = tls.ssl().peer_certificate()?.to_der().ok()?;
    PeerCert::from_der(&der).ok()
}

/// The TCP stream under TLS, read through a buffer: OpenSSL asks for a
/// record's 5-byte header and then its body, so without one every TLS
/// record costs two or more `recv` calls (about 290,000 for a 560 MB POP3
/// download; some 20,000 with the buffer).
pub type BufferedTcp = tokio::io::BufReader<TcpStream>;

/// Size of [`BufferedTcp`]'s buffer: several TLS records per `recv`.
const TLS_READ_BUFFER: usize = 128 * 1024;

/// TLS over `tcp` (implicit TLS or after STARTTLS/STLS), as the transport
/// both mail clients use; see [`tls_handshake`] for the checks.
pub async fn start_tls(
    tcp: TcpStream,
    host: &str,
    port: u16,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<(MailStream, PeerCert)> {
    let buffered = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp);
    let (tls, cert) = tls_handshake(buffered, host, port, opts, limit).await?;
    Ok((MailStream::Tls(Box::new(tls)), cert))
}

/// SHA-256 of a byte string: message content digests for dedup and verify.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    // A context, not the one-shot `openssl::sha::sha256`: OpenSSL 3's
    // `SHA256()` looks the digest up by name on every call (EVP_Q_digest),
    // a lock and a property query per message. Same code for the bytes.
    let mut h = openssl::sha::Sha256::new();
    h.update(data);
    h.finish()
}

/// The one transport type both mail clients use: plain TCP (before
/// STARTTLS, or with `--insecure-plaintext`) or TLS over TCP. An enum, not
/// a trait object, so it stays `Debug + Send + Unpin` as async-imap wants.
#[derive(Debug)]
pub enum MailStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<BufferedTcp>>),
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a killed run leaves queued never reaches the server: a closed
    /// connection is reset (see [`tcp_connect`]), not drained.
    #[tokio::test]
    async fn a_closed_connection_delivers_nothing_it_still_had_queued() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // A small receive buffer on the server side, so that most of what
        // the client writes stays queued on the client's side, as behind
        // a slow uplink.
        let small: libc::c_int = 4096;
        // SAFETY: a valid socket and a pointer to a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                l.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let port = l.local_addr().unwrap().port();
        let c = tcp_connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        let (mut s, _) = l.accept().unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        // Queue until the buffers stay full for a while.
        let (mut queued, mut stalls) = (0, 0);
        while stalls < 3 {
            match c.try_write(&chunk) {
                Ok(n) => (queued, stalls) = (queued + n, 0),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stalls += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        drop(c);
        let (mut got, mut buf) = (0, vec![0u8; 64 * 1024]);
        let end = loop {
            match s.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got += n,
                Err(e) => break Some(e.kind()),
            }
        };
        assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
        assert!(
            got < queued / 2,
            "the server still received {got} of the {queued} bytes queued at close"
        );
    }

    #[test]
    fn pem_blocks_compare_certificates_whatever_the_line_ends() {
        let lf = b"x\n-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n\
                   -----BEGIN TRUSTED CERTIFICATE-----\nQUJD\n-----END TRUSTED CERTIFICATE-----\n";
        let crlf: Vec<u8> = String::from_utf8_lossy(lf)
            .replace('\n', "\r\n")
            .into_bytes();
        let blocks = pem_blocks(lf);
        assert_eq!(
            blocks,
            [
                b"CERTIFICATE:QUJDREVG".to_vec(),
                b"TRUSTED CERTIFICATE:QUJD".to_vec()
            ]
        );
        assert_eq!(pem_blocks(&crlf), blocks);
        assert!(pem_blocks(b"-----BEGIN CERTIFICATE-----\nQUJD").is_empty());
        assert!(is_hash_name("9d66eef0.0") && is_hash_name("9d66eef0.12"));
        assert!(!is_hash_name("9d66eef0.r0") && !is_hash_name("ACCVRAIZ1.pem"));
    }
}
