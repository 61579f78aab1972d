//! A fault-injecting TCP proxy for what Dovecot cannot do on demand: cut
//! the connection after N bytes from the server. The cut point can be
//! changed between runs (u64::MAX = never), so the same endpoint, and so
//! the same account identity in the state, sees a failure and then a
//! clean rerun.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub port: u16,
    cut_after: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:port → 127.0.0.1:target; each connection is cut
    /// once the server has sent `cut_after` bytes on it.
    pub fn start(target: u16, cut_after: u64) -> Proxy {
        Proxy::start_with(target, cut_after, 0)
    }

    /// As [`Proxy::start`], but the first connection is never cut: for
    /// the extra sessions of a parallel download.
    pub fn start_sparing_first(target: u16, cut_after: u64) -> Proxy {
        Proxy::start_with(target, cut_after, 1)
    }

    /// Forwards without cutting, and counts the connections open through
    /// it (and every other proxy sharing `gauge`) at once.
    pub fn counting(target: u16, gauge: Arc<Gauge>) -> Proxy {
        Proxy::start_full(target, u64::MAX, 0, Some(gauge))
    }

    fn start_with(target: u16, cut_after: u64, spared: usize) -> Proxy {
        Proxy::start_full(target, cut_after, spared, None)
    }

    fn start_full(target: u16, cut_after: u64, spared: usize, gauge: Option<Arc<Gauge>>) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicU64::new(cut_after));
        let c = cut.clone();
        std::thread::spawn(move || {
            for (i, client) in l.incoming().flatten().enumerate() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                if let Some(g) = &gauge {
                    g.opened(client.try_clone().unwrap());
                }
                let limit = if i < spared {
                    u64::MAX
                } else {
                    c.load(Ordering::SeqCst)
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, u64::MAX));
                std::thread::spawn(move || pump(server, client, limit));
            }
        });
        Proxy {
            port,
            cut_after: cut,
        }
    }

    /// Changes the cut point for new connections.
    pub fn set_cut_after(&self, n: u64) {
        self.cut_after.store(n, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: u64) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = (n as u64).min(limit - sent) as usize;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if sent >= limit {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The most connections that were open at once through the proxies that
/// share it. A connection counts from its accept until the client closed
/// it: each accept first drops the ones whose client has hung up (a poll
/// that reads nothing), so a close that happened before a new connect is
/// never counted with it, whatever the pump threads are doing.
#[derive(Default)]
pub struct Gauge {
    open: Mutex<Vec<TcpStream>>,
    peak: AtomicUsize,
}

impl Gauge {
    fn opened(&self, client: TcpStream) {
        let mut open = self.open.lock().unwrap();
        open.retain(|s| !hung_up(s));
        open.push(client);
        self.peak.fetch_max(open.len(), Ordering::SeqCst);
    }

    /// The most connections open at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// True when the peer closed or reset the connection (without reading).
fn hung_up(s: &TcpStream) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
