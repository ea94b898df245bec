//! `keyfront inspect URL [--cookie …]`: "why does CloudFront give me 403?".
//!
//! Decodes what a signed URL or signed cookies carry (canned or custom policy, resource, expiry
//! and not-before as times, the IP condition, key pair ID, hash), then decides with the same
//! code the verifying edge decides with ([`super::verify::verify_presented`]): the signature
//! (the public key from `--public-key`, `--secret-dir`, or fetched from CloudFront by ID), the
//! resource against the URL, the times and address, and with `--distribution` whether the
//! matching cache behavior trusts the key as deployed. The last line is the verdict, with the
//! edge's own reason words; the exit code is 0 when CloudFront would accept, 1 otherwise.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use axum::http::{HeaderMap, HeaderValue, header};
use clap::Args;

use super::verify::{Presented, glob_matches, verify_presented};
use crate::cloudfront::accounts::{SdkAccounts, SdkSettings};
use crate::cloudfront::{
    AccountAccess, BehaviorSelector, CloudFront as _, CloudFrontAccounts as _, Distribution,
};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The signed URL; with --cookie, the URL the cookies are sent with.
    url: String,
    /// Signed cookies as a Cookie header:
    /// 'CloudFront-Policy=…; CloudFront-Signature=…; CloudFront-Key-Pair-Id=…'.
    #[arg(long)]
    cookie: Option<String>,
    /// Check the signature with this PEM public key.
    #[arg(long, conflicts_with = "secret_dir")]
    public_key: Option<PathBuf>,
    /// Check the signature with the public key in keyfront's mounted Secret.
    #[arg(long)]
    secret_dir: Option<PathBuf>,
    /// Also check that this distribution's matching cache behavior trusts the key as deployed
    /// (reads it from CloudFront).
    #[arg(long)]
    distribution: Option<String>,
    /// CloudFront endpoint override (e.g. `keyfront emulator`); else AWS with the default
    /// credential chain. Used to fetch the public key by ID and the distribution.
    #[arg(long, env = "KEYFRONT_CLOUDFRONT_ENDPOINT")]
    cloudfront_endpoint: Option<String>,
    /// The viewer's address, for policies with an IpAddress condition.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Judge at this Unix epoch second instead of now.
    #[arg(long)]
    at: Option<i64>,
}

/// "3 h 5 min", "12 min", "40 s".
fn span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ if s < 172_800 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} days", s / 86_400),
    }
}

/// A policy time as a time and how it stands now: `past` / `future` phrase it, e.g.
/// ("expired", "expires in") → "2026-11-24T22:00:00Z (expired 3 h 5 min ago)".
fn when(epoch: i64, now: i64, past: &str, future: &str) -> String {
    let time = jiff::Timestamp::from_second(epoch)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| epoch.to_string());
    if epoch <= now {
        format!("{time} ({past} {} ago)", span(now - epoch))
    } else {
        format!("{time} ({future} {})", span(epoch - now))
    }
}

/// The trust a distribution gives: the key IDs its behavior for `path` trusts as deployed, or
/// `None` when that behavior trusts no key group (it is public).
fn deployed_trust(distribution: &Distribution, path: &str) -> (String, Option<Vec<String>>) {
    let behavior = distribution
        .behaviors
        .iter()
        .find(|b| matches!(&b.behavior, BehaviorSelector::PathPattern(p) if glob_matches(&format!("/{}", p.trim_start_matches('/')), path)))
        .or_else(|| distribution.behavior(&BehaviorSelector::Default));
    let Some(behavior) = behavior.filter(|b| !b.trusted_key_groups.is_empty()) else {
        return ("a public cache behavior".into(), None);
    };
    let keys = distribution
        .active_trusted_key_groups
        .iter()
        .filter(|g| behavior.trusted_key_groups.contains(&g.key_group_id))
        .flat_map(|g| g.key_pair_ids.iter().cloned())
        .collect();
    (behavior.behavior.to_string(), Some(keys))
}

