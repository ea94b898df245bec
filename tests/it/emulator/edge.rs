//! The emulator's verifying edge accepts exactly what CloudFront would: signed URLs and cookies
//! whose key is trusted by the behavior as deployed, whose policy allows the URL, the time and
//! the viewer's address, and whose signature verifies (RSA/ECDSA, SHA-1/SHA-256).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use keyfront::clock::ManualClock;
use keyfront::cloudfront::{BehaviorSelector, BehaviorTrust, CloudFront, Etag, KeyGroupConfig};
use keyfront::emulator::faults::FaultSettings;
use keyfront::emulator::model::{ModelSettings, PublicKeyConfig};
use keyfront::emulator::{Emulator, edge};
use keyfront::signer::{HashAlgorithm, Policy, Signer};
use tower::ServiceExt as _;

const T0: i64 = 1_800_000_000;
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).expect("fixture")
}

struct Edge {
    emulator: Emulator,
    clock: ManualClock,
    host: String,
    group_id: String,
    rsa: Signer,
    ecdsa: Signer,
    outsider: Signer,
}

impl Edge {
    async fn new() -> Self {
        let clock = ManualClock::new(jiff::Timestamp::from_second(T0).expect("time"));
        let settings = ModelSettings {
            propagation_delay: Duration::from_secs(2),
            seed: Some(3),
            ..ModelSettings::default()
        };
        let emulator = Emulator::new(settings, FaultSettings::default(), Arc::new(clock.clone()));
        let register = |name: &str, fixture_name: &str| {
            let config = PublicKeyConfig {
                caller_reference: name.into(),
                name: name.into(),
                encoded_key: fixture(fixture_name),
                comment: None,
            };
            emulator.model().create_public_key(config).expect("key").id
        };
        let (rsa_id, ec_id, outsider_id) = (
            register("rsa", "rsa-1.pub.pem"),
            register("ec", "ec-1.pub.pem"),
            register("outsider", "rsa-2.pub.pem"),
        );
        let group = emulator
            .create_key_group(&KeyGroupConfig {
                name: "edge".into(),
                comment: None,
                items: vec![rsa_id.clone(), ec_id.clone()],
            })
            .await
            .expect("group");
        let distribution_id = emulator
            .create_test_distribution(&["/private/*"])
            .expect("distribution");
        let etag = emulator
            .get_distribution(&distribution_id)
            .await
            .expect("get")
            .etag;
        let trust = [BehaviorTrust {
            behavior: BehaviorSelector::PathPattern("/private/*".into()),
            trusted_key_groups: vec![group.value.id.clone()],
        }];
        emulator
            .set_trusted_key_groups(&distribution_id, &trust, &etag)
            .await
            .expect("attach");
        clock.advance(Duration::from_secs(3));
        let host = emulator
            .model()
            .get_distribution(&distribution_id)
            .expect("d")
            .domain_name
            .clone();
        let signer = |pem: &str, id: &str| {
            Signer::from_pem(fixture(pem).as_bytes(), id, None).expect("signer")
        };
        Self {
            rsa: signer("rsa-1.pem", &rsa_id),
            ecdsa: signer("ec-1.pem", &ec_id),
            outsider: signer("rsa-2.pem", &outsider_id),
            emulator,
            clock,
            host,
            group_id: group.value.id,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.host)
    }

    async fn get(&self, url: &str, cookies: Option<String>, from: &str) -> (StatusCode, String) {
        let path_and_query = url
            .split_once(&self.host)
            .map(|(_, rest)| rest.to_owned())
            .expect("our host");
        let mut request = Request::builder()
            .uri(path_and_query)
            .header(header::HOST, &self.host)
            .header("x-forwarded-for", from);
        if let Some(c) = cookies {
            request = request.header(header::COOKIE, c);
        }
        let response = edge::router(self.emulator.clone().into())
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let reason = response
            .headers()
            .get("x-keyfront-edge-reason")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        (response.status(), reason)
    }

    async fn status(&self, url: &str) -> StatusCode {
        self.get(url, None, "192.0.2.10").await.0
    }
}

#[tokio::test]
async fn unprotected_behaviors_serve_anything_and_private_ones_need_a_signature() {
    let edge = Edge::new().await;
    assert_eq!(
        edge.status(&edge.url("/public/a.jpg")).await,
        StatusCode::OK
    );
    let (status, reason) = edge
        .get(&edge.url("/private/a.jpg"), None, "192.0.2.10")
        .await;
    assert_eq!(
        (status, reason.as_str()),
        (
            StatusCode::FORBIDDEN,
            "missing signature: the behavior is private"
        )
    );
}

