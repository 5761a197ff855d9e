//! The console's registration: each page is a method, a path under
//! `/app` and its handler. These are HTML pages for people, not part of
//! the Public API, so they are not in the OpenAPI document and their
//! handlers describe nothing; the console's own role and isolation tests
//! read `console::endpoints()` instead.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};

use super::{ConsoleError, ROOT};

/// One console page: a (method, path) and its handler.
pub struct Page {
    pub method: Method,
    /// In actix's syntax, from the server's root: `/app/w/{workspace}`.
    pub path: &'static str,
    route: actix_web::Route,
}

impl Page {
    pub fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Page
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        debug_assert!(path.starts_with(ROOT), "{path} is outside {ROOT}");
        Page {
            route: web::method(method.clone()).to(handler),
            method,
            path,
        }
    }
}

/// Registers pages inside the console's scope: one resource per path with
/// the methods of every page on it, and its pattern for the request
/// metrics and the access log. Another method on a known path is a 405
/// page that lists the path's methods in `Allow`.
pub fn register(cfg: &mut web::ServiceConfig, pages: Vec<Page>) {
    let mut paths: Vec<(&'static str, Vec<Page>)> = Vec::new();
    for page in pages {
        match paths.iter_mut().find(|(path, _)| *path == page.path) {
            Some((_, same_path)) => same_path.push(page),
            None => paths.push((page.path, vec![page])),
        }
    }
    for (path, pages) in paths {
        let allow = pages
            .iter()
            .map(|p| p.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let resource = web::resource(&path[ROOT.len()..])
            .app_data(crate::middleware::RoutePattern(path))
            .default_service(web::to(move |req: HttpRequest| {
                let error = ConsoleError::MethodNotAllowed {
                    method: req.method().to_string(),
                    allow: allow.clone(),
                };
                async move { Err::<HttpResponse, _>(error) }
            }));
        cfg.service(pages.into_iter().fold(resource, |r, p| r.route(p.route)));
    }
}
