//! The load generator: HTTP/1.1 over raw keep-alive TCP connections. Each
//! connection sends a pre-serialised request, reads the whole response and
//! sends the next (a closed loop, like wrk). Per request it does no more
//! than wrk does (no header maps, no allocation once the buffer has grown),
//! so the server keeps as much of the shared CPU as possible.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as it goes on the wire.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends `request` and reads the whole response: (status, body).
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let mut head: Option<(u16, usize, usize)> = None; // status, body start, body length
        loop {
            if let Some((status, start, len)) = head {
                if self.buf.len() >= start + len {
                    return Ok((status, &self.buf[start..start + len]));
                }
            }
            self.buf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            if head.is_none() {
                head = parse_head(&self.buf)?;
            }
        }
    }
}

/// Status, body start and Content-Length once the head is complete.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end])?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {head:?}"))?;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("chunked responses are not supported by the load generator");
        }
    }
    Ok(Some((status, end + 4, length.unwrap_or(0))))
}

/// What a closed-loop run did.
pub struct Load {
    pub requests: u64,
    pub elapsed: Duration,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// `connections` connections cycle through `requests` for `duration`.
/// Every answer must have status `expect`: anything else stops the run
/// with an error, so a failing server never passes for a fast one.
pub async fn closed_loop(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    duration: Duration,
    expect: u16,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let requests = requests.clone();
        tasks.spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut done = 0u64;
            let mut next = c;
            while Instant::now() < deadline {
                let (status, body) = conn.exchange(&requests[next % requests.len()]).await?;
                if status != expect {
                    anyhow::bail!(
                        "expected {expect}, got {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                }
                done += 1;
                next += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut total = 0;
    while let Some(result) = tasks.join_next().await {
        total += result??;
    }
    Ok(Load {
        requests: total,
        elapsed: started.elapsed(),
    })
}
