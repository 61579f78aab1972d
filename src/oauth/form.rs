//! The two text formats OAuth2 speaks besides JSON: `http(s)://` endpoint
//! URLs and `application/x-www-form-urlencoded` pairs (request bodies,
//! the authorization URL's query, the redirect's query).

use crate::error::{Error, Result};

/// An endpoint URL taken apart for an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https` (`false` only for a loopback host: tests, local proxies).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query as sent on the request line (`/` at least).
    pub target: String,
}

impl HttpUrl {
    /// Parses `https://HOST[:PORT][/PATH][?QUERY]`. `http://` is accepted
    /// only for 127.0.0.1, ::1 and localhost: a token or a refresh token
    /// never crosses a network in clear.
    pub fn parse(s: &str) -> Result<HttpUrl> {
        let bad = |why: &str| Error::Usage(format!("{s:?}: {why}"));
        let (tls, rest) = if let Some(r) = strip_prefix_ci(s, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "http://") {
            (false, r)
        } else {
            return Err(bad("not an https:// URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("a user name or password in the URL is not accepted"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None if tls => 443,
            None => 80,
        };
        if !tls && !is_loopback(&host) {
            return Err(bad(
                "plain http:// is allowed only for 127.0.0.1, ::1 or localhost; use https://",
            ));
        }
        let tail = tail.split('#').next().unwrap_or("");
        let target = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        Ok(HttpUrl {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// `host:port` for messages.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host:` header: the port only when it is not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            (_, p) => format!("{host}:{p}"),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// True for the hosts a plain `http://` URL may name.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Form-encodes pairs: `a=b&c=d`, everything but RFC 3986's unreserved
/// characters percent-encoded (a space as `%20`, which every decoder reads).
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_escaped(&mut out, k);
        out.push('=');
        push_escaped(&mut out, v);
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `a=b&c=d` (`+` is a space, `%XX` a byte). A pair without `=`
/// has an empty value; malformed escapes are kept as written.
pub fn decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in decoded pairs.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("https://oauth2.googleapis.com/token").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "oauth2.googleapis.com", 443, "/token")
        );
        assert_eq!(u.host_header(), "oauth2.googleapis.com");
        let u = HttpUrl::parse("http://127.0.0.1:8080?x=1").unwrap();
        assert_eq!((u.port, u.target.as_str()), (8080, "/?x=1"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = HttpUrl::parse("http://[::1]:9/t").unwrap();
        assert_eq!(u.server(), "[::1]:9");
        assert!(HttpUrl::parse("http://example.com/token").is_err());
        assert!(HttpUrl::parse("ftp://x/").is_err());
        assert!(HttpUrl::parse("https://u:p@x/").is_err());
        assert!(HttpUrl::parse("https://x:0/").is_err());
        assert!(HttpUrl::parse("https://x/a b").is_err());
    }

    #[test]
    fn form_round_trip() {
        let s = encode(&[("scope", "a b/c"), ("x", "é&=+")]);
        assert_eq!(s, "scope=a%20b%2Fc&x=%C3%A9%26%3D%2B");
        let d = decode(&s);
        assert_eq!(get(&d, "scope"), Some("a b/c"));
        assert_eq!(get(&d, "x"), Some("é&=+"));
        let d = decode("code=4%2F0A+b&state=%zz&flag&e=%4");
        assert_eq!(get(&d, "code"), Some("4/0A b"));
        assert_eq!(get(&d, "state"), Some("%zz"));
        assert_eq!(get(&d, "flag"), Some(""));
        assert_eq!(get(&d, "e"), Some("%4"));
    }
}
