//! `keyfront inspect` against the verifying edge: for every refusal the edge knows, the
//! verdict `inspect` prints for a URL is the reason the edge gives for the same URL (and its
//! exit code says accepted or not); URLs signed by botocore and the AWS JS signer are inspected
//! as accepted. The real `keyfront emulator --edge-listen` serves the distribution.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront as _, DeploymentStatus, KeyGroupConfig,
    NewPublicKey,
};
use keyfront::signer::{HashAlgorithm, Policy, Signer, cloudfront_base64};

use crate::support::{python, repo, wait_for};

const DISTRIBUTION: &str = "EINSPECT1";

struct Setup {
    _emulator: crate::support::stack::Emulator,
    _dir: tempfile::TempDir,
    api: SocketAddr,
    edge: SocketAddr,
    host: String,
    /// Public key IDs: rsa-1 and ec-1 in the trusted group; rsa-2 in the account only.
    rsa: String,
    ec: String,
    outsider: String,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("tests/fixtures/keys/{name}"))).unwrap()
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let emulator = crate::support::stack::Emulator::start(
        dir.path(),
        &["--propagation-delay", "0", "--distribution", DISTRIBUTION],
    )
    .await;
    let (api, edge, cf) = (emulator.api, emulator.edge, emulator.cf.clone());
    let mut ids = Vec::new();
    for name in ["rsa-1", "ec-1", "rsa-2"] {
        let key = cf
            .create_public_key(&NewPublicKey {
                name: name.into(),
                encoded_key: fixture(&format!("{name}.pub.pem")),
                comment: None,
                caller_reference: name.into(),
            })
            .await
            .unwrap();
        ids.push(key.value.id);
    }
    let group = cf
        .create_key_group(&KeyGroupConfig {
            name: "inspected".into(),
            comment: None,
            items: ids[..2].to_vec(),
        })
        .await
        .unwrap();
    let distribution = cf.get_distribution(DISTRIBUTION).await.unwrap();
    cf.set_trusted_key_groups(
        DISTRIBUTION,
        &[BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: vec![group.value.id],
        }],
        &distribution.etag,
    )
    .await
    .unwrap();
    wait_for(
        "the distribution to deploy",
        Duration::from_secs(20),
        async || {
            cf.get_distribution(DISTRIBUTION)
                .await
                .unwrap()
                .value
                .status
                == DeploymentStatus::Deployed
        },
    )
    .await;
    Setup {
        _emulator: emulator,
        _dir: dir,
        api,
        edge,
        host: format!("{}.cloudfront.net", DISTRIBUTION.to_ascii_lowercase()),
        rsa: ids[0].clone(),
        ec: ids[1].clone(),
        outsider: ids[2].clone(),
    }
}

/// The edge's answer for a request: `Ok` or the reason it gives.
async fn edge(setup: &Setup, path_and_query: &str, cookie: Option<&str>) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(setup.edge).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\n{cookie}Connection: close\r\n\r\n",
        setup.host
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    if text.starts_with("HTTP/1.1 200") {
        return Ok(());
    }
    let reason = text
        .lines()
        .find_map(|l| l.strip_prefix("x-keyfront-edge-reason: "))
        .unwrap_or_else(|| panic!("no reason in {text}"));
    Err(reason.to_owned())
}

