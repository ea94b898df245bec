//! Decorating a CloudFront client: [`Hooked`] passes every call of the port through a
//! [`CallHook`], which is told the call's operation and class and runs it, to count it, time
//! it or refuse it. Metrics ([`crate::runtime::metrics::Metered`]) and the tests' counting
//! and crashing clients are hooks. The call budget ([`super::budget`]) is not: besides pacing
//! each attempt it shares reads, remembers distributions and coalesces writes.
//!
//! Must not: change a call's arguments or result; a hook only decides whether, when and how
//! often the call it is handed runs.

use super::{
    BehaviorTrust, CloudFront, Distribution, Etag, KeyGroup, KeyGroupConfig, NewPublicKey,
    PublicKey, Result, Tagged,
};

/// Reads or writes: budgets, metrics and tests count them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// One call of the port: the CloudFront operation it makes, and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub operation: &'static str,
    pub class: Class,
}

impl Call {
    const fn read(operation: &'static str) -> Self {
        Self {
            operation,
            class: Class::Read,
        }
    }

    const fn write(operation: &'static str) -> Self {
        Self {
            operation,
            class: Class::Write,
        }
    }
}

/// Sees every call of a [`Hooked`] client and runs it (or answers in its place).
pub trait CallHook: Send + Sync {
    fn around<T: Send>(
        &self,
        call: Call,
        run: impl Future<Output = Result<T>> + Send,
    ) -> impl Future<Output = Result<T>> + Send;
}

/// A client whose every call goes through `hook`.
#[derive(Debug, Clone)]
pub struct Hooked<C, H> {
    pub inner: C,
    pub hook: H,
}

impl<C: CloudFront, H: CallHook> CloudFront for Hooked<C, H> {
    async fn create_public_key(&self, key: &NewPublicKey) -> Result<Tagged<PublicKey>> {
        let call = Call::write("CreatePublicKey");
        self.hook
            .around(call, self.inner.create_public_key(key))
            .await
    }
    async fn get_public_key(&self, id: &str) -> Result<Tagged<PublicKey>> {
        let call = Call::read("GetPublicKey");
        self.hook.around(call, self.inner.get_public_key(id)).await
    }
    async fn list_public_keys(&self) -> Result<Vec<PublicKey>> {
        let call = Call::read("ListPublicKeys");
        self.hook.around(call, self.inner.list_public_keys()).await
    }
    async fn delete_public_key(&self, id: &str, etag: &Etag) -> Result<()> {
        let call = Call::write("DeletePublicKey");
        self.hook
            .around(call, self.inner.delete_public_key(id, etag))
            .await
    }
    async fn create_key_group(&self, config: &KeyGroupConfig) -> Result<Tagged<KeyGroup>> {
        let call = Call::write("CreateKeyGroup");
        self.hook
            .around(call, self.inner.create_key_group(config))
            .await
    }
    async fn get_key_group(&self, id: &str) -> Result<Tagged<KeyGroup>> {
        let call = Call::read("GetKeyGroup");
        self.hook.around(call, self.inner.get_key_group(id)).await
    }
    async fn list_key_groups(&self) -> Result<Vec<KeyGroup>> {
        let call = Call::read("ListKeyGroups");
        self.hook.around(call, self.inner.list_key_groups()).await
    }
    async fn update_key_group(
        &self,
        id: &str,
        config: &KeyGroupConfig,
        etag: &Etag,
    ) -> Result<Tagged<KeyGroup>> {
        let call = Call::write("UpdateKeyGroup");
        self.hook
            .around(call, self.inner.update_key_group(id, config, etag))
            .await
    }
    async fn delete_key_group(&self, id: &str, etag: &Etag) -> Result<()> {
        let call = Call::write("DeleteKeyGroup");
        self.hook
            .around(call, self.inner.delete_key_group(id, etag))
            .await
    }
    async fn get_distribution(&self, id: &str) -> Result<Tagged<Distribution>> {
        let call = Call::read("GetDistribution");
        self.hook
            .around(call, self.inner.get_distribution(id))
            .await
    }
    async fn list_distributions_by_key_group(&self, key_group_id: &str) -> Result<Vec<String>> {
        let call = Call::read("ListDistributionsByKeyGroup");
        self.hook
            .around(
                call,
                self.inner.list_distributions_by_key_group(key_group_id),
            )
            .await
    }
    async fn set_trusted_key_groups(
        &self,
        id: &str,
        behaviors: &[BehaviorTrust],
        etag: &Etag,
    ) -> Result<Tagged<Distribution>> {
        let call = Call::write("UpdateDistribution");
        self.hook
            .around(call, self.inner.set_trusted_key_groups(id, behaviors, etag))
            .await
    }
}
