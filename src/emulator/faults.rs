//! Fault injection: throttling, server errors and latency, by rate or scripted per operation.

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
}

impl Faults {
    pub fn new(settings: FaultSettings) -> Self {
        let rng = match settings.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            settings,
            script: Vec::new(),
            rng,
            injected: BTreeMap::new(),
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
}
