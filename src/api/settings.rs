//! The `settings` of sources, destinations and warehouses. They are checked
//! against the options of their catalog entry (known keys, each of its
//! type, every required one set), capped in size, stored as given, shown
//! with every secret masked, and updated by merging.
//!
//! A value is secret when its option is of type `password`, when its key
//! names a secret (`apiKey`, `clientSecret`, at any depth: stored settings
//! from before the catalog was enforced may hold anything), or when it is a
//! URL that carries credentials (`https://user:pass@host`, `?token=…`).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::catalog::{CatalogEntry, CatalogOption, OptionType};
use super::error::FieldError;

/// What the value of a secret setting is shown as.
pub const MASK: &str = "••••";

/// The largest settings object kept, as compact JSON. Any settings that
/// the catalog's options allow fit (a unit test checks); what does not is
/// what was stored before the options were enforced.
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// The most object keys, at every depth, that stored settings may hold.
pub const MAX_SETTINGS_KEYS: usize = 64;

/// Longest `string` setting, in characters.
pub const MAX_STRING: usize = 1024;
/// Longest `password` setting, in characters: room for a service
/// account's JSON key or a PEM private key.
pub const MAX_PASSWORD: usize = 4096;
/// Most items of an `array` setting, and the longest item.
pub const MAX_ITEMS: usize = 50;
pub const MAX_ITEM: usize = 200;

/// Words that mark a key as holding a secret, compared case-insensitively.
/// Over-matching (`keyboardLayout`) only masks a harmless value; missing a
/// secret would hand it to every read-only token.
const SECRET_WORDS: &[&str] = &["password", "token", "key", "secret"];

/// Query parameters of a URL that carry a credential, besides the secret
/// words: signatures and authorisation codes.
const SECRET_PARAMETERS: &[&str] = &["sig", "auth", "credential", "code"];

pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Whether `text` is a URL that carries credentials: a user name or
/// password before the host, or a query parameter that names a secret.
pub fn is_url_with_credentials(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text.trim()) else {
        return false;
    };
    if url.cannot_be_a_base() {
        return false;
    }
    !url.username().is_empty()
        || url.password().is_some()
        || url.query_pairs().any(|(name, _)| {
            let name = name.to_lowercase();
            is_secret_key(&name) || SECRET_PARAMETERS.iter().any(|w| name.contains(w))
        })
}

/// Whether the value under `key` is shown masked. `option` is the catalog's
/// option of that key, for top-level keys.
fn is_secret(key: &str, value: &Value, option: Option<&CatalogOption>) -> bool {
    if value.is_null() {
        // "Not set" reveals nothing.
        return false;
    }
    option.is_some_and(|o| o.option_type == OptionType::Password)
        || is_secret_key(key)
        || value.as_str().is_some_and(is_url_with_credentials)
}

/// A copy fit to show: every secret value replaced by [`MASK`].
pub fn masked(entry: Option<&CatalogEntry>, settings: &Value) -> Value {
    match settings {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let option = entry.and_then(|e| e.option(k));
                    (k.clone(), mask_value(k, v, option))
                })
                .collect(),
        ),
        other => mask_value("", other, None),
    }
}

fn mask_value(key: &str, value: &Value, option: Option<&CatalogOption>) -> Value {
    if is_secret(key, value, option) {
        return Value::String(MASK.to_string());
    }
    match value {
        Value::Object(_) => masked(None, value),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask_value("", v, None)).collect())
        }
        other => other.clone(),
    }
}

/// Settings as the API shows them: masked. Resources hold their settings
/// in this form, so they can only ever be serialised with secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Shown(Value);

impl Shown {
    pub fn of(entry: Option<&CatalogEntry>, settings: &Value) -> Shown {
        Shown(masked(entry, settings))
    }
}

impl utoipa::PartialSchema for Shown {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let schema = json!({
            "type": "object",
            "description": "The settings, keyed by the catalog entry's option names. Secret \
                values (options of type password, keys that name a secret, URLs that carry \
                credentials) are shown as \"••••\".",
        });
        serde_json::from_value(schema).expect("a valid schema")
    }
}
impl utoipa::ToSchema for Shown {}

