//! A small SMTP server for the tests and the benchmark: a real TCP
//! conversation (on 127.0.0.1 unless told otherwise), enough ESMTP for
//! lettre (no STARTTLS offered, so opportunistic TLS falls back to plain
//! text; AUTH PLAIN only when asked, and recorded). It records every
//! accepted message and has switches for the failures the outbox must
//! survive: refusals at MAIL, RCPT or DATA, a mail server that stops
//! answering mid-message, one that is slow, and one that is down (stopped,
//! then started again on the same port).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where in the conversation a refusal is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Mail,
    Rcpt,
    /// The DATA command itself (before any content).
    Data,
    /// After the final dot: the content was transferred, then refused.
    EndOfData,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The content after dot-unstuffing, without the final `.` line.
    pub data: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    refusals: Mutex<HashMap<Stage, String>>,
    /// Refusals given so far, by stage.
    refused: Mutex<HashMap<Stage, usize>>,
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// Conversations not finished yet.
    open: AtomicUsize,
    /// Conversations waiting for `hold(false)` right now.
    held: AtomicUsize,
    delay: Mutex<Duration>,
    greeting_delay: Mutex<Duration>,
    /// Whether EHLO offers AUTH.
    offer_auth: std::sync::atomic::AtomicBool,
    /// AUTH commands received, as sent (credentials in clear, if any).
    auth: Mutex<Vec<String>>,
}

struct Running {
    accept: JoinHandle<()>,
}

/// A test SMTP server on 127.0.0.1; see the module documentation.
pub struct SmtpServer {
    pub port: u16,
    ip: std::net::IpAddr,
    shared: Arc<Shared>,
    hold: watch::Sender<bool>,
    running: Mutex<Option<Running>>,
}

