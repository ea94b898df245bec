//! The emulator's XML request parsing: any body is parsed or refused, and what parses writes
//! back to a document that parses to the same tree.
#![no_main]

use keyfront::emulator::xml::Element;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(element) = Element::parse(body) {
        let again = Element::parse(&element.to_document()).expect("a written document parses");
        assert_eq!(again, element, "the tree changed through a round trip");
    }
});
