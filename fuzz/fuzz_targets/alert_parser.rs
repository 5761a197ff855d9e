//! The alert parser gets the verified body of `POST /secret-scanning/github`:
//! any bytes must give a list or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reported) = leakguard::scanning::alert::parse(data) {
        // Whatever parsed was a JSON array with one object per entry.
        let value: serde_json::Value = serde_json::from_slice(data).expect("parse accepted it");
        assert_eq!(value.as_array().map(Vec::len), Some(reported.len()));
    }
});