#[tokio::test]
async fn valid_signatures_pass_for_rsa_sha1_rsa_sha256_and_ecdsa() {
    let edge = Edge::new().await;
    let url = edge.url("/private/video.mp4?quality=hd");
    for signer in [
        edge.rsa.clone(),
        edge.rsa.with_hash(HashAlgorithm::Sha256).unwrap(),
        edge.ecdsa.clone(),
    ] {
        let signed = signer
            .sign_url(&url, &Policy::canned(&url, T0 + 60))
            .expect("sign");
        assert_eq!(
            edge.get(&signed, None, "192.0.2.10").await,
            (StatusCode::OK, String::new()),
            "{signer:?}"
        );
    }
}

/// CloudFront checks ECDSA, like RSA, with SHA-1 unless `Hash-Algorithm=SHA256` says otherwise.
#[tokio::test]
async fn ecdsa_is_checked_with_sha1_unless_the_request_says_sha256() {
    let edge = Edge::new().await;
    let url = edge.url("/private/ecdsa.mp4");
    let sha1 = edge.ecdsa.with_hash(HashAlgorithm::Sha1).unwrap();
    let signed_sha1 = sha1
        .sign_url(&url, &Policy::canned(&url, T0 + 60))
        .expect("sign");
    assert!(!signed_sha1.contains("Hash-Algorithm"), "{signed_sha1}");
    assert_eq!(edge.status(&signed_sha1).await, StatusCode::OK);
    let signed_sha256 = edge
        .ecdsa
        .sign_url(&url, &Policy::canned(&url, T0 + 60))
        .expect("sign");
    assert!(
        signed_sha256.ends_with("&Hash-Algorithm=SHA256"),
        "{signed_sha256}"
    );
    assert_eq!(edge.status(&signed_sha256).await, StatusCode::OK);
    // The hash the request names is the one checked: a mismatch does not verify.
    let sha256_said_nothing = signed_sha256.replace("&Hash-Algorithm=SHA256", "");
    assert_eq!(
        edge.get(&sha256_said_nothing, None, "192.0.2.10").await.1,
        "signature does not verify"
    );
    let sha1_said_sha256 = format!("{signed_sha1}&Hash-Algorithm=SHA256");
    assert_eq!(
        edge.get(&sha1_said_sha256, None, "192.0.2.10").await.1,
        "signature does not verify"
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_signatures_are_refused() {
    let edge = Edge::new().await;
    let url = edge.url("/private/a");
    let signed = edge
        .rsa
        .sign_url(&url, &Policy::canned(&url, T0 + 60))
        .expect("sign");
    let later = Policy {
        resource: url.clone(),
        expires: T0 + 600,
        not_before: Some(T0 + 120),
        ip_range: None,
    };
    let future = edge.rsa.sign_url(&url, &later).expect("sign");
    assert_eq!(
        edge.get(&future, None, "192.0.2.10").await.1,
        "not yet valid"
    );
    edge.clock.advance(Duration::from_secs(200));
    assert_eq!(edge.get(&signed, None, "192.0.2.10").await.1, "expired");
    assert_eq!(edge.status(&future).await, StatusCode::OK);
}

#[tokio::test]
async fn ip_conditions_are_enforced() {
    let edge = Edge::new().await;
    let url = edge.url("/private/a");
    let policy = Policy {
        resource: url.clone(),
        expires: T0 + 60,
        not_before: None,
        ip_range: Some("198.51.100.0/24".into()),
    };
    let signed = edge.ecdsa.sign_url(&url, &policy).expect("sign");
    assert_eq!(
        edge.get(&signed, None, "198.51.100.9").await.0,
        StatusCode::OK
    );
    assert_eq!(
        edge.get(&signed, None, "192.0.2.10").await.1,
        "viewer address not allowed by the policy"
    );
}

#[tokio::test]
async fn tampering_with_policy_signature_or_url_is_refused() {
    let edge = Edge::new().await;
    let resource = edge.url("/private/*");
    let url = edge.url("/private/a");
    let policy = Policy {
        resource: resource.clone(),
        expires: T0 + 60,
        not_before: None,
        ip_range: Some("192.0.2.0/24".into()),
    };
    let signed = edge.rsa.sign_url(&url, &policy).expect("sign");
    let wider = Policy {
        ip_range: None,
        ..policy.clone()
    };
    let forged_policy = keyfront::signer::cloudfront_base64(wider.to_json().as_bytes());
    let original_policy = keyfront::signer::cloudfront_base64(policy.to_json().as_bytes());
    assert_eq!(
        edge.get(
            &signed.replace(&original_policy, &forged_policy),
            None,
            "192.0.2.10"
        )
        .await
        .1,
        "signature does not verify"
    );
    let signature = signed
        .split("Signature=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("sig");
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    assert_eq!(
        edge.get(&signed.replace(signature, &flipped), None, "192.0.2.10")
            .await
            .1,
        "signature does not verify"
    );
    let canned = edge
        .rsa
        .sign_url(&url, &Policy::canned(&url, T0 + 60))
        .expect("sign");
    assert_eq!(
        edge.get(
            &canned.replace("/private/a", "/private/b"),
            None,
            "192.0.2.10"
        )
        .await
        .1,
        "signature does not verify"
    );
    let other_resource = Policy {
        resource: edge.url("/private/only-this"),
        ..policy
    };
    let mismatched = edge.rsa.sign_url(&url, &other_resource).expect("sign");
    assert_eq!(
        edge.get(&mismatched, None, "192.0.2.10").await.1,
        "policy resource does not match the URL"
    );
}

#[tokio::test]
async fn keys_outside_the_deployed_group_are_refused() {
    let edge = Edge::new().await;
    let url = edge.url("/private/a");
    let signed = edge
        .outsider
        .sign_url(&url, &Policy::canned(&url, T0 + 600))
        .expect("sign");
    assert!(
        edge.get(&signed, None, "192.0.2.10")
            .await
            .1
            .contains("is not in a key group")
    );

    // Remove the RSA key from the group: the edge keeps trusting it until the change deploys.
    let valid = edge
        .rsa
        .sign_url(&url, &Policy::canned(&url, T0 + 600))
        .expect("sign");
    let group = edge
        .emulator
        .get_key_group(&edge.group_id)
        .await
        .expect("group");
    let only_ec = KeyGroupConfig {
        items: vec![edge.ecdsa.key_pair_id().to_owned()],
        ..group.value.config.clone()
    };
    edge.emulator
        .update_key_group(&edge.group_id, &only_ec, &Etag(group.etag.0.clone()))
        .await
        .expect("update");
    assert_eq!(edge.status(&valid).await, StatusCode::OK, "still deployed");
    edge.clock.advance(Duration::from_secs(3));
    assert_eq!(edge.status(&valid).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signed_cookies_authorize_every_url_their_policy_covers() {
    let edge = Edge::new().await;
    let policy = Policy {
        resource: edge.url("/private/*"),
        expires: T0 + 60,
        not_before: None,
        ip_range: None,
    };
    for signer in [edge.rsa.clone(), edge.ecdsa.clone()] {
        let cookies = signer.sign_cookies(&policy).expect("cookies");
        let header = cookies
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        for path in ["/private/a.m3u8", "/private/seg/0001.ts"] {
            assert_eq!(
                edge.get(&edge.url(path), Some(header.clone()), "192.0.2.10")
                    .await,
                (StatusCode::OK, String::new()),
                "{path}"
            );
        }
    }
    let canned = edge
        .rsa
        .sign_cookies(&Policy::canned(edge.url("/private/one"), T0 + 60))
        .expect("cookies");
    let header = canned
        .0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        edge.get(
            &edge.url("/private/one"),
            Some(header.clone()),
            "192.0.2.10"
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        edge.get(&edge.url("/private/two"), Some(header), "192.0.2.10")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

/// Every HTTP front of the emulator bounds what it reads: a body over the limit is refused
/// with 413 before anything parses it, and one just under it still reaches the parser.
#[tokio::test]
async fn oversized_request_bodies_are_refused_before_parsing() {
    use keyfront::emulator::wire::{self, MAX_REQUEST_BODY};
    let edge = Edge::new().await;
    let api = wire::router(edge.emulator.clone().into());
    let post = |size: usize| {
        Request::post("/2020-05-31/public-key")
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(vec![b' '; size]))
            .unwrap()
    };
    let too_big = api
        .clone()
        .oneshot(post(MAX_REQUEST_BODY + 1))
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let parsed = api.oneshot(post(MAX_REQUEST_BODY)).await.unwrap();
    assert_eq!(
        parsed.status(),
        StatusCode::BAD_REQUEST,
        "a body within the limit reaches the XML parser, which refuses blanks"
    );

    let front = edge::router(edge.emulator.clone().into());
    let request = |body: Body| {
        Request::get(format!("https://{}/a.txt", edge.host))
            .header(header::HOST, edge.host.clone())
            .body(body)
            .unwrap()
    };
    let with_body = front.clone().oneshot(request(Body::from(vec![b'x'; 4096])));
    let without = front.oneshot(request(Body::empty()));
    assert_eq!(
        with_body.await.unwrap().status(),
        without.await.unwrap().status(),
        "the edge judges the URL and never reads the body"
    );
}
