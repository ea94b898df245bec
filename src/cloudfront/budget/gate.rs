//! The write gate: asked after a write's token wait, before each attempt, whether a write may
//! leave this replica now. With leader election it is
//! [`crate::leader::Leadership::may_write`]: a write that waited for its token past
//! the replica's renew deadline is not sent.

use std::sync::Arc;

/// Whether a write may leave this replica now.
#[derive(Clone)]
pub struct WriteGate(Arc<dyn Fn() -> bool + Send + Sync>);

impl WriteGate {
    pub fn new(open: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(open))
    }

    pub(super) fn open(&self) -> bool {
        (self.0)()
    }
}

impl Default for WriteGate {
    fn default() -> Self {
        Self::new(|| true)
    }
}

impl std::fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteGate")
    }
}
