//! Work that arrives together, done together: a task takes everything
//! waiting in its queue (up to a limit) and hands it over as one batch.
//! The alert recorder and the token lookup use it to pay each database
//! round trip once per batch instead of once per request.

use std::future::Future;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Starts the task; `each_batch` gets every batch in turn. After the first
/// item of a batch arrives, the task waits `gather` for more (zero: it
/// takes only what is already waiting). The task ends at shutdown, after
/// the server has answered its last request, so that it lets go of the
/// database before the pool closes (a task still holding it kept SQLite's
/// files mapped).
pub fn spawn_batches<T, F, Fut>(
    limit: usize,
    gather: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
    mut each_batch: F,
) -> (mpsc::UnboundedSender<T>, JoinHandle<()>)
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (queue, mut waiting) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let mut batch = Vec::with_capacity(limit);
            let received = tokio::select! {
                n = waiting.recv_many(&mut batch, limit) => n,
                _ = shutdown.wait_for(|stop| *stop) => 0,
            };
            if received == 0 {
                return;
            }
            if !gather.is_zero() && batch.len() < limit {
                tokio::time::sleep(gather).await;
                // Only what arrived meanwhile: recv_many would wait for more.
                while batch.len() < limit {
                    match waiting.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
            }
            each_batch(batch).await;
        }
    });
    (queue, task)
}
