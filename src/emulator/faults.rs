//! Fault injection: throttling, server errors and latency, by rate or scripted per operation;
//! and CloudFront's pace: an operation called faster than its [`Pace`] is throttled, as
//! CloudFront's control plane throttles `UpdateDistribution` at a few calls a minute.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::model::ApiError;

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `400 Throttling`.
    Throttle,
    /// `503 ServiceUnavailable`.
    ServerError,
    /// `403 AccessDenied`, as for credentials lacking a permission.
    AccessDenied,
    /// A delay before the operation runs (it then succeeds or fails on its own merits).
    Latency,
    /// `412 PreconditionFailed`, as when someone else wrote the object since it was read.
    PreconditionFailed,
}

/// A scripted fault: the next `count` calls of `operation` (any operation when absent) fail
/// or slow down.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptedFault {
    #[serde(default)]
    pub operation: Option<String>,
    pub fault: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub latency_ms: u64,
}

fn one() -> u32 {
    1
}

/// Rates apply to every call; scripted faults are consumed first.
#[derive(Debug, Clone, Default)]
pub struct FaultSettings {
    /// Probability in [0, 1] that a call is throttled.
    pub throttle_rate: f64,
    /// Probability in [0, 1] that a call fails with a 5xx.
    pub server_error_rate: f64,
    /// Added to every call.
    pub latency: Duration,
    /// Seed for the rate draws, for reproducible runs.
    pub seed: Option<u64>,
    /// Operations throttled past a pace (`--pace UpdateDistribution=3`).
    pub paces: Vec<Pace>,
}

/// At most `per_minute` calls of `operation` a minute, `burst` at once; faster calls are
/// answered `Throttling`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    pub operation: String,
    pub per_minute: f64,
    pub burst: u32,
}

impl std::str::FromStr for Pace {
    type Err = String;

    /// `OPERATION=PER_MINUTE` or `OPERATION=PER_MINUTE/BURST` (burst 1 when absent).
    fn from_str(value: &str) -> Result<Self, String> {
        let wrong = || {
            format!("{value:?}: expected OPERATION=PER_MINUTE[/BURST], e.g. UpdateDistribution=3")
        };
        let (operation, rate) = value.split_once('=').ok_or_else(wrong)?;
        let (per_minute, burst) = rate.split_once('/').unwrap_or((rate, "1"));
        let per_minute: f64 = per_minute.parse().map_err(|_| wrong())?;
        let burst: u32 = burst.parse().map_err(|_| wrong())?;
        if operation.is_empty() || !(per_minute > 0.0 && per_minute.is_finite()) || burst == 0 {
            return Err(wrong());
        }
        Ok(Self {
            operation: operation.to_owned(),
            per_minute,
            burst,
        })
    }
}

/// One paced operation's tokens.
#[derive(Debug)]
struct Paced {
    pace: Pace,
    tokens: f64,
    at: std::time::Instant,
}