/// The settings of a new resource of kind `entry`, or the problems with
/// them in `errors`. A mask cannot stand for a secret: none is stored yet.
pub fn for_create(
    entry: &CatalogEntry,
    given: Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    for (key, value) in &given {
        let here = format!("settings.{key}");
        if value.is_null() {
            continue;
        }
        match entry.option(key) {
            None => errors.push(unknown(entry, &here)),
            Some(option) => {
                if value.as_str() == Some(MASK) && is_secret(key, value, Some(option)) {
                    errors.push(FieldError::new(&here, MASK_WITHOUT_SECRET));
                } else {
                    check_type(option, value, &here, errors);
                }
            }
        }
    }
    // Null counts as not sent.
    let settings: Map<String, Value> = given.into_iter().filter(|(_, v)| !v.is_null()).collect();
    require_all(entry, &settings, errors);
    check_size(&settings, errors);
    settings
}

/// The settings after a PATCH of a resource of kind `entry`: each
/// top-level key given replaces the stored one and `null` removes it, so a
/// client can change one setting without resending (or knowing) the
/// others. A key the catalog does not know may only be removed.
pub fn merge(
    entry: &CatalogEntry,
    stored: &Value,
    patch: Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Value {
    let shown = masked(Some(entry), stored);
    let mut merged = stored.as_object().cloned().unwrap_or_default();
    for (key, mut value) in patch {
        let here = format!("settings.{key}");
        let option = entry.option(&key);
        if value.is_null() {
            if option.is_some_and(|o| o.required) {
                errors.push(FieldError::new(
                    &here,
                    "is required by this kind of resource and cannot be removed",
                ));
            }
            merged.remove(&key);
            continue;
        }
        let Some(option) = option else {
            errors.push(unknown(entry, &here));
            continue;
        };
        let secret_place = is_secret(&key, &value, Some(option));
        unmask(
            &mut value,
            stored.get(&key),
            shown.get(&key),
            &here,
            secret_place,
            errors,
        );
        check_type(option, &value, &here, errors);
        merged.insert(key, value);
    }
    require_all(entry, &merged, errors);
    check_size(&merged, errors);
    Value::Object(merged)
}

/// Whether stored settings satisfy their kind: what a warehouse's
/// connection state reports.
pub fn complete(entry: &CatalogEntry, settings: &Value) -> bool {
    let mut errors = Vec::new();
    let map = settings.as_object().cloned().unwrap_or_default();
    for (key, value) in &map {
        if let Some(option) = entry.option(key) {
            check_type(option, value, key, &mut errors);
        }
    }
    require_all(entry, &map, &mut errors);
    errors.is_empty()
}

/// Records each mask under a key that names a secret, at any depth: in a
/// new resource's settings there is no stored secret for it to stand for.
pub fn masks_without_secret(given: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    fn walk(value: &Value, here: &str, secret: bool, errors: &mut Vec<FieldError>) {
        match value {
            Value::String(s) if s == MASK && secret => {
                errors.push(FieldError::new(here, MASK_WITHOUT_SECRET))
            }
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{here}.{k}"), is_secret_key(k), errors);
                }
            }
            _ => {}
        }
    }
    for (k, v) in given {
        walk(v, &format!("settings.{k}"), is_secret_key(k), errors);
    }
}

/// Settings of kind `entry` for a validation request: every problem, as
/// `for_create` finds them.
pub fn problems(entry: &CatalogEntry, given: Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for_create(entry, given, &mut errors);
    errors
}

const MASK_WITHOUT_SECRET: &str =
    "is the mask of a secret that is not stored; send the value itself";

fn unknown(entry: &CatalogEntry, here: &str) -> FieldError {
    let names: Vec<&str> = entry.options.iter().map(|o| o.name.as_str()).collect();
    FieldError::new(
        here,
        format!(
            "is not a setting of {}; its settings are {}",
            entry.name,
            names.join(", ")
        ),
    )
}

fn require_all(entry: &CatalogEntry, settings: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    for option in entry.options.iter().filter(|o| o.required) {
        let here = format!("settings.{}", option.name);
        let missing = settings.get(&option.name).is_none_or(Value::is_null);
        if missing && !errors.iter().any(|e| e.field.as_deref() == Some(&here)) {
            errors.push(FieldError::new(
                &here,
                format!("is required by {}", entry.name),
            ));
        }
    }
}

