//! Placeholder: filled in by the Public API work.

use actix_web::web;

pub fn routes(_cfg: &mut web::ServiceConfig) {}
