//! What goes over the wire when keyfront changes a distribution's trust: the body of
//! `UpdateDistribution` is the body `GetDistributionConfig` returned, byte for byte, except the
//! `TrustedKeyGroups` of the behavior being changed. The emulator's wire front is wrapped so
//! that it answers `GetDistributionConfig` with a hand-written document (comments, odd layout,
//! quoting and elements no SDK knows, none of which a typed rewrite would keep as written) and
//! so that the test sees the body keyfront sends.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use keyfront::cloudfront::{BehaviorSelector, BehaviorTrust, CloudFront, Etag, KeyGroupConfig};
use keyfront::emulator::model::ModelSettings;
use keyfront::emulator::xml::Element;
use keyfront::emulator::{Emulator, wire};

/// A config as a person or another tool might have laid it out.
const RAW_CONFIG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- written by another tool -->
<DistributionConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
    <CallerReference>raw-config</CallerReference>
    <Origins><Quantity>1</Quantity><Items><Origin>
        <Id>origin-1</Id><DomainName>example-bucket.s3.amazonaws.com</DomainName>
        <S3OriginConfig><OriginAccessIdentity></OriginAccessIdentity></S3OriginConfig>
        <OriginHttpVersion>http2</OriginHttpVersion>
    </Origin></Items></Origins>
    <DefaultCacheBehavior>
        <TargetOriginId>origin-1</TargetOriginId>
        <TrustedKeyGroups>
            <Enabled>false</Enabled>
            <Quantity>0</Quantity>
        </TrustedKeyGroups>
        <ViewerProtocolPolicy>redirect-to-https</ViewerProtocolPolicy>
        <CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId>
        <FutureBehaviorSetting mode='strict'>on</FutureBehaviorSetting>
    </DefaultCacheBehavior>
    <CacheBehaviors><Quantity>1</Quantity><Items><CacheBehavior>
        <PathPattern>/a&amp;b/*</PathPattern>
        <TargetOriginId>origin-1</TargetOriginId>
        <TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>
        <ViewerProtocolPolicy>redirect-to-https</ViewerProtocolPolicy>
        <CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId>
    </CacheBehavior></Items></CacheBehaviors>
    <Comment>tom &amp; jerry&#x27;s</Comment>
    <Enabled>true</Enabled>
    <TenantConfig><ParameterDefinitions><Quantity>0</Quantity></ParameterDefinitions></TenantConfig>
</DistributionConfig>
"#;

/// The document with the default behavior's `TrustedKeyGroups` element cut out.
fn without_default_trust(xml: &str) -> String {
    let behavior = xml
        .find("<DefaultCacheBehavior>")
        .expect("default behavior");
    let start = behavior + xml[behavior..].find("<TrustedKeyGroups").expect("trust");
    let end_tag = "</TrustedKeyGroups>";
    let end = start + xml[start..].find(end_tag).expect("end of trust") + end_tag.len();
    format!("{}{}", &xml[..start], &xml[end..])
}

#[tokio::test]
async fn the_update_body_is_the_read_body_with_only_the_changed_trust_replaced() {
    let emulator = Emulator::new(
        ModelSettings::default(),
        Default::default(),
        Arc::new(keyfront::clock::SystemClock),
    );
    let config = Element::parse(RAW_CONFIG.as_bytes()).expect("the fixture parses");
    let id = emulator
        .model()
        .create_distribution(config)
        .expect("stored")
        .id;
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen = sent.clone();
    let router = wire::router(emulator.clone().into()).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let seen = seen.clone();
            async move { wrap(request, next, &seen).await }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let sdk = crate::support::cloudfront(addr);

    let key = sdk
        .create_public_key(&keyfront::cloudfront::NewPublicKey {
            name: "raw".into(),
            encoded_key: std::fs::read_to_string("tests/fixtures/keys/rsa-1.pub.pem")
                .expect("fixture key"),
            comment: None,
            caller_reference: "raw".into(),
        })
        .await
        .expect("key");
    let group = sdk
        .create_key_group(&KeyGroupConfig {
            name: "raw".into(),
            comment: None,
            items: vec![key.value.id],
        })
        .await
        .expect("group");
    let etag = sdk.get_distribution(&id).await.expect("read").etag;
    let written = sdk
        .set_trusted_key_groups(
            &id,
            &[BehaviorTrust {
                behavior: BehaviorSelector::Default,
                trusted_key_groups: vec![group.value.id.clone()],
            }],
            &Etag(etag.0.clone()),
        )
        .await
        .expect("the emulator took the update, signature and all");
    assert!(
        written
            .value
            .behaviors
            .iter()
            .any(|b| b.behavior == BehaviorSelector::Default
                && b.trusted_key_groups == [group.value.id.clone()]),
        "{:?}",
        written.value.behaviors
    );

    let bodies = sent.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1, "one UpdateDistribution body");
    let body = String::from_utf8(bodies[0].clone()).expect("utf-8");
    assert_eq!(
        without_default_trust(&body),
        without_default_trust(RAW_CONFIG),
        "a byte outside the default behavior's TrustedKeyGroups changed"
    );
    assert!(body.contains(&format!(
        "<TrustedKeyGroups><Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>{}</KeyGroup></Items></TrustedKeyGroups>",
        group.value.id
    )));
}

/// Answers `GetDistributionConfig` with [`RAW_CONFIG`] (keeping the emulator's ETag) and
/// records each `UpdateDistribution` body before the emulator takes it.
async fn wrap(request: Request, next: Next, sent: &Mutex<Vec<Vec<u8>>>) -> Response {
    let is_config = request.uri().path().ends_with("/config");
    match *request.method() {
        http::Method::GET if is_config => {
            let response = next.run(request).await;
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Body::from(RAW_CONFIG))
        }
        http::Method::PUT if is_config => {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
            sent.lock().expect("lock").push(bytes.to_vec());
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => next.run(request).await,
    }
}