/// Runs `keyfront inspect`; returns whether CloudFront would accept.
pub async fn run(args: &InspectArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let url = url::Url::parse(&args.url).with_context(|| format!("{:?} is not a URL", args.url))?;
    let host = url
        .host_str()
        .context("the URL has no host")?
        .to_ascii_lowercase();
    let path_and_query = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let mut headers = HeaderMap::new();
    if let Some(cookie) = &args.cookie {
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).context("--cookie is not a valid Cookie header")?,
        );
    }
    let presented = Presented::read(&headers, url.scheme(), &host, path_and_query);
    let now = args
        .at
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    let line = |out: &mut dyn Write, label: &str, value: &str| writeln!(out, "{label:<12} {value}");

    line(out, "url", &presented.url)?;
    let policy = presented
        .policy_bytes()
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let kind = match (presented.param("Policy"), presented.param("Expires")) {
        (Some(_), _) => "custom",
        (None, Some(_)) => "canned",
        (None, None) => "none",
    };
    line(out, "policy", kind)?;
    if let Some(policy) = &policy {
        let statement = &policy["Statement"][0];
        if kind == "custom" {
            line(out, "document", &policy.to_string())?;
        }
        let resource = statement["Resource"].as_str().unwrap_or("*");
        let matches = if glob_matches(resource, &presented.url) {
            "matches the URL"
        } else {
            "does NOT match the URL"
        };
        line(out, "resource", &format!("{resource} ({matches})"))?;
        let condition = &statement["Condition"];
        if let Some(until) = condition["DateLessThan"]["AWS:EpochTime"].as_i64() {
            line(out, "expires", &when(until, now, "expired", "expires in"))?;
        }
        if let Some(from) = condition["DateGreaterThan"]["AWS:EpochTime"].as_i64() {
            line(
                out,
                "not before",
                &when(from, now, "valid since", "valid in"),
            )?;
        }
        if let Some(range) = condition["IpAddress"]["AWS:SourceIp"].as_str() {
            let viewer = args
                .ip
                .map_or("viewer address not given (--ip)".to_owned(), |ip| {
                    format!("viewer {ip}")
                });
            line(out, "ip", &format!("{range} ({viewer})"))?;
        }
    }
    let key_pair_id = presented.key_pair_id().ok().map(str::to_owned);
    line(out, "key pair id", key_pair_id.as_deref().unwrap_or("none"))?;

    // The public key: given, mounted, or fetched by ID.
    let mut cloudfront = None;
    if args.distribution.is_some() || (args.public_key.is_none() && args.secret_dir.is_none()) {
        // Say so before going to the network (and, without credentials in the environment,
        // to the instance metadata service).
        let endpoint = args
            .cloudfront_endpoint
            .as_deref()
            .unwrap_or("AWS, with the default credential chain");
        line(out, "asking", &format!("CloudFront at {endpoint}"))?;
        let accounts = SdkAccounts::from_environment(SdkSettings {
            endpoint: args.cloudfront_endpoint.clone(),
            ..SdkSettings::default()
        })
        .await;
        cloudfront = Some(
            accounts
                .connect(&AccountAccess {
                    account: "default".into(),
                    assume_role: None,
                    namespace: String::new(),
                    aws_account_id: None,
                })
                .await?,
        );
    }
    let (public_pem, source) = match (&args.public_key, &args.secret_dir, &key_pair_id) {
        (Some(path), _, _) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if pem.contains("PRIVATE KEY-----") {
                anyhow::bail!(
                    "--public-key {} holds a private key; pass its public key (openssl pkey -in KEY -pubout)",
                    path.display()
                );
            }
            (Some(pem), format!("from {}", path.display()))
        }
        (None, Some(dir), _) => {
            let path = dir.join("public_key.pem");
            (
                Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                ),
                format!("from {}", path.display()),
            )
        }
        (None, None, Some(id)) => match &cloudfront {
            Some(cf) => match cf.get_public_key(id).await {
                Ok(key) => (
                    Some(key.value.encoded_key),
                    format!("{id} fetched from CloudFront"),
                ),
                Err(e) if e.is_not_found() => (None, format!("{id} not found in CloudFront")),
                Err(e) => (None, format!("{id} could not be fetched: {e}")),
            },
            None => (None, "none".into()),
        },
        (None, None, None) => (None, "none".into()),
    };
    line(out, "public key", &source)?;
    let hash = match presented.param("Hash-Algorithm") {
        Some(_) => format!("{} (Hash-Algorithm)", presented.hash()),
        None => "SHA1 (CloudFront's default without Hash-Algorithm)".to_owned(),
    };
    line(out, "hash", &hash)?;

    // Trust, as the distribution has deployed it.
    let mut trusted_keys: Option<Option<Vec<String>>> = None;
    if let (Some(id), Some(cf)) = (&args.distribution, &cloudfront) {
        let distribution = cf
            .get_distribution(id)
            .await
            .with_context(|| format!("cannot read distribution {id}"))?
            .value;
        let (behavior, keys) = deployed_trust(&distribution, url.path());
        let said = match &keys {
            None => {
                format!("{id}: {behavior} trusts no key group, so CloudFront serves it unsigned")
            }
            Some(keys) => format!(
                "{id}: the {behavior} trusts keys {} (as deployed)",
                keys.join(", ")
            ),
        };
        line(out, "trust", &said)?;
        trusted_keys = Some(keys);
    } else {
        line(
            out,
            "trust",
            "not checked (name the distribution with --distribution)",
        )?;
    }

    // A key the deployed trust does not list is refused for that, signature unseen; else,
    // without a public key, the signature cannot be judged.
    let untrusted = matches!(&trusted_keys, Some(Some(keys))
        if key_pair_id.as_ref().is_none_or(|id| !keys.contains(id)));
    if public_pem.is_none() && trusted_keys != Some(None) && !untrusted {
        // Nothing to verify the signature with: say so, rather than blame the key's trust.
        writeln!(
            out,
            "verdict: not checked: no public key to verify the signature with (pass --public-key or --secret-dir, or credentials that may read key {} from CloudFront)",
            key_pair_id.as_deref().unwrap_or("none")
        )?;
        return Ok(false);
    }
    let verdict = match &trusted_keys {
        Some(None) => Ok(()),
        _ => verify_presented(
            &presented,
            |key: &str| match &trusted_keys {
                Some(Some(keys)) => keys.iter().any(|k| k == key),
                _ => true,
            },
            |_| public_pem.clone(),
            now,
            args.ip,
        ),
    };
    match &verdict {
        Ok(()) => writeln!(out, "verdict: would be accepted")?,
        Err(denial) => writeln!(out, "verdict: refused: {denial}")?,
    }
    Ok(verdict.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_say_them() {
        assert_eq!(span(40), "40 s");
        assert_eq!(span(-720), "12 min");
        assert_eq!(span(3 * 3600 + 5 * 60), "3 h 5 min");
        assert_eq!(
            when(1_000, 8_200, "expired", "expires in"),
            "1970-01-01T00:16:40Z (expired 2 h 0 min ago)"
        );
        assert_eq!(
            when(1_060, 1_000, "expired", "expires in"),
            "1970-01-01T00:17:40Z (expires in 60 s)"
        );
    }
}
