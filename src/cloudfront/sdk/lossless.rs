//! Nothing of anyone's distribution lost on `UpdateDistribution`.
//!
//! The SDK reads a DistributionConfig into typed structs and writes those structs back. An
//! element CloudFront added after this SDK release has no field there, so it would be dropped
//! from the write, resetting that setting on a distribution another team owns. The guard: the
//! raw XML of `GetDistributionConfig` is captured as it arrives, and the serialized
//! `UpdateDistribution` body is compared with it before it leaves. If any element or value
//! outside `TrustedKeyGroups` would be missing, the request is never sent and the error names
//! the element (`UnknownDistributionField`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::emulator::xml::Element;

/// The element whose content keyfront changes; everything else must come back unchanged.
const CHANGED: &str = "TrustedKeyGroups";

/// Refusal to send an update that would drop `element` (a path such as
/// `DistributionConfig/FutureSetting/Enabled`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the AWS SDK in this keyfront build does not know {element} of the distribution's config and would drop it on update; nothing was written (upgrade keyfront)"
)]
pub struct FieldWouldBeLost {
    pub element: String,
}

/// Holds the raw body of the response it is attached to.
#[derive(Debug, Clone, Default)]
pub struct CaptureResponse(Arc<Mutex<Option<Vec<u8>>>>);

impl CaptureResponse {
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Intercept for CaptureResponse {
    fn name(&self) -> &'static str {
        "keyfront::CaptureResponse"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.response().body().bytes().map(<[u8]>::to_vec);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = body;
        Ok(())
    }
}

/// Stops a request whose body would lose anything of `original` outside `TrustedKeyGroups`.
#[derive(Debug)]
pub struct RefuseLoss {
    pub original: Vec<u8>,
}

impl Intercept for RefuseLoss {
    fn name(&self) -> &'static str {
        "keyfront::RefuseLoss"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        match first_lost(&self.original, body) {
            Some(element) => Err(Box::new(FieldWouldBeLost { element })),
            None => Ok(()),
        }
    }
}

/// What an XML document says, outside `TrustedKeyGroups`: how many times each element path
/// occurs with content, and each leaf's (path, text). Empty elements say nothing and are not
/// counted. Parsed with the emulator's depth-limited parser and walked without recursion.
fn content(xml: &[u8]) -> BTreeMap<(String, Option<String>), usize> {
    let mut counts = BTreeMap::new();
    let Ok(root) = Element::parse(xml) else {
        // Unreadable: one unknown element, so that a comparison cannot pass by accident.
        counts.insert(("<unreadable document>".to_owned(), None), 1);
        return counts;
    };
    let mut pending = vec![(root.name.clone(), &root)];
    while let Some((path, element)) = pending.pop() {
        if element.name == CHANGED {
            continue;
        }
        let text = element.text.trim();
        if !element.children.is_empty() {
            *counts.entry((path.clone(), None)).or_default() += 1;
        } else if !text.is_empty() {
            *counts
                .entry((path.clone(), Some(text.to_owned())))
                .or_default() += 1;
        }
        for child in &element.children {
            pending.push((format!("{path}/{}", child.name), child));
        }
    }
    counts
}

/// The [`FieldWouldBeLost`] refusal behind an SDK error, if that is what stopped the request.
pub fn lost_field(error: &(dyn std::error::Error + 'static)) -> Option<FieldWouldBeLost> {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(lost) = error.downcast_ref::<FieldWouldBeLost>() {
            return Some(lost.clone());
        }
        source = error.source();
    }
    None
}

/// The first element of `original` (outside `TrustedKeyGroups`) that `rewritten` lacks or
/// carries with another value.
pub fn first_lost(original: &[u8], rewritten: &[u8]) -> Option<String> {
    let kept = content(rewritten);
    content(original)
        .into_iter()
        .find(|(key, count)| kept.get(key).copied().unwrap_or(0) < *count)
        .map(|((path, _), _)| path)
}

#[cfg(test)]
mod tests {
    use super::first_lost;

    const ORIGINAL: &str = r#"<?xml version="1.0"?>
<DistributionConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
  <Comment>a &amp; b</Comment>
  <DefaultCacheBehavior>
    <TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>
    <Compress>true</Compress>
  </DefaultCacheBehavior>
  <FutureSetting><Mode>strict</Mode></FutureSetting>
  <Empty/>
</DistributionConfig>"#;

    #[test]
    fn trust_may_change_and_nothing_else() {
        let trusted = ORIGINAL.replace(
            "<TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>",
            "<TrustedKeyGroups><Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>kg</KeyGroup></Items></TrustedKeyGroups>",
        );
        assert_eq!(first_lost(ORIGINAL.as_bytes(), trusted.as_bytes()), None);
        // Extra elements the SDK writes (defaults) are not a loss; nor is an empty one gone.
        let extra = trusted.replace("<Empty/>", "").replace(
            "</DistributionConfig>",
            "<Staging>false</Staging></DistributionConfig>",
        );
        assert_eq!(first_lost(ORIGINAL.as_bytes(), extra.as_bytes()), None);
    }

    #[test]
    fn a_dropped_element_or_changed_value_is_named() {
        let dropped = ORIGINAL.replace("<FutureSetting><Mode>strict</Mode></FutureSetting>", "");
        assert_eq!(
            first_lost(ORIGINAL.as_bytes(), dropped.as_bytes()).as_deref(),
            Some("DistributionConfig/FutureSetting")
        );
        let changed = ORIGINAL.replace("<Compress>true</Compress>", "<Compress>false</Compress>");
        assert_eq!(
            first_lost(ORIGINAL.as_bytes(), changed.as_bytes()).as_deref(),
            Some("DistributionConfig/DefaultCacheBehavior/Compress")
        );
        let unescaped = ORIGINAL.replace("a &amp; b", "a and b");
        assert_eq!(
            first_lost(ORIGINAL.as_bytes(), unescaped.as_bytes()).as_deref(),
            Some("DistributionConfig/Comment")
        );
    }
}
