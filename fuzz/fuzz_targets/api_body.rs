//! The Public API's JSON bodies: the same parse the handlers use, then every
//! field validator and the settings merge and mask, on whatever parsed.
#![no_main]

use leakguard::api::body::parse_json;
use leakguard::api::settings;
use leakguard::api::validate::{Fields, MAX_NAME};
use libfuzzer_sys::fuzz_target;

const ALLOWED: &[&str] = &[
    "slug",
    "name",
    "enabled",
    "metadataId",
    "settings",
    "labels",
    "email",
    "role",
];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_json(data) else {
        return;
    };
    let Ok(mut fields) = Fields::of(&body, ALLOWED) else {
        return;
    };
    fields.slug("slug", false);
    if let Some(name) = fields.string("name", false, MAX_NAME) {
        assert!(name.chars().count() <= MAX_NAME);
    }
    fields.boolean("enabled", false);
    fields.email("email", false);
    fields.one_of("role", false, &["owner", "member", "read_only"]);
    fields.labels("labels");
    fields.require_any(ALLOWED);
    let given = fields.object("settings");
    let mut errors = Vec::new();
    let created = settings::for_create(given.clone(), &mut errors);
    // A PATCH of the same settings onto what was created, then what a
    // reader is shown: no secret value may survive the mask.
    let merged = settings::merge(&created, given.unwrap_or_default(), &mut errors);
    let shown = settings::masked(&merged);
    settings::changed_keys(&created, &merged);
    assert_no_secret_shown(&shown);
    let _ = fields.finish();
});

fn assert_no_secret_shown(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if settings::is_secret(k) {
                    assert!(v.is_null() || v == settings::MASK, "{k} shown as {v}");
                } else {
                    assert_no_secret_shown(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_no_secret_shown),
        _ => {}
    }
}