/// `keyfront inspect`'s verdict and exit status for a URL.
fn inspect(setup: &Setup, url: &str, cookie: Option<&str>) -> (Result<(), String>, bool) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyfront"));
    command
        .args([
            "inspect",
            url,
            "--distribution",
            DISTRIBUTION,
            "--ip",
            "127.0.0.1",
        ])
        .args(["--cloudfront-endpoint", &format!("http://{}", setup.api)])
        .env("AWS_ACCESS_KEY_ID", "AKIDINSPECT")
        .env("AWS_SECRET_ACCESS_KEY", "inspect")
        .env("AWS_REGION", "us-east-1");
    if let Some(cookie) = cookie {
        command.args(["--cookie", cookie]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let verdict = stdout
        .lines()
        .find_map(|l| l.strip_prefix("verdict: "))
        .unwrap_or_else(|| {
            panic!(
                "no verdict for {url}:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let verdict = match verdict {
        "would be accepted" => Ok(()),
        refused => Err(refused
            .strip_prefix("refused: ")
            .unwrap_or_else(|| panic!("odd verdict {refused}"))
            .to_owned()),
    };
    (verdict, output.status.success())
}

fn signer(setup: &Setup, key: &str, hash: Option<HashAlgorithm>) -> Signer {
    let id = match key {
        "rsa-1" => &setup.rsa,
        "ec-1" => &setup.ec,
        "rsa-2" => &setup.outsider,
        other => other,
    };
    Signer::from_pem(fixture(&format!("{key}.pem")).as_bytes(), id, hash).unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Replaces one query parameter's value.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

fn without_param(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| p.split('=').next() != Some(name))
        .collect();
    format!("{base}?{}", kept.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_gives_the_edges_reason_for_every_refusal() {
    let setup = setup().await;
    let url = |path: &str| format!("https://{}{path}", setup.host);
    let custom = |path: &str, extra: serde_json::Value| {
        let mut statement = serde_json::json!({"Resource": url(path), "Condition": {"DateLessThan": {"AWS:EpochTime": now() + 600}}});
        for (k, v) in extra.as_object().unwrap() {
            statement["Condition"][k] = v.clone();
        }
        serde_json::json!({"Statement": [statement]}).to_string()
    };
    let rsa = signer(&setup, "rsa-1", None);
    let rsa256 = signer(&setup, "rsa-1", Some(HashAlgorithm::Sha256));
    let canned = |s: &Signer, path: &str, expires: i64| {
        s.sign_url(&url(path), &Policy::canned(url(path), expires))
            .unwrap()
    };
    let valid = canned(&rsa, "/a.mp4", now() + 600);
    let tampered_policy = {
        let signed = rsa
            .sign_url_with_policy_text(&url("/b.mp4"), &custom("/b.mp4", serde_json::json!({})))
            .unwrap();
        let other = custom("/*", serde_json::json!({}));
        with_param(&signed, "Policy", &cloudfront_base64(other.as_bytes()))
    };
    let bad_signature = {
        let signature = valid
            .split("Signature=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let mut flipped = signature.to_owned();
        let first = if flipped.starts_with('A') { "B" } else { "A" };
        flipped.replace_range(0..1, first);
        with_param(&valid, "Signature", &flipped)
    };
    let cases: Vec<(&str, String)> = vec![
        ("accepted (RSA, SHA-1)", valid.clone()),
        (
            "accepted (RSA, SHA-256)",
            canned(&rsa256, "/c.mp4", now() + 600),
        ),
        (
            "accepted (ECDSA)",
            canned(&signer(&setup, "ec-1", None), "/d.mp4", now() + 600),
        ),
        ("expired", canned(&rsa, "/e.mp4", now() - 60)),
        (
            "not yet valid",
            rsa.sign_url_with_policy_text(
                &url("/f.mp4"),
                &custom(
                    "/f.mp4",
                    serde_json::json!({"DateGreaterThan": {"AWS:EpochTime": now() + 300}}),
                ),
            )
            .unwrap(),
        ),
        (
            "wrong IP",
            rsa.sign_url_with_policy_text(
                &url("/g.mp4"),
                &custom(
                    "/g.mp4",
                    serde_json::json!({"IpAddress": {"AWS:SourceIp": "10.0.0.0/8"}}),
                ),
            )
            .unwrap(),
        ),
        ("tampered policy", tampered_policy),
        ("bad signature", bad_signature),
        (
            "unknown key",
            with_param(&valid, "Key-Pair-Id", "KUNKNOWN0000"),
        ),
        (
            "key not trusted by the behavior",
            canned(&signer(&setup, "rsa-2", None), "/h.mp4", now() + 600),
        ),
        (
            "resource mismatch",
            rsa.sign_url_with_policy_text(
                &url("/i.mp4"),
                &custom("/other/*", serde_json::json!({})),
            )
            .unwrap(),
        ),
        (
            "SHA-256 signature without Hash-Algorithm",
            without_param(&canned(&rsa256, "/j.mp4", now() + 600), "Hash-Algorithm"),
        ),
        ("no signature", url("/k.mp4")),
    ];
    let mut reasons = std::collections::BTreeSet::new();
    for (name, signed) in &cases {
        let path_and_query = &signed[signed.find("/").map(|i| i + 2).unwrap()..];
        let path_and_query = &path_and_query[path_and_query.find('/').unwrap()..];
        let at_edge = edge(&setup, path_and_query, None).await;
        let (verdict, exit_ok) = inspect(&setup, signed, None);
        assert_eq!(
            verdict, at_edge,
            "{name}: inspect and the edge disagree on {signed}"
        );
        assert_eq!(exit_ok, at_edge.is_ok(), "{name}: exit status");
        reasons.insert(at_edge.err().unwrap_or_else(|| "accepted".into()));
    }
    // Tampering, a wrong signature and a SHA-256 signature checked as SHA-1 are all "signature
    // does not verify"; the two untrusted keys differ by ID: 9 distinct answers.
    assert_eq!(
        reasons.len(),
        9,
        "the cases cover every reason: {reasons:?}"
    );

    // Signed cookies, through --cookie and the Cookie header.
    let policy = custom("/cookies/*", serde_json::json!({}));
    let cookies = rsa.sign_cookies_with_policy_text(&policy).unwrap();
    let header: Vec<String> = cookies.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let header = header.join("; ");
    let at_edge = edge(&setup, "/cookies/1.ts", Some(&header)).await;
    assert_eq!(at_edge, Ok(()));
    assert_eq!(
        inspect(&setup, &url("/cookies/1.ts"), Some(&header)),
        (Ok(()), true)
    );
    assert_eq!(
        inspect(&setup, &url("/elsewhere/1.ts"), Some(&header)).0,
        edge(&setup, "/elsewhere/1.ts", Some(&header)).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_signed_by_botocore_and_the_aws_js_signer_are_inspected_as_accepted() {
    let setup = setup().await;
    let url = format!("https://{}/from/sdk.mp4?x=1", setup.host);
    let expires = now() + 600;
    let key = repo("tests/fixtures/keys/rsa-1.pem");
    let botocore = Command::new(python())
        .args([
            "-c",
            "import sys, datetime\n\
from botocore.signers import CloudFrontSigner\n\
from cryptography.hazmat.primitives import hashes, serialization\n\
from cryptography.hazmat.primitives.asymmetric import padding\n\
key = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
signer = CloudFrontSigner(sys.argv[2], lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA1()))\n\
print(signer.generate_presigned_url(sys.argv[3], date_less_than=datetime.datetime.fromtimestamp(int(sys.argv[4]), datetime.timezone.utc)))",
        ])
        .args([key.to_str().unwrap(), &setup.rsa, &url, &expires.to_string()])
        .output()
        .unwrap();
    assert!(
        botocore.status.success(),
        "{}",
        String::from_utf8_lossy(&botocore.stderr)
    );
    let js = Command::new("node")
        .current_dir(repo("tests/js"))
        .args([
            "--input-type=module",
            "-e",
            "import { getSignedUrl } from '@aws-sdk/cloudfront-signer';\n\
import { readFileSync } from 'node:fs';\n\
const [key, id, url, expires] = process.argv.slice(1);\n\
console.log(getSignedUrl({ url, keyPairId: id, privateKey: readFileSync(key, 'utf8'), dateLessThan: new Date(Number(expires) * 1000) }));",
        ])
        .args([key.to_str().unwrap(), &setup.rsa, &url, &expires.to_string()])
        .output()
        .unwrap();
    assert!(
        js.status.success(),
        "{}",
        String::from_utf8_lossy(&js.stderr)
    );
    for (who, output) in [("botocore", botocore), ("AWS JS signer", js)] {
        let signed = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert!(signed.contains("Signature="), "{who}: {signed}");
        assert_eq!(
            inspect(&setup, &signed, None),
            (Ok(()), true),
            "{who}: {signed}"
        );
    }
}

/// What inspect says when it cannot check: without a public key (CloudFront unreachable) it
/// says "not checked" and that it asked CloudFront, never that the key is untrusted; a private
/// key passed as the public one is named as such.
#[test]
fn inspect_says_what_it_could_not_check() {
    let key = repo("tests/fixtures/keys/rsa-1.pem");
    let signed = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["sign", "url", "--private-key"])
        .arg(&key)
        .args([
            "--key-pair-id",
            "K2NOTFETCHABLE",
            "--url",
            "https://d.example/a",
            "--expires-in",
            "1h",
        ])
        .output()
        .unwrap();
    let url = String::from_utf8(signed.stdout).unwrap();
    let unreachable = format!("http://{}", crate::support::free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["inspect", url.trim(), "--cloudfront-endpoint", &unreachable])
        .env("AWS_ACCESS_KEY_ID", "AKIDINSPECT")
        .env("AWS_SECRET_ACCESS_KEY", "inspect")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("CloudFront at {unreachable}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("K2NOTFETCHABLE could not be fetched"),
        "{stdout}"
    );
    assert!(
        stdout.contains("verdict: not checked: no public key"),
        "{stdout}"
    );
    assert!(!stdout.contains("trusts"), "{stdout}");

    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["inspect", url.trim(), "--public-key"])
        .arg(&key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("holds a private key"), "{stderr}");
    assert!(!stderr.contains("BEGIN"), "no key material: {stderr}");
}
