//! `UpdateDistribution` that changes `TrustedKeyGroups` and nothing else, byte for byte.
//!
//! The SDK reads a DistributionConfig into typed structs and writes those structs back. An
//! element CloudFront added after this SDK release has no field there, so a typed rewrite
//! would drop it, resetting a setting on a distribution another team owns. So keyfront never
//! sends the SDK's rewrite: it takes the raw XML `GetDistributionConfig` returned, replaces the
//! `TrustedKeyGroups` element of each behavior being changed, and sends that body. Every other
//! byte, elements no SDK knows included, goes back as CloudFront sent it.
//!
//! The SDK still does the transport, retries and SigV4 signing: [`ReplaceBody`] is an
//! interceptor that swaps the serialized body before the request is signed. No library splices
//! XML by byte offsets (DOM libraries re-serialize, which changes quoting, namespaces and
//! layout), so the splice is written here on top of quick-xml's reader positions.

use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use quick_xml::Reader;
use quick_xml::events::Event;

use crate::cloudfront::{BehaviorSelector, BehaviorTrust};

/// The element keyfront changes; everything else is sent back unchanged.
const TRUSTED_KEY_GROUPS: &str = "TrustedKeyGroups";
/// The deepest nesting accepted (CloudFront's configs nest about ten deep).
const MAX_DEPTH: usize = 64;

/// Why the raw config could not be patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the distribution's config is not readable XML: {0}")]
    Unreadable(String),
    #[error("the distribution has no {0}")]
    NoSuchBehavior(BehaviorSelector),
    #[error("the {0} has neither TrustedKeyGroups nor TargetOriginId to place it after")]
    NoTrustElement(BehaviorSelector),
}

/// Where one cache behavior's `TrustedKeyGroups` element sits in the document.
#[derive(Debug)]
struct BehaviorSpan {
    behavior: BehaviorSelector,
    /// Byte range of `<TrustedKeyGroups>…</TrustedKeyGroups>` (or its empty form).
    trust: Option<(usize, usize)>,
    /// Where a missing `TrustedKeyGroups` goes, in the schema's order: after `TrustedSigners`,
    /// else after `TargetOriginId`.
    insert_at: Option<usize>,
}

/// `raw` with the `TrustedKeyGroups` of each behavior in `changes` replaced, and every other
/// byte as it was.
pub fn patch(raw: &[u8], changes: &[BehaviorTrust]) -> Result<Vec<u8>, PatchError> {
    let spans = behavior_spans(raw)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for change in changes {
        let span = spans
            .iter()
            .find(|s| s.behavior == change.behavior)
            .ok_or_else(|| PatchError::NoSuchBehavior(change.behavior.clone()))?;
        let (start, end) = match (span.trust, span.insert_at) {
            (Some(range), _) => range,
            (None, Some(at)) => (at, at),
            (None, None) => return Err(PatchError::NoTrustElement(change.behavior.clone())),
        };
        edits.retain(|(s, _, _)| *s != start);
        edits.push((start, end, trusted_key_groups(&change.trusted_key_groups)));
    }
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut body = raw.to_vec();
    for (start, end, replacement) in edits {
        body.splice(start..end, replacement);
    }
    Ok(body)
}

/// The `TrustedKeyGroups` element trusting `groups` (none: not enabled).
fn trusted_key_groups(groups: &[String]) -> Vec<u8> {
    let mut xml = format!(
        "<TrustedKeyGroups><Enabled>{}</Enabled><Quantity>{}</Quantity>",
        !groups.is_empty(),
        groups.len()
    );
    if !groups.is_empty() {
        xml.push_str("<Items>");
        for group in groups {
            xml.push_str("<KeyGroup>");
            xml.push_str(&quick_xml::escape::escape(group.as_str()));
            xml.push_str("</KeyGroup>");
        }
        xml.push_str("</Items>");
    }
    xml.push_str("</TrustedKeyGroups>");
    xml.into_bytes()
}

