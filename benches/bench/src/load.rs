//! The load generator: keep-alive connections (test_support's `Conn`),
//! each sending a pre-serialised request, reading the whole response and
//! sending the next (a closed loop, like wrk), so that the server keeps as
//! much of the shared CPU as possible.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::http::Conn;

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

/// `connections` connections cycle through `requests` for `duration`, all
/// on one thread of their own, as `wrk -t1` runs them: on two cores, a
/// generator's second thread competes with the server it measures. Every answer must have status `expect`:
/// anything else stops the run with an error, so a failing server never
/// passes for a fast one.
pub async fn closed_loop(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    connections: usize,
    duration: Duration,
    expect: u16,
) -> anyhow::Result<Load> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(on_this_thread(
                addr,
                requests,
                connections,
                duration,
                expect,
            ))
    })
    .await?
}

async fn on_this_thread(
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
