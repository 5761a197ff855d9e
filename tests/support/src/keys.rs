//! A stand-in for GitHub's key endpoint
//! (`/meta/public_keys/secret_scanning`) on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Serves a GitHub-format key set over HTTP; can be switched off (503),
/// slowed down, and counts requests.
#[derive(Clone)]
pub struct KeyServer {
    pub url: String,
    body: Arc<Mutex<Option<String>>>,
    delay: Arc<Mutex<std::time::Duration>>,
    hits: Arc<AtomicUsize>,
}

impl KeyServer {
    pub async fn start(body: String) -> KeyServer {
        let body = Arc::new(Mutex::new(Some(body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let delay = Arc::new(Mutex::new(std::time::Duration::ZERO));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (b, d, h) = (body.clone(), delay.clone(), hits.clone());
        let server = actix_web::HttpServer::new(move || {
            let (b, d, h) = (b.clone(), d.clone(), h.clone());
            actix_web::App::new().default_service(actix_web::web::to(move || {
                let (b, d, h) = (b.clone(), d.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let pause = *d.lock().unwrap();
                    tokio::time::sleep(pause).await;
                    match b.lock().unwrap().clone() {
                        Some(body) => actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body),
                        None => actix_web::HttpResponse::ServiceUnavailable().finish(),
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        KeyServer {
            url: format!("http://127.0.0.1:{port}/meta/public_keys/secret_scanning"),
            body,
            delay,
            hits,
        }
    }

    pub fn set(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }

    /// A pause before every answer (a key endpoint that is slow).
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
