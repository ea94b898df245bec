//! Signing throughput, side by side in one run: keyfront's signer (key loaded once) per
//! algorithm, `openssl speed` for the same algorithm, botocore's `CloudFrontSigner`, the AWS JS
//! signer, and the batch CLI over 10,000 URLs. Single thread each; prints a table.
//!
//! Run: `cargo bench --bench signing` (after `bash .ci/run` has installed `.venv` and
//! `tests/js/node_modules`; missing peers are reported as not measured).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a bench fails loudly

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyfront::signer::{HashAlgorithm, Policy, Signer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SECONDS: u64 = 3;
const URL: &str = "https://d111111abcdef8.cloudfront.net/videos/2026/trailer.mp4?quality=hd";
const EXPIRES: i64 = 1_900_000_000;

fn key(name: &str) -> String {
    format!("{ROOT}/tests/fixtures/keys/{name}")
}

/// Signed URLs per second on one thread.
fn keyfront_rate(signer: &Signer) -> f64 {
    let policy = Policy::canned(URL, EXPIRES);
    let (mut count, start) = (0u64, Instant::now());
    while start.elapsed() < Duration::from_secs(SECONDS) {
        for _ in 0..16 {
            std::hint::black_box(signer.sign_url(URL, &policy).unwrap());
        }
        count += 16;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed`'s sign/s for one algorithm, one process.
fn openssl_rate(algorithm: &str) -> Option<f64> {
    let output = Command::new("openssl")
        .args(["speed", "-seconds", &SECONDS.to_string(), algorithm])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "rsa 2048 bits 0.000712s 0.000021s 1404.5 47619.0" / "256 bits ecdsa (nistp256) 0.0000s 0.0001s 40000.0 13000.0"
    let line = text.lines().rev().find(|l| {
        (l.starts_with("rsa ") && l.contains("2048")) || l.contains("ecdsa (nistp256)")
    })?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields.get(fields.len().checked_sub(2)?)?.parse().ok()
}

fn script_rate(program: &Path, args: &[&str]) -> Result<f64, String> {
    if !program.exists() && program.components().count() > 1 {
        return Err(format!(
            "{} not installed (run bash .ci/run)",
            program.display()
        ));
    }
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("unexpected output: {e}"))
}

fn botocore_rate() -> Result<f64, String> {
    let script = format!(
        r#"
import datetime, time
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_private_key(open("{key}", "rb").read(), password=None)
signer = CloudFrontSigner("KBENCH", lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA1()))
expires = datetime.datetime.fromtimestamp({EXPIRES}, datetime.timezone.utc)
count, start = 0, time.perf_counter()
while time.perf_counter() - start < {SECONDS}:
    signer.generate_presigned_url("{URL}", date_less_than=expires)
    count += 1
print(count / (time.perf_counter() - start))
"#,
        key = key("rsa-1.pem")
    );
    script_rate(&Path::new(ROOT).join(".venv/bin/python"), &["-c", &script])
}

fn js_rate() -> Result<f64, String> {
    let module = Path::new(ROOT).join("tests/js/node_modules/@aws-sdk/cloudfront-signer");
    if !module.exists() {
        return Err("tests/js/node_modules not installed (run bash .ci/run)".into());
    }
    let script = format!(
        r#"
const {{ getSignedUrl }} = require("{module}");
const privateKey = require("fs").readFileSync("{key}", "utf8");
let count = 0; const start = process.hrtime.bigint();
const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
while (elapsed() < {SECONDS}) {{
  getSignedUrl({{ url: "{URL}", keyPairId: "KBENCH", privateKey, dateLessThan: new Date({EXPIRES} * 1000) }});
  count++;
}}
console.log(count / elapsed());
"#,
        module = module.display(),
        key = key("rsa-1.pem")
    );
    script_rate(Path::new("node"), &["-e", &script])
}

/// The CLI signing 10,000 URLs from a file, end to end (process start and key load included).
fn batch_cli_rate() -> f64 {
    let dir = std::env::temp_dir().join(format!("keyfront-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("urls.txt");
    let urls: String = (0..10_000)
        .map(|i| format!("https://d111111abcdef8.cloudfront.net/hls/seg{i:05}.ts\n"))
        .collect();
    std::fs::write(&list, urls).unwrap();
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args([
            "sign",
            "url",
            "--private-key",
            &key("rsa-1.pem"),
            "--key-pair-id",
            "KBENCH",
            "--urls-from",
        ])
        .arg(&list)
        .args(["--expires", &EXPIRES.to_string()])
        .output()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        output.stdout.iter().filter(|b| **b == b'\n').count(),
        10_000
    );
    let _ = std::fs::remove_dir_all(&dir);
    10_000.0 / elapsed
}

fn row(name: &str, rate: Result<f64, String>, reference: Option<f64>, reference_name: &str) {
    match (rate, reference) {
        (Ok(r), Some(base)) => println!(
            "{name:<44} {r:>12.0}/s   {:>6.2}x {reference_name}",
            r / base
        ),
        (Ok(r), None) => println!("{name:<44} {r:>12.0}/s"),
        (Err(why), _) => println!("{name:<44} {:>14}   ({why})", "not measured"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let rsa = Signer::from_pem(&std::fs::read(key("rsa-1.pem")).unwrap(), "KBENCH", None).unwrap();
    let rsa256 = rsa.with_hash(HashAlgorithm::Sha256).unwrap();
    let ecdsa = Signer::from_pem(&std::fs::read(key("ec-1.pem")).unwrap(), "KBENCH", None).unwrap();

    println!("signed URLs per second, one thread, {SECONDS} s per measurement\n");
    let openssl_rsa = openssl_rate("rsa2048");
    let openssl_ec = openssl_rate("ecdsap256");
    let ours_rsa1 = keyfront_rate(&rsa);
    let ours_rsa256 = keyfront_rate(&rsa256);
    let ours_ec = keyfront_rate(&ecdsa);
    row(
        "openssl speed rsa2048 (raw sign)",
        openssl_rsa.ok_or_else(|| "openssl not found".into()),
        None,
        "",
    );
    row(
        "keyfront RSA-2048/SHA-1",
        Ok(ours_rsa1),
        openssl_rsa,
        "openssl",
    );
    row(
        "keyfront RSA-2048/SHA-256",
        Ok(ours_rsa256),
        openssl_rsa,
        "openssl",
    );
    row(
        "openssl speed ecdsap256 (raw sign)",
        openssl_ec.ok_or_else(|| "openssl not found".into()),
        None,
        "",
    );
    row(
        "keyfront ECDSA-P256/SHA-256",
        Ok(ours_ec),
        openssl_ec,
        "openssl",
    );
    let botocore = botocore_rate();
    let js = js_rate();
    row(
        "botocore CloudFrontSigner RSA/SHA-1",
        botocore.clone(),
        None,
        "",
    );
    row(
        "@aws-sdk/cloudfront-signer RSA/SHA-1 (PEM)",
        js.clone(),
        None,
        "",
    );
    if let Ok(b) = botocore {
        println!(
            "{:<44} {:>12.2}x",
            "keyfront RSA/SHA-1 vs botocore",
            ours_rsa1 / b
        );
    }
    if let Ok(j) = js {
        println!(
            "{:<44} {:>12.2}x",
            "keyfront RSA/SHA-1 vs AWS JS signer",
            ours_rsa1 / j
        );
    }
    row(
        "keyfront sign url --urls-from (10,000 URLs)",
        Ok(batch_cli_rate()),
        openssl_rsa,
        "openssl",
    );
}
