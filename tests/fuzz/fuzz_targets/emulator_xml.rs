//! The emulator's XML request parsing: any body is parsed or refused, never a panic, a stack
//! overflow or unbounded work; and a parsed tree written back parses to the same tree (what
//! the emulator stores is what it returns).
#![no_main]

use keyfront::emulator::xml::Element;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(element) = Element::parse(body) {
        let again = Element::parse(&element.to_document());
        assert_eq!(
            again.as_ref(),
            Ok(&element),
            "differs after a write and a parse"
        );
    }
});
