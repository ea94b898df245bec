//! The verifying edge's reading of a signed URL or signed cookies: any request line and Cookie
//! header gets a verdict, never a panic. Input: the path and query, a newline, the cookies.
#![no_main]

use keyfront::signer::verify::{Presented, verify_presented};
use libfuzzer_sys::fuzz_target;

const PUBLIC: &str = include_str!("../../fixtures/keys/rsa-1.pub.pem");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path_and_query, cookie) = text.split_once('\n').unwrap_or((&text, ""));
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(cookie) {
        headers.insert(http::header::COOKIE, value);
    }
    let presented = Presented::read(&headers, "https", "d111.cloudfront.net", path_and_query);
    let _ = verify_presented(
        &presented,
        |_| true,
        |_| Some(PUBLIC.to_owned()),
        1_800_000_000,
        Some([192, 0, 2, 1].into()),
    );
});