fn check_type(option: &CatalogOption, value: &Value, here: &str, errors: &mut Vec<FieldError>) {
    let chars = |s: &str| s.chars().count();
    let problem = match (option.option_type, value) {
        (OptionType::String, Value::String(s)) if chars(s) > MAX_STRING => {
            Some(format!("must be at most {MAX_STRING} characters"))
        }
        (OptionType::Password, Value::String(s)) if chars(s) > MAX_PASSWORD => {
            Some(format!("must be at most {MAX_PASSWORD} characters"))
        }
        (OptionType::String | OptionType::Password, Value::String(_)) => None,
        (OptionType::String | OptionType::Password, _) => Some("must be a string".into()),
        (OptionType::Number, Value::Number(_)) => None,
        (OptionType::Number, _) => Some("must be a number".into()),
        (OptionType::Boolean, Value::Bool(_)) => None,
        (OptionType::Boolean, _) => Some("must be true or false".into()),
        (OptionType::Array, Value::Array(items)) => {
            let fits = |v: &Value| v.as_str().is_some_and(|s| chars(s) <= MAX_ITEM);
            (items.len() > MAX_ITEMS || !items.iter().all(fits)).then(|| {
                format!("must be a list of at most {MAX_ITEMS} strings of at most {MAX_ITEM} characters")
            })
        }
        (OptionType::Array, _) => Some("must be a list of strings".into()),
    };
    if let Some(message) = problem {
        errors.push(FieldError::new(here, message));
    }
}

/// Caps what one row can hold: without them, repeated PATCHes of new keys
/// grew one row without bound, and every read parsed all of it.
fn check_size(settings: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let bytes = crate::db::json_text(settings).len();
    if bytes > MAX_SETTINGS_BYTES {
        errors.push(FieldError::new(
            "settings",
            format!("would take {bytes} bytes; at most {MAX_SETTINGS_BYTES} are kept"),
        ));
    }
    let keys = count_keys(&Value::Object(settings.clone()));
    if keys > MAX_SETTINGS_KEYS {
        errors.push(FieldError::new(
            "settings",
            format!("would hold {keys} keys; at most {MAX_SETTINGS_KEYS} are kept"),
        ));
    }
}

fn count_keys(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(count_keys).sum::<usize>(),
        Value::Array(items) => items.iter().map(count_keys).sum(),
        _ => 0,
    }
}

/// Puts the stored secret back wherever a client sent [`MASK`] where the
/// resource shows one (it read the resource, edited another setting and
/// sent everything back), so that a secret is never overwritten by its own
/// mask. A mask in a secret's place with no secret stored there is refused
/// rather than stored as the secret.
fn unmask(
    value: &mut Value,
    stored: Option<&Value>,
    shown: Option<&Value>,
    here: &str,
    secret_place: bool,
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::String(s) if s == MASK => {
            match (stored, shown.and_then(Value::as_str)) {
                (Some(stored), Some(MASK)) => *value = stored.clone(),
                _ if secret_place => errors.push(FieldError::new(here, MASK_WITHOUT_SECRET)),
                // A plain value that happens to read "••••".
                _ => {}
            }
        }
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let secret = is_secret_key(key);
                unmask(
                    v,
                    stored.and_then(|s| s.get(key.as_str())),
                    shown.and_then(|s| s.get(key.as_str())),
                    &format!("{here}.{key}"),
                    secret,
                    errors,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                unmask(
                    v,
                    stored.and_then(|s| s.get(i)),
                    shown.and_then(|s| s.get(i)),
                    &format!("{here}[{i}]"),
                    false,
                    errors,
                );
            }
        }
        _ => {}
    }
}

/// The top-level keys whose values differ: what an audit event may say
/// about a settings change without repeating any value.
pub fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// How the document describes one option's value: `create` for a new
/// resource (a mask cannot stand for a secret there), otherwise for a
/// PATCH (null removes an optional setting).
fn option_schema(option: &CatalogOption, create: bool) -> Value {
    let mut schema = match option.option_type {
        OptionType::String => json!({ "type": "string", "maxLength": MAX_STRING }),
        OptionType::Password if create => {
            json!({ "type": "string", "maxLength": MAX_PASSWORD, "not": { "const": MASK } })
        }
        OptionType::Password => json!({
            "type": "string",
            "maxLength": MAX_PASSWORD,
            "description": "\"••••\" keeps the stored secret",
        }),
        OptionType::Number => json!({ "type": "number" }),
        OptionType::Boolean => json!({ "type": "boolean" }),
        OptionType::Array => json!({
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": { "type": "string", "maxLength": MAX_ITEM },
        }),
    };
    // Null counts as not sent on create, and removes the setting in a
    // PATCH; neither may leave a required one unset.
    if !option.required {
        let kind = schema["type"].clone();
        schema["type"] = json!([kind, "null"]);
    }
    if option.option_type != OptionType::Password || create {
        schema["description"] = option.description.clone().into();
    }
    schema
}

