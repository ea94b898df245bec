//! Duration parsing (`spec.rotation.*`, `--expires-in`): parsed or refused, never a panic or an
//! overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyfront::api::parse_duration(text);
    }
});