/// Every cache behavior of the config (the default one and each `CacheBehavior` by its path
/// pattern) with the span of its `TrustedKeyGroups`.
fn behavior_spans(raw: &[u8]) -> Result<Vec<BehaviorSpan>, PatchError> {
    let unreadable = |e: &dyn std::fmt::Display| PatchError::Unreadable(e.to_string());
    // quick-xml skips a leading byte-order mark without counting it in its positions; parse
    // after it and count it back in (found by fuzzing: splices landed three bytes early).
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let skipped = if raw.starts_with(BOM) { BOM.len() } else { 0 };
    let mut reader = Reader::from_reader(&raw[skipped..]);
    let mut path: Vec<String> = Vec::new();
    let mut spans = Vec::new();
    // The behavior being read: its path pattern so far, and its trust span.
    let mut pattern = String::new();
    let mut trust = None;
    let mut trust_start = 0;
    let (mut after_signers, mut after_origin) = (None, None);
    loop {
        let position = |reader: &Reader<&[u8]>| {
            usize::try_from(reader.buffer_position())
                .map(|p| p + skipped)
                .map_err(|e| unreadable(&e))
        };
        let before = position(&reader)?;
        let event = reader.read_event().map_err(|e| unreadable(&e))?;
        let after = position(&reader)?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if path.len() >= MAX_DEPTH {
                    return Err(PatchError::Unreadable(format!(
                        "elements nested deeper than {MAX_DEPTH}"
                    )));
                }
                if name == TRUSTED_KEY_GROUPS && in_behavior(&path) {
                    trust_start = before;
                }
                if is_behavior(&path, &name) {
                    pattern.clear();
                    trust = None;
                    (after_signers, after_origin) = (None, None);
                }
                path.push(name);
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if name == TRUSTED_KEY_GROUPS && in_behavior(&path) {
                    trust = Some((before, after));
                }
            }
            Event::Text(text) if path.last().is_some_and(|n| n == "PathPattern") => {
                let decoded = text.decode().map_err(|e| unreadable(&e))?;
                let unescaped =
                    quick_xml::escape::unescape(&decoded).map_err(|e| unreadable(&e))?;
                pattern.push_str(&unescaped);
            }
            Event::GeneralRef(reference) if path.last().is_some_and(|n| n == "PathPattern") => {
                let name = reference.decode().map_err(|e| unreadable(&e))?;
                let entity = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&entity).map_err(|e| unreadable(&e))?;
                pattern.push_str(&resolved);
            }
            Event::CData(data) if path.last().is_some_and(|n| n == "PathPattern") => {
                pattern.push_str(&String::from_utf8_lossy(&data));
            }
            Event::End(_) => {
                let name = path
                    .pop()
                    .ok_or_else(|| PatchError::Unreadable("unbalanced end tag".into()))?;
                if in_behavior(&path) {
                    match name.as_str() {
                        TRUSTED_KEY_GROUPS => trust = Some((trust_start, after)),
                        "TrustedSigners" => after_signers = Some(after),
                        "TargetOriginId" => after_origin = Some(after),
                        _ => {}
                    }
                }
                if is_behavior(&path, &name) {
                    let behavior = if name == "DefaultCacheBehavior" {
                        BehaviorSelector::Default
                    } else {
                        BehaviorSelector::PathPattern(std::mem::take(&mut pattern))
                    };
                    spans.push(BehaviorSpan {
                        behavior,
                        trust: trust.take(),
                        insert_at: after_signers.take().or(after_origin.take()),
                    });
                }
            }
            Event::Eof => {
                if !path.is_empty() {
                    return Err(PatchError::Unreadable("unexpected end of document".into()));
                }
                return Ok(spans);
            }
            _ => {}
        }
    }
}

/// Whether an element named `name` under `path` is a cache behavior.
fn is_behavior(path: &[String], name: &str) -> bool {
    match name {
        "DefaultCacheBehavior" => path == ["DistributionConfig"],
        "CacheBehavior" => path == ["DistributionConfig", "CacheBehaviors", "Items"],
        _ => false,
    }
}