/// The schema of the settings of a new resource of kind `entry`: its
/// options and no others, the required ones required.
pub fn create_schema(entry: &CatalogEntry) -> Value {
    let properties: Map<String, Value> = entry
        .options
        .iter()
        .map(|o| (o.name.clone(), option_schema(o, true)))
        .collect();
    let required: Vec<&str> = entry
        .options
        .iter()
        .filter(|o| o.required)
        .map(|o| o.name.as_str())
        .collect();
    json!({
        "type": "object",
        "description": format!("The settings of {}", entry.name),
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The schema of a PATCH's settings for resources of any of `entries`: the
/// options of one of them (which must be the resource's own kind, which
/// the path does not say). Other keys may only be removed (null).
pub fn patch_schema(entries: &[CatalogEntry]) -> Value {
    let kinds: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let properties: Map<String, Value> = entry
                .options
                .iter()
                .map(|o| (o.name.clone(), option_schema(o, false)))
                .collect();
            json!({
                "type": "object",
                "title": entry.name,
                "properties": properties,
                "additionalProperties": { "type": "null" },
            })
        })
        .collect();
    json!({
        "description": "Merged into the stored settings by top-level key: null removes a \
            setting (not a required one), \"••••\" keeps the stored secret. The keys are those \
            of the resource's own kind.",
        "anyOf": kinds,
    })
}

/// Rewrites the component `name`, a create body with `metadataId` and
/// `settings`, as one variant per kind of `entries` (named `name` +
/// `HttpApi`…), each with the kind's own settings, told apart by
/// `metadataId`.
pub fn one_variant_per_kind(
    schemas: &mut std::collections::BTreeMap<String, Value>,
    name: &str,
    entries: &[CatalogEntry],
) {
    let Some(base) = schemas.remove(name) else {
        return;
    };
    let mut variants = Vec::new();
    let mut mapping = Map::new();
    for entry in entries {
        let mut variant = base.clone();
        variant["title"] = format!("{name} ({})", entry.name).into();
        variant["properties"]["metadataId"] = json!({
            "type": "string",
            "const": entry.id,
            "description": format!("{}: an entry of the catalog", entry.name),
        });
        let settings = create_schema(entry);
        let required = entry.options.iter().any(|o| o.required);
        variant["properties"]["settings"] = if required {
            settings
        } else {
            // Null counts as not sent.
            json!({ "anyOf": [settings, { "type": "null" }] })
        };
        if required {
            if let Some(list) = variant["required"].as_array_mut() {
                list.push("settings".into());
            }
        }
        let variant_name = format!("{name}{}", entry.type_name());
        let reference = format!("#/components/schemas/{variant_name}");
        variants.push(json!({ "$ref": reference }));
        mapping.insert(entry.id.clone(), reference.into());
        schemas.insert(variant_name, variant);
    }
    let mut one_of = json!({
        "oneOf": variants,
        "discriminator": { "propertyName": "metadataId", "mapping": mapping },
    });
    if let Some(description) = base.get("description") {
        one_of["description"] = description.clone();
    }
    schemas.insert(name.to_string(), one_of);
}

/// Rewrites the `settings` property of the component `name`, a PATCH body,
/// as the settings of any kind of `entries` (`patch_schema`), or null.
pub fn patch_settings_property(
    schemas: &mut std::collections::BTreeMap<String, Value>,
    name: &str,
    entries: &[CatalogEntry],
) {
    if let Some(component) = schemas.get_mut(name) {
        let mut schema = patch_schema(entries);
        if let Some(kinds) = schema["anyOf"].as_array_mut() {
            kinds.push(json!({ "type": "null" }));
        }
        component["properties"]["settings"] = schema;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::catalog::{DESTINATIONS, SOURCES, WAREHOUSES};

    fn entry(slug: &str) -> &'static CatalogEntry {
        DESTINATIONS
            .iter()
            .chain(SOURCES.iter())
            .chain(WAREHOUSES.iter())
            .find(|e| e.slug == slug)
            .unwrap()
    }

    #[test]
    fn secrets_are_masked_by_type_key_and_url() {
        let slack = entry("slack");
        let stored =
            json!({ "webhookUrl": "https://hooks.slack.test/services/T0/B0/x", "channel": "#a" });
        assert_eq!(
            masked(Some(slack), &stored),
            json!({ "webhookUrl": MASK, "channel": "#a" })
        );
        let legacy = json!({
            "apiKey": "k1", "Password": "p", "region": "eu", "accessTOKEN": "t",
            "nested": {"clientSecret": "s", "url": "https://x"},
            "list": [{"privateKey": {"pem": "..."}}, "https://u:p@h/"],
            "hook": "https://h.test/in?sig=abc", "plain": "https://h.test/in?page=2",
            "unsetToken": null
        });
        assert_eq!(
            masked(None, &legacy),
            json!({
                "apiKey": MASK, "Password": MASK, "region": "eu", "accessTOKEN": MASK,
                "nested": {"clientSecret": MASK, "url": "https://x"},
                "list": [{"privateKey": MASK}, MASK],
                "hook": MASK, "plain": "https://h.test/in?page=2",
                "unsetToken": null
            })
        );
        assert!(is_url_with_credentials("postgres://app:pw@db:5432/x"));
        assert!(is_url_with_credentials("https://TOKEN@github.test/a.git"));
        assert!(!is_url_with_credentials("mailto:a@b.test"));
        assert!(!is_url_with_credentials("not a url"));
    }

    #[test]
    fn create_checks_keys_types_and_required_options() {
        let webhooks = entry("webhooks");
        let mut errors = Vec::new();
        let given = json!({ "url": 5, "sharedSecret": MASK, "extra": true });
        for_create(webhooks, given.as_object().unwrap().clone(), &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            ["settings.extra", "settings.sharedSecret", "settings.url"]
        );

        let mut errors = Vec::new();
        for_create(webhooks, Map::new(), &mut errors);
        assert_eq!(errors[0].field.as_deref(), Some("settings.url"));
        assert!(errors[0].message.contains("required"));
    }

    #[test]
    fn merge_keeps_secrets_behind_echoed_masks() {
        let webhooks = entry("webhooks");
        let stored = json!({ "url": "https://u:p@hooks.test/in", "sharedSecret": "s" });
        let mut errors = Vec::new();
        let patch = masked(Some(webhooks), &stored).as_object().unwrap().clone();
        let merged = merge(webhooks, &stored, patch, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(merged, stored);

        // A mask where nothing secret is stored, a required setting
        // removed, a key the catalog does not know.
        let stored = json!({ "url": "https://hooks.test/in", "legacy": 1 });
        let patch = json!({ "sharedSecret": MASK, "legacy": null });
        let merged = merge(
            webhooks,
            &stored,
            patch.as_object().unwrap().clone(),
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field.as_deref(), Some("settings.sharedSecret"));
        assert!(merged.get("legacy").is_none());

        let mut errors = Vec::new();
        let patch = json!({ "url": null, "other": 1 });
        merge(
            webhooks,
            &stored,
            patch.as_object().unwrap().clone(),
            &mut errors,
        );
        let fields: Vec<_> = errors.iter().map(|e| e.field.clone().unwrap()).collect();
        assert_eq!(fields, ["settings.other", "settings.url"]);
    }

    #[test]
    fn stored_settings_are_capped() {
        let stored =
            json!({ "url": "https://hooks.test/in", "legacy": "x".repeat(MAX_SETTINGS_BYTES) });
        let mut errors = Vec::new();
        let patch = json!({ "sharedSecret": "s" });
        merge(
            entry("webhooks"),
            &stored,
            patch.as_object().unwrap().clone(),
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("bytes"), "{errors:?}");
    }

    /// Whatever the document allows for an entry fits under the caps, so
    /// a schema-valid request is never refused for its size.
    #[test]
    fn every_kind_fits_under_the_caps() {
        for entry in SOURCES
            .iter()
            .chain(DESTINATIONS.iter())
            .chain(WAREHOUSES.iter())
        {
            // Each character of a string may be escaped as \uXXXX.
            let worst: usize = entry
                .options
                .iter()
                .map(|o| {
                    let key = o.name.len() + 4;
                    key + match o.option_type {
                        OptionType::String => 2 + 6 * MAX_STRING,
                        OptionType::Password => 2 + 6 * MAX_PASSWORD,
                        OptionType::Number => 32,
                        OptionType::Boolean => 5,
                        OptionType::Array => 2 + MAX_ITEMS * (3 + 6 * MAX_ITEM),
                    }
                })
                .sum();
            assert!(worst <= MAX_SETTINGS_BYTES, "{}: {worst}", entry.slug);
            assert!(entry.options.len() <= MAX_SETTINGS_KEYS, "{}", entry.slug);
        }
    }

    #[test]
    fn changed_keys_name_no_values() {
        let before = json!({"a": 1, "b": 2, "c": 3});
        let after = json!({"a": 1, "b": 5, "d": 4});
        assert_eq!(changed_keys(&before, &after), vec!["b", "c", "d"]);
    }
}
