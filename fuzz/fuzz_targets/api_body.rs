//! The Public API's JSON bodies: the same parse the handlers use, then every
//! field validator and the settings check, merge and mask against a
//! catalog entry, on whatever parsed.
#![no_main]

use leakguard::api::body::parse_json;
use leakguard::api::catalog::{CatalogEntry, OptionType, DESTINATIONS, SOURCES, WAREHOUSES};
use leakguard::api::settings;
use leakguard::api::validate::Fields;
use leakguard::domain::{Email, Name, Role, Slug, MAX_NAME};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

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
    fields.optional::<Slug>("slug");
    if let Some(name) = fields.optional::<Name>("name") {
        assert!(name.as_str().chars().count() <= MAX_NAME);
    }
    fields.boolean("enabled", false);
    fields.optional::<Email>("email");
    fields.optional::<Role>("role");
    fields.labels("labels");
    fields.require_any(ALLOWED);
    // Every kind in turn would be slow; the input picks one.
    let entries: Vec<&CatalogEntry> =
        SOURCES.iter().chain(DESTINATIONS.iter()).chain(WAREHOUSES.iter()).collect();
    let entry = entries[data.len() % entries.len()];
    let given = fields.object("settings").unwrap_or_default();
    let mut errors = Vec::new();
    let created = Value::Object(settings::for_create(entry, given.clone(), &mut errors));
    // A PATCH of the same settings onto what was created, then what a
    // reader is shown: no secret value may survive the mask.
    let merged = settings::merge(entry, &created, given, &mut errors);
    let shown = settings::masked(Some(entry), &merged);
    settings::changed_keys(&created, &merged);
    if let Value::Object(map) = &shown {
        for (k, v) in map {
            let password = entry
                .option(k)
                .is_some_and(|o| o.option_type == OptionType::Password);
            if password {
                assert!(v.is_null() || v == settings::MASK, "{k} shown as {v}");
            }
        }
    }
    assert_no_secret_shown(&shown);
    let _ = fields.finish();
});

fn assert_no_secret_shown(value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if settings::is_secret_key(k) {
                    assert!(v.is_null() || v == settings::MASK, "{k} shown as {v}");
                } else {
                    assert_no_secret_shown(v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_secret_shown),
        Value::String(s) => assert!(!settings::is_url_with_credentials(s), "{s} shown"),
        _ => {}
    }
}
