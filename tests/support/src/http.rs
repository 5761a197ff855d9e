//! HTTP/1.1 written by hand over TCP, for what a client library would not
//! do: requests it would refuse or tidy up (duplicated headers, header
//! values that are not UTF-8, chunked bodies, paths with `..`), and load
//! that costs the server under test as little of the shared CPU as
//! possible.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct RawRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send the body as `Transfer-Encoding: chunked` (in 1,000-byte chunks)
    /// instead of with a Content-Length.
    pub chunked: bool,
    /// Used as the chunked encoding's framing verbatim instead, to send a
    /// malformed one.
    pub raw_chunked: Option<Vec<u8>>,
}

/// The status of a connection the server closed without answering.
pub const CLOSED_WITHOUT_ANSWER: u16 = 0;

pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a JSON body ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl RawRequest {
    pub fn new(method: &'static str, path: &str) -> RawRequest {
        RawRequest {
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
            raw_chunked: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> RawRequest {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = body.into();
        self
    }

    pub fn chunked(mut self) -> RawRequest {
        self.chunked = true;
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The request as it goes on the wire over a keep-alive connection
    /// (`Conn`); serialise once, send many times.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(false)
    }

    fn encode(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        let mut line = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        line("Host", b"127.0.0.1");
        if close {
            line("Connection", b"close");
        }
        for (name, value) in &self.headers {
            line(name, value);
        }
        let chunked = self.chunked || self.raw_chunked.is_some();
        if chunked {
            line("Transfer-Encoding", b"chunked");
        } else if !self.has("Content-Length") {
            line("Content-Length", self.body.len().to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(raw) = &self.raw_chunked {
            out.extend_from_slice(raw);
        } else if chunked {
            for chunk in self.body.chunks(1000) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// Sends the request on a connection of its own to `address`
    /// (`http://127.0.0.1:PORT`) and reads the answer until the server
    /// closes the connection. The request is written while the answer is
    /// read, so a server that answers before reading the whole body (413)
    /// is seen answering.
    pub async fn send(&self, address: &str) -> RawResponse {
        let host = address.trim_start_matches("http://");
        let stream = TcpStream::connect(host).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let bytes = self.encode(true);
        let write = tokio::spawn(async move {
            // The server may close early (413); what it answered is what counts.
            let _ = writer.write_all(&bytes).await;
            let _ = writer.flush().await;
            writer
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after the answer arrived: keep what was read.
                Err(_) => break,
            }
        }
        drop(write.await);
        if raw.is_empty() {
            return RawResponse {
                status: CLOSED_WITHOUT_ANSWER,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        parse_response(&raw)
            .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
    }
}

/// One keep-alive connection that sends pre-serialised requests and reads
/// each whole response before the next: a closed loop, like wrk. Per
/// request it does no more than wrk does (no header maps, no allocation
/// once the buffer has grown).
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
        let mut framing: Option<(u16, usize, usize)> = None; // status, body start, body length
        loop {
            if let Some((status, start, len)) = framing {
                if self.buf.len() >= start + len {
                    return Ok((status, &self.buf[start..start + len]));
                }
            }
            self.buf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                anyhow::bail!("the server closed the connection");
            }
            if framing.is_none() {
                framing = content_length_framing(&self.buf)?;
            }
        }
    }
}

/// Status, body start and Content-Length once the head is complete.
fn content_length_framing(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let Some(body_start) = head_end(buf) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..body_start])?;
    let (status, fields) =
        parse_head(head).ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {head:?}"))?;
    let mut length = 0;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("chunked responses are not supported on a keep-alive Conn");
        }
    }
    Ok(Some((status, body_start, length)))
}

/// Where the body starts, once `buf` holds the whole head.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|end| end + 4)
}

/// The status and the header fields (name and value, trimmed) of a head.
fn parse_head(head: &str) -> Option<(u16, impl Iterator<Item = (&str, &str)>)> {
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()));
    Some((status, fields))
}

fn parse_response(raw: &[u8]) -> Option<RawResponse> {
    let body_start = head_end(raw)?;
    let head = std::str::from_utf8(&raw[..body_start]).ok()?;
    let (status, fields) = parse_head(head)?;
    let headers: Vec<(String, String)> = fields
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut body = raw[body_start..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