impl Paced {
    /// Takes a token if the pace allows the call now.
    fn allows(&mut self, now: std::time::Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.pace.per_minute / 60.0).min(f64::from(self.pace.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do to one call.
#[derive(Debug, Default)]
pub struct Injection {
    pub delay: Duration,
    pub error: Option<ApiError>,
}

#[derive(Debug)]
pub struct Faults {
    settings: FaultSettings,
    script: Vec<ScriptedFault>,
    rng: StdRng,
    injected: BTreeMap<String, u64>,
    paced: Vec<Paced>,
}

impl Faults {
    pub fn new(settings: FaultSettings) -> Self {
        let rng = match settings.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let now = std::time::Instant::now();
        let paced = settings
            .paces
            .iter()
            .map(|pace| Paced {
                pace: pace.clone(),
                tokens: f64::from(pace.burst),
                at: now,
            })
            .collect();
        Self {
            settings,
            script: Vec::new(),
            rng,
            injected: BTreeMap::new(),
            paced,
        }
    }

    pub fn script(&mut self, fault: ScriptedFault) {
        self.script.push(fault);
    }

    pub fn clear(&mut self) {
        self.script.clear();
        self.settings.throttle_rate = 0.0;
        self.settings.server_error_rate = 0.0;
        self.settings.latency = Duration::ZERO;
    }

    /// How many calls each kind of fault hit so far, by error code (`Throttling`,
    /// `ServiceUnavailable`, …) and `Latency` for delayed calls.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.injected.clone()
    }

    /// Decides the fate of one call of `operation`, counting what it injects.
    pub fn next(&mut self, operation: &str) -> Injection {
        let injection = self.draw(operation);
        if let Some(error) = &injection.error {
            *self.injected.entry(error.code.clone()).or_default() += 1;
        }
        if !injection.delay.is_zero() {
            *self.injected.entry("Latency".to_owned()).or_default() += 1;
        }
        injection
    }

    fn draw(&mut self, operation: &str) -> Injection {
        let mut injection = Injection {
            delay: self.settings.latency,
            error: None,
        };
        if let Some(index) = self
            .script
            .iter()
            .position(|f| f.count > 0 && f.operation.as_deref().is_none_or(|o| o == operation))
        {
            let fault = &mut self.script[index];
            fault.count -= 1;
            let kind = fault.fault;
            let latency = Duration::from_millis(fault.latency_ms);
            if fault.count == 0 {
                self.script.remove(index);
            }
            apply(kind, latency, operation, &mut injection);
            return injection;
        }
        let now = std::time::Instant::now();
        if let Some(paced) = self
            .paced
            .iter_mut()
            .find(|p| p.pace.operation == operation)
            && !paced.allows(now)
        {
            injection.error = Some(ApiError::new(
                400,
                "Throttling",
                format!(
                    "Rate exceeded: {operation} is paced at {} a minute",
                    paced.pace.per_minute
                ),
            ));
            return injection;
        }
        if self.settings.throttle_rate > 0.0
            && self.rng.random_bool(self.settings.throttle_rate.min(1.0))
        {
            apply(
                FaultKind::Throttle,
                Duration::ZERO,
                operation,
                &mut injection,
            );
        } else if self.settings.server_error_rate > 0.0
            && self
                .rng
                .random_bool(self.settings.server_error_rate.min(1.0))
        {
            apply(
                FaultKind::ServerError,
                Duration::ZERO,
                operation,
                &mut injection,
            );
        }
        injection
    }
}

fn apply(kind: FaultKind, latency: Duration, operation: &str, injection: &mut Injection) {
    match kind {
        FaultKind::Throttle => {
            injection.error = Some(ApiError::new(
                400,
                "Throttling",
                format!("Rate exceeded (injected into {operation})"),
            ))
        }
        FaultKind::ServerError => {
            injection.error = Some(ApiError::new(
                503,
                "ServiceUnavailable",
                format!("Service unavailable (injected into {operation})"),
            ))
        }
        FaultKind::AccessDenied => {
            injection.error = Some(ApiError::new(
                403,
                "AccessDenied",
                format!("Access denied (injected into {operation})"),
            ))
        }
        FaultKind::Latency => injection.delay = injection.delay.saturating_add(latency),
        FaultKind::PreconditionFailed => {
            injection.error = Some(ApiError::new(
                412,
                "PreconditionFailed",
                format!("The If-Match version is missing or not valid (injected into {operation})"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_hit_only_their_operation_and_run_out() {
        let mut faults = Faults::new(FaultSettings::default());
        faults.script(ScriptedFault {
            operation: Some("UpdateKeyGroup".into()),
            fault: FaultKind::Throttle,
            count: 2,
            latency_ms: 0,
        });
        assert!(faults.next("GetKeyGroup").error.is_none());
        assert_eq!(
            faults.next("UpdateKeyGroup").error.map(|e| e.code),
            Some("Throttling".into())
        );
        assert_eq!(
            faults.next("UpdateKeyGroup").error.map(|e| e.status),
            Some(400)
        );
        assert!(faults.next("UpdateKeyGroup").error.is_none());
        assert_eq!(
            faults.injected(),
            BTreeMap::from([("Throttling".to_owned(), 2)])
        );
    }

    #[test]
    fn rates_are_reproducible_with_a_seed() {
        let settings = FaultSettings {
            server_error_rate: 0.5,
            seed: Some(7),
            ..FaultSettings::default()
        };
        let draw = |settings: &FaultSettings| {
            let mut faults = Faults::new(settings.clone());
            (0..64)
                .map(|_| faults.next("Op").error.is_some())
                .collect::<Vec<_>>()
        };
        let first = draw(&settings);
        assert_eq!(first, draw(&settings));
        assert!(first.iter().any(|e| *e) && first.iter().any(|e| !*e));
    }

    #[test]
    fn a_paced_operation_is_throttled_past_its_pace_and_others_are_not() {
        let pace: Pace = "UpdateDistribution=3/2".parse().unwrap();
        assert_eq!((pace.per_minute, pace.burst), (3.0, 2));
        assert!("UpdateDistribution".parse::<Pace>().is_err());
        assert!("UpdateDistribution=0".parse::<Pace>().is_err());
        let mut faults = Faults::new(FaultSettings {
            paces: vec![pace],
            ..FaultSettings::default()
        });
        let codes: Vec<Option<String>> = (0..3)
            .map(|_| faults.next("UpdateDistribution").error.map(|e| e.code))
            .collect();
        assert_eq!(codes, [None, None, Some("Throttling".into())]);
        assert!(faults.next("GetDistribution").error.is_none());
        assert_eq!(faults.injected().get("Throttling"), Some(&1));
    }
}
