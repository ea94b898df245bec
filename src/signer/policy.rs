//! CloudFront policies and CloudFront's own base64.

/// Standard base64, then `+`→`-`, `=`→`_`, `/`→`~` (CloudFront's alphabet, not RFC 4648
/// base64url).
pub fn cloudfront_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            other => other,
        })
        .collect()
}

/// Reverses [`cloudfront_base64`]; `None` when the text is not in that alphabet.
pub fn decode_cloudfront_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            other => other,
        })
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(standard)
        .ok()
}

/// Who may fetch what, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The URL or wildcard pattern the policy covers.
    pub resource: String,
    /// Epoch seconds after which the signature is refused (`DateLessThan`).
    pub expires: i64,
    /// Epoch seconds before which the signature is refused (`DateGreaterThan`).
    pub not_before: Option<i64>,
    /// Source address range (`IpAddress`), e.g. `192.0.2.0/24`.
    pub ip_range: Option<String>,
}

impl Policy {
    /// A canned policy: this resource, valid until `expires`.
    pub fn canned(resource: impl Into<String>, expires: i64) -> Self {
        Self {
            resource: resource.into(),
            expires,
            not_before: None,
            ip_range: None,
        }
    }

    /// Whether it has only an expiry (the canned form also needs the resource to be the exact
    /// URL requested; see `Signer::sign_url`).
    pub fn is_canned(&self) -> bool {
        self.not_before.is_none() && self.ip_range.is_none()
    }

    /// The policy JSON, byte-for-byte as botocore's `CloudFrontSigner.build_policy` writes it:
    /// compact, conditions in the order `DateLessThan`, `IpAddress`, `DateGreaterThan`, and an
    /// address without a prefix length taken as `/32`.
    pub fn to_json(&self) -> String {
        let mut condition = format!("\"DateLessThan\":{{\"AWS:EpochTime\":{}}}", self.expires);
        if let Some(ip) = &self.ip_range {
            let cidr = if ip.contains('/') {
                ip.clone()
            } else {
                format!("{ip}/32")
            };
            condition.push_str(&format!(
                ",\"IpAddress\":{{\"AWS:SourceIp\":{}}}",
                json_string(&cidr)
            ));
        }
        if let Some(start) = self.not_before {
            condition.push_str(&format!(
                ",\"DateGreaterThan\":{{\"AWS:EpochTime\":{start}}}"
            ));
        }
        format!(
            "{{\"Statement\":[{{\"Resource\":{},\"Condition\":{{{condition}}}}}]}}",
            json_string(&self.resource)
        )
    }
}

/// A JSON string literal escaped as Python's `json.dumps` does (ASCII output).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_policy_is_byte_exact() {
        let policy = Policy::canned(
            "https://d111111abcdef8.cloudfront.net/image.jpg?size=large",
            1_357_034_400,
        );
        assert_eq!(
            policy.to_json(),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/image.jpg?size=large","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
    }

    #[test]
    fn custom_policy_orders_conditions_like_botocore() {
        let policy = Policy {
            resource: "https://d.example/*".into(),
            expires: 20,
            not_before: Some(10),
            ip_range: Some("192.0.2.1".into()),
        };
        assert_eq!(
            policy.to_json(),
            r#"{"Statement":[{"Resource":"https://d.example/*","Condition":{"DateLessThan":{"AWS:EpochTime":20},"IpAddress":{"AWS:SourceIp":"192.0.2.1/32"},"DateGreaterThan":{"AWS:EpochTime":10}}}]}"#
        );
        assert!(!policy.is_canned());
    }

    #[test]
    fn json_escapes_like_python() {
        assert_eq!(
            json_string("a\"b\\c/é\u{1F600}"),
            r#""a\"b\\c/\u00e9\ud83d\ude00""#
        );
    }

    #[test]
    fn base64_uses_cloudfront_alphabet() {
        assert_eq!(cloudfront_base64(&[0xfb, 0xff, 0xfe]), "-~~-");
        assert_eq!(cloudfront_base64(b"a"), "YQ__");
        assert_eq!(
            decode_cloudfront_base64("-~~-"),
            Some(vec![0xfb, 0xff, 0xfe])
        );
        assert_eq!(decode_cloudfront_base64("not base64!"), None);
    }
}
