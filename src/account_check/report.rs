//! What `keyfront check-account` found, printed line by line as it goes (a live test takes
//! minutes), and a closing count.

use std::io::Write as _;

use crate::cloudfront::{CloudFrontError, ErrorKind};

/// One finding's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A permission keyfront needs is there.
    Allowed,
    /// AWS refused a call keyfront makes.
    Denied,
    /// CloudFront behaved as keyfront assumes.
    Confirmed,
    /// CloudFront did not behave as keyfront assumes.
    Contradicted,
    NotChecked,
    /// Something else went wrong (the detail says what).
    Failed,
    /// A measurement or an action taken, for the record.
    Info,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Allowed => "ok",
            Self::Denied => "DENIED",
            Self::Confirmed => "confirmed",
            Self::Contradicted => "CONTRADICTED",
            Self::NotChecked => "not checked",
            Self::Failed => "FAILED",
            Self::Info => "-",
        }
    }

    fn is_bad(self) -> bool {
        matches!(self, Self::Denied | Self::Contradicted | Self::Failed)
    }
}

/// Findings so far.
pub struct Report {
    verdicts: Vec<Verdict>,
    allowed: std::collections::BTreeSet<String>,
}

impl Report {
    pub fn stdout() -> Self {
        Self {
            verdicts: Vec::new(),
            allowed: std::collections::BTreeSet::new(),
        }
    }

    /// An action that succeeded, reported the first time only (a deployment is polled).
    pub fn allowed(&mut self, action: &str, detail: &str) {
        if self.allowed.insert(action.to_owned()) {
            self.add(Verdict::Allowed, action, detail);
        }
    }

    pub fn section(&self, title: &str) {
        println!("\n{title}");
    }

    pub fn add(&mut self, verdict: Verdict, what: &str, detail: &str) {
        self.verdicts.push(verdict);
        println!("  {:<13} {what}: {detail}", verdict.label());
        // Lines appear as they are found, also when stdout is a pipe.
        let _ = std::io::stdout().flush();
    }

    /// A failed call: denied (naming what AWS says was denied, and the way out), or failed.
    pub fn error(&mut self, action: &str, error: &CloudFrontError) {
        if error.kind == ErrorKind::AccessDenied {
            let detail = match error.denied() {
                Some((denied, resource)) => format!(
                    "AWS refused {denied} on {resource}; allow it in the role's policy (`keyfront iam-policy` prints it)"
                ),
                None => format!(
                    "{}; allow it in the role's policy (`keyfront iam-policy` prints it)",
                    error.message
                ),
            };
            self.add(Verdict::Denied, action, &detail);
        } else {
            self.add(Verdict::Failed, action, &error.to_string());
        }
    }

    /// Prints the counts; whether nothing was denied, contradicted or failed.
    pub fn summary(&self) -> bool {
        let count = |v: Verdict| self.verdicts.iter().filter(|x| **x == v).count();
        println!(
            "\n{} allowed, {} confirmed, {} denied, {} contradicted, {} failed, {} not checked",
            count(Verdict::Allowed),
            count(Verdict::Confirmed),
            count(Verdict::Denied),
            count(Verdict::Contradicted),
            count(Verdict::Failed),
            count(Verdict::NotChecked),
        );
        !self.verdicts.iter().any(|v| v.is_bad())
    }
}
