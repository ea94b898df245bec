//! Kubernetes (Go `time.ParseDuration`) duration strings: `720h`, `1h30m`, `1.5s`, `0s`.
//!
//! The CRD schema already restricts these fields to non-negative durations; this parser is the
//! controller's own check, so a value that slipped past admission is reported, not trusted.
//! The schema's pattern and CEL rules for these fields are here too, beside the parser.

use std::time::Duration;

use kube::core::Rule;

/// A pattern for Kubernetes/Go duration strings such as `720h`, `1h30m`, `90s`, `0s`.
/// `[.]`, not `\.`: the same text goes into CEL rules ([`rotation_durations_valid`]), where a
/// backslash would need escaping again inside CEL's string literal.
pub const DURATION_PATTERN: &str = r"^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A duration field's rule for `30d`, set on the struct that holds the field: the API server
/// skips a field's own rules once its pattern fails, and the pattern alone answers with a regex.
/// Kubernetes durations have no day unit (CEL's `duration()` neither), so the message gives the
/// hours.
pub(super) fn no_days(field: &str) -> Rule {
    Rule::new(format!("!has(self.{field}) || !self.{field}.contains('d')"))
        .message(kube::core::cel::Message::Message(format!(
            "{field}: days are not supported: write the duration in hours, e.g. 720h for 30d"
        )))
        .field_path(format!(".{field}"))
}

/// A duration field's rule for `-5m`, set on the struct that holds it (see [`no_days`]).
pub(super) fn not_negative(field: &str) -> Rule {
    Rule::new(format!(
        "!has(self.{field}) || !self.{field}.startsWith('-')"
    ))
    .message(kube::core::cel::Message::Message(format!(
        "{field} must not be negative"
    )))
    .field_path(format!(".{field}"))
}

/// CEL: every rotation duration is well formed, so `duration()` may be called on it (a
/// malformed one is named by its pattern and the rules above, not by a conversion error).
pub(super) fn rotation_durations_valid() -> String {
    format!(
        "[self.interval, self.maxSignedUrlLifetime, self.minPropagationWait, self.secretRefreshAllowance].all(d, d.matches('{DURATION_PATTERN}'))"
    )
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error(
        "invalid duration {value:?}: expected numbers with units ns, us, ms, s, m or h (for example 720h or 1h30m)"
    )]
    Malformed { value: String },
    #[error("duration {value:?} is too large")]
    Overflow { value: String },
    #[error(
        "invalid duration {value:?}: days are not supported in a Kubernetes duration, use hours ({hours}h)"
    )]
    Days { value: String, hours: String },
    #[error("invalid duration {value:?}: a duration cannot be negative")]
    Negative { value: String },
}

/// `N` days (`30d`, `1.5d`) as hours, if `value` is exactly that.
fn days_as_hours(value: &str) -> Option<String> {
    let days = value.strip_suffix('d')?;
    let days: f64 = days
        .parse()
        .ok()
        .filter(|d: &f64| d.is_finite() && *d >= 0.0)?;
    let hours = days * 24.0;
    Some(if hours.fract() == 0.0 {
        format!("{hours:.0}")
    } else {
        format!("{hours}")
    })
}

/// A duration as the command line and the chart take it: a Kubernetes duration, or whole or
/// fractional days (`30d`), which Kubernetes durations lack.
pub fn parse_cli_duration(value: &str) -> Result<Duration, DurationError> {
    match days_as_hours(value) {
        Some(hours) => parse_duration(&format!("{hours}h")),
        None => parse_duration(value),
    }
}

/// Parses a non-negative Go duration string.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    if value.is_empty() {
        return Err(DurationError::Empty);
    }
    if value.starts_with('-') {
        return Err(DurationError::Negative {
            value: value.to_owned(),
        });
    }
    if let Some(hours) = days_as_hours(value) {
        return Err(DurationError::Days {
            value: value.to_owned(),
            hours,
        });
    }
    let malformed = || DurationError::Malformed {
        value: value.to_owned(),
    };
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(malformed)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(malformed()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(malformed());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| malformed())?
        };
        let mut part = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| DurationError::Overflow {
                value: value.to_owned(),
            })?;
        let mut scale = unit_nanos;
        for digit in fraction.chars() {
            let digit = digit.to_digit(10).ok_or_else(malformed)? as u128;
            scale /= 10;
            part = part
                .checked_add(digit * scale)
                .ok_or_else(|| DurationError::Overflow {
                    value: value.to_owned(),
                })?;
        }
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow {
                value: value.to_owned(),
            })?;
        rest = tail;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| DurationError::Overflow {
        value: value.to_owned(),
    })?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_duration_strings() {
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn days_and_negative_values_are_named_in_the_users_words() {
        assert_eq!(
            parse_duration("30d").unwrap_err().to_string(),
            "invalid duration \"30d\": days are not supported in a Kubernetes duration, use hours (720h)"
        );
        assert_eq!(
            parse_duration("-5m").unwrap_err().to_string(),
            "invalid duration \"-5m\": a duration cannot be negative"
        );
        assert_eq!(
            parse_cli_duration("30d"),
            Ok(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            parse_cli_duration("1.5d"),
            Ok(Duration::from_secs(36 * 3600))
        );
        assert_eq!(parse_cli_duration("90m"), Ok(Duration::from_secs(5400)));
        assert!(matches!(
            parse_cli_duration("-1d"),
            Err(DurationError::Negative { .. })
        ));
    }

    #[test]
    fn rejects_malformed_durations_naming_the_value() {
        for bad in ["", "h", "10", "10d", "-1s", "1.2.3s", "s10"] {
            let err = parse_duration(bad).expect_err(bad);
            if !bad.is_empty() {
                assert!(err.to_string().contains(bad), "{err}");
            }
        }
    }
}