/// Whether `path` is a cache behavior (so a child `TrustedKeyGroups` is its trust).
fn in_behavior(path: &[String]) -> bool {
    path.split_last()
        .is_some_and(|(last, parents)| is_behavior(parents, last))
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

/// Sends `body` in place of the SDK's serialization (before signing, so the signature covers
/// it; on every attempt, so a retry sends it too).
#[derive(Debug)]
pub struct ReplaceBody {
    pub body: Vec<u8>,
}

impl Intercept for ReplaceBody {
    fn name(&self) -> &'static str {
        "keyfront::ReplaceBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        *request.body_mut() = SdkBody::from(self.body.clone());
        request
            .headers_mut()
            .insert("Content-Length", self.body.len().to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DistributionConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
  <Comment>a &amp; b</Comment>
  <DefaultCacheBehavior>
    <TargetOriginId>o</TargetOriginId>
    <TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>
    <Compress>true</Compress>
  </DefaultCacheBehavior>
  <CacheBehaviors><Quantity>2</Quantity><Items>
    <CacheBehavior><PathPattern>/a&amp;b/*</PathPattern>
      <TrustedKeyGroups>
        <Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>OLD</KeyGroup></Items>
      </TrustedKeyGroups>
      <FutureBehaviorSetting attr='single quoted'>x</FutureBehaviorSetting>
    </CacheBehavior>
    <CacheBehavior><PathPattern>/c/*</PathPattern><TrustedKeyGroups/></CacheBehavior>
  </Items></CacheBehaviors>
  <FutureSetting><Mode>strict</Mode><TrustedKeyGroups>not a behavior's</TrustedKeyGroups></FutureSetting>
  <Empty/>
</DistributionConfig>"#;

    fn trust(behavior: BehaviorSelector, groups: &[&str]) -> BehaviorTrust {
        BehaviorTrust {
            behavior,
            trusted_key_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// The document with every behavior's `TrustedKeyGroups` cut out.
    fn without_trust(xml: &[u8]) -> Vec<u8> {
        let spans = behavior_spans(xml).expect("readable");
        let mut cuts: Vec<(usize, usize)> = spans.iter().filter_map(|s| s.trust).collect();
        cuts.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut out = xml.to_vec();
        for (start, end) in cuts {
            out.drain(start..end);
        }
        out
    }

    #[test]
    fn only_the_changed_behaviors_trust_differs_byte_for_byte() {
        let changes = [
            trust(BehaviorSelector::Default, &["KG1"]),
            trust(BehaviorSelector::PathPattern("/a&b/*".into()), &[]),
            trust(
                BehaviorSelector::PathPattern("/c/*".into()),
                &["KG1", "KG2"],
            ),
        ];
        let patched = patch(ORIGINAL.as_bytes(), &changes).expect("patched");
        assert_eq!(
            without_trust(&patched),
            without_trust(ORIGINAL.as_bytes()),
            "something outside TrustedKeyGroups changed"
        );
        let text = String::from_utf8(patched.clone()).expect("utf-8");
        assert!(text.contains("<TargetOriginId>o</TargetOriginId>\n    <TrustedKeyGroups><Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>KG1</KeyGroup></Items></TrustedKeyGroups>"), "{text}");
        assert!(text.contains("<PathPattern>/a&amp;b/*</PathPattern>\n      <TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>"), "{text}");
        assert!(text.contains("<PathPattern>/c/*</PathPattern><TrustedKeyGroups><Enabled>true</Enabled><Quantity>2</Quantity><Items><KeyGroup>KG1</KeyGroup><KeyGroup>KG2</KeyGroup></Items></TrustedKeyGroups></CacheBehavior>"), "{text}");
        // The look-alike outside a behavior is not touched.
        assert!(text.contains("<TrustedKeyGroups>not a behavior's</TrustedKeyGroups>"));
        // Patching with what is there already changes nothing a reader would see twice.
        assert_eq!(patch(&patched, &changes).expect("patched again"), patched);
    }

    #[test]
    fn an_unchanged_behavior_keeps_its_bytes() {
        let patched = patch(
            ORIGINAL.as_bytes(),
            &[trust(BehaviorSelector::PathPattern("/c/*".into()), &["KG"])],
        )
        .expect("patched");
        let text = String::from_utf8(patched).expect("utf-8");
        assert!(text.contains(
            "<TrustedKeyGroups>\n        <Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>OLD</KeyGroup></Items>\n      </TrustedKeyGroups>"
        ));
    }

    #[test]
    fn a_behavior_without_the_element_gets_it_where_the_schema_puts_it() {
        let no_trust = ORIGINAL.replace(
            "<TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>",
            "",
        );
        let patched = patch(
            no_trust.as_bytes(),
            &[trust(BehaviorSelector::Default, &["KG"])],
        )
        .expect("patched");
        let text = String::from_utf8(patched).expect("utf-8");
        assert!(text.contains("<TargetOriginId>o</TargetOriginId><TrustedKeyGroups><Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>KG</KeyGroup></Items></TrustedKeyGroups>"), "{text}");
        let signed = no_trust.replace(
            "<TargetOriginId>o</TargetOriginId>",
            "<TargetOriginId>o</TargetOriginId><TrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></TrustedSigners>",
        );
        let text = String::from_utf8(
            patch(signed.as_bytes(), &[trust(BehaviorSelector::Default, &[])]).expect("patched"),
        )
        .expect("utf-8");
        assert!(text.contains("</TrustedSigners><TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>"), "{text}");
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_the_splice() {
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), ORIGINAL.as_bytes()].concat();
        let change = [trust(BehaviorSelector::Default, &["KG1"])];
        let patched = patch(&with_bom, &change).expect("patched");
        assert_eq!(
            &patched[3..],
            patch(ORIGINAL.as_bytes(), &change)
                .expect("patched")
                .as_slice()
        );
        assert_eq!(patch(&patched, &change).expect("patched again"), patched);
    }

    #[test]
    fn a_missing_behavior_or_unreadable_config_is_named() {
        assert_eq!(
            patch(
                ORIGINAL.as_bytes(),
                &[trust(
                    BehaviorSelector::PathPattern("/nope/*".into()),
                    &["KG"]
                )]
            ),
            Err(PatchError::NoSuchBehavior(BehaviorSelector::PathPattern(
                "/nope/*".into()
            )))
        );
        let no_trust = ORIGINAL.replace(
            "<TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>",
            "",
        );
        let bare = no_trust.replace("<TargetOriginId>o</TargetOriginId>", "");
        assert_eq!(
            patch(
                bare.as_bytes(),
                &[trust(BehaviorSelector::Default, &["KG"])]
            ),
            Err(PatchError::NoTrustElement(BehaviorSelector::Default))
        );
        assert!(matches!(
            patch(b"<DistributionConfig><DefaultCacheBehavior>", &[]),
            Err(PatchError::Unreadable(_))
        ));
    }
}