impl SmtpServer {
    /// Listens on a fresh port of 127.0.0.1.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_on([127, 0, 0, 1].into()).await
    }

    /// Listens on a fresh port of `ip` (an address of this machine).
    pub async fn start_on(ip: std::net::IpAddr) -> SmtpServer {
        let listener = bind(ip, 0).await;
        let port = listener.local_addr().unwrap().port();
        let server = SmtpServer {
            port,
            ip,
            shared: Arc::new(Shared::default()),
            hold: watch::channel(false).0,
            running: Mutex::new(None),
        };
        server.serve(listener);
        server
    }

    /// A server that is down from the start: its port is known, nothing
    /// listens there until `restart`.
    pub async fn down() -> SmtpServer {
        let server = SmtpServer::start().await;
        server.stop().await;
        server
    }

    /// `smtp://IP:PORT`
    pub fn url(&self) -> String {
        format!("smtp://{}", std::net::SocketAddr::new(self.ip, self.port))
    }

    /// Offers AUTH PLAIN in the EHLO reply (and accepts any credentials).
    pub fn offer_auth(&self, on: bool) {
        self.shared.offer_auth.store(on, Ordering::SeqCst);
    }

    /// Every AUTH command received, as the client sent it.
    pub fn auth_commands(&self) -> Vec<String> {
        self.shared.auth.lock().unwrap().clone()
    }

    /// Closes the listener and every open conversation (the mail server
    /// goes away; clients see their connections drop).
    pub async fn stop(&self) {
        let running = self.running.lock().unwrap().take();
        if let Some(running) = running {
            running.accept.abort();
            let _ = running.accept.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = bind(self.ip, self.port).await;
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let hold = self.hold.subscribe();
        let accept = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // conversation, which closes their sockets.
            let mut conversations = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        let shared = shared.clone();
                        let hold = hold.clone();
                        conversations.spawn(async move {
                            let _open = Counted::new(&shared.open);
                            converse(stream, shared.clone(), hold).await
                        });
                    }
                    Some(_) = conversations.join_next(), if !conversations.is_empty() => {}
                }
            }
        });
        *self.running.lock().unwrap() = Some(Running { accept });
    }

    /// Refuse at `stage` with this reply (e.g. `"550 5.1.1 no such user"`),
    /// or stop refusing with `None`.
    pub fn refuse(&self, stage: Stage, reply: Option<&str>) {
        let mut refusals = self.shared.refusals.lock().unwrap();
        match reply {
            Some(reply) => refusals.insert(stage, reply.to_string()),
            None => refusals.remove(&stage),
        };
    }

    /// While on, conversations stop answering after the final dot of a
    /// message (the client is left waiting, as with a hung mail server);
    /// turning it off lets them finish normally.
    pub fn hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Conversations currently held.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Waits until `n` conversations are held.
    pub async fn wait_held(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.held() < n {
            assert!(
                Instant::now() < deadline,
                "{n} held SMTP conversation(s) expected, {} after {timeout:?}",
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A pause before accepting each message (a slower mail server).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// A pause before the greeting of each connection (a mail server too
    /// slow to even say hello; nothing is accepted while clients time out).
    pub fn set_greeting_delay(&self, delay: Duration) {
        *self.shared.greeting_delay.lock().unwrap() = delay;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// When each message arrived, in order (cheaper than `messages` when
    /// only the timing matters).
    pub fn arrivals(&self) -> Vec<Instant> {
        self.shared
            .messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.at)
            .collect()
    }

    pub fn count(&self) -> usize {
        self.shared.messages.lock().unwrap().len()
    }

    /// Refusals given so far, all stages.
    pub fn refused(&self) -> usize {
        self.shared.refused.lock().unwrap().values().sum()
    }

    pub fn refused_at(&self, stage: Stage) -> usize {
        self.shared
            .refused
            .lock()
            .unwrap()
            .get(&stage)
            .copied()
            .unwrap_or(0)
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until every conversation has ended (the clients hung up or
    /// said QUIT): after that, nothing more can arrive from them.
    pub async fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.shared.open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "SMTP conversations still open after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `n` messages arrived; fails the test after
    /// `timeout`. Returns all messages so far.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{n} message(s) expected at the SMTP server, {} after {timeout:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Binds with SO_REUSEADDR so that a restart can take the same port back
/// while old connections linger in TIME_WAIT.
async fn bind(ip: std::net::IpAddr, port: u16) -> TcpListener {
    let addr = std::net::SocketAddr::new(ip, port);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = if ip.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot listen on {addr}: {e}"),
        }
    }
}

/// The address inside `FROM:<...>` / `TO:<...>` (`keyword` is `FROM:` or
/// `TO:`, any case), parameters ignored; None for anything else.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    if !arg.to_ascii_uppercase().starts_with(keyword) {
        return None;
    }
    let start = arg.find('<')?;
    let end = arg[start..].find('>')? + start;
    Some(arg[start + 1..end].to_string())
}

/// Counts a conversation (open, or held) for as long as it lives,
/// including when `stop` aborts it.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Counted<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

const MAX_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

async fn converse(stream: TcpStream, shared: Arc<Shared>, mut hold: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    macro_rules! reply {
        ($($arg:tt)*) => {
            if write.write_all(format!("{}\r\n", format_args!($($arg)*)).as_bytes()).await.is_err() {
                return;
            }
        };
    }
    let refusal = |stage: Stage| {
        let reply = shared.refusals.lock().unwrap().get(&stage).cloned();
        if reply.is_some() {
            *shared.refused.lock().unwrap().entry(stage).or_default() += 1;
        }
        reply
    };

    let greeting_delay = *shared.greeting_delay.lock().unwrap();
    tokio::time::sleep(greeting_delay).await;
    reply!("220 smtp.test ESMTP leakguard test server");
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut read)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                from = None;
                to.clear();
                // One write for the whole multi-line reply, as real servers
                // do: line by line would meet Nagle and delayed ACKs.
                let auth = if shared.offer_auth.load(Ordering::SeqCst) {
                    "250-AUTH PLAIN\r\n"
                } else {
                    ""
                };
                reply!(
                    "250-smtp.test greets {arg}\r\n250-8BITMIME\r\n{auth}250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE}"
                );
            }
            "HELO" => {
                from = None;
                to.clear();
                reply!("250 smtp.test");
            }
            "MAIL" => {
                let Some(address) = path_argument(arg, "FROM:") else {
                    reply!("501 5.5.4 syntax: MAIL FROM:<address>");
                    continue;
                };
                if from.is_some() {
                    reply!("503 5.5.1 nested MAIL command");
                } else if let Some(refused) = refusal(Stage::Mail) {
                    reply!("{refused}");
                } else {
                    from = Some(address);
                    reply!("250 2.1.0 ok");
                }
            }
            "RCPT" => {
                let Some(address) = path_argument(arg, "TO:") else {
                    reply!("501 5.5.4 syntax: RCPT TO:<address>");
                    continue;
                };
                if from.is_none() {
                    reply!("503 5.5.1 need MAIL first");
                } else if let Some(refused) = refusal(Stage::Rcpt) {
                    reply!("{refused}");
                } else {
                    to.push(address);
                    reply!("250 2.1.5 ok");
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    reply!("503 5.5.1 need MAIL and RCPT first");
                    continue;
                }
                if let Some(refused) = refusal(Stage::Data) {
                    reply!("{refused}");
                    continue;
                }
                reply!("354 end with <CRLF>.<CRLF>");
                let mut data = Vec::new();
                loop {
                    line.clear();
                    match (&mut read)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let content = if line.starts_with(b".") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    if data.len() + content.len() > MAX_MESSAGE {
                        reply!("552 5.3.4 message too big");
                        return;
                    }
                    data.extend_from_slice(content);
                }
                if *hold.borrow() {
                    let _held = Counted::new(&shared.held);
                    let _ = hold.wait_for(|on| !*on).await;
                }
                let delay = *shared.delay.lock().unwrap();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if let Some(refused) = refusal(Stage::EndOfData) {
                    reply!("{refused}");
                } else {
                    shared.messages.lock().unwrap().push(Received {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                        at: Instant::now(),
                    });
                    reply!("250 2.0.0 queued");
                }
                from = None;
                to.clear();
            }
            "RSET" => {
                from = None;
                to.clear();
                reply!("250 2.0.0 ok");
            }
            "NOOP" => reply!("250 2.0.0 ok"),
            "VRFY" => reply!("252 2.1.5 cannot verify"),
            "QUIT" => {
                reply!("221 2.0.0 bye");
                let _ = write.shutdown().await;
                return;
            }
            "AUTH" if shared.offer_auth.load(Ordering::SeqCst) => {
                shared.auth.lock().unwrap().push(text.to_string());
                reply!("235 2.7.0 authenticated");
            }
            "STARTTLS" | "AUTH" => reply!("502 5.5.1 not offered"),
            _ => reply!("500 5.5.2 command not recognised"),
        }
    }
}
