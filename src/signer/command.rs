//! `keyfront sign url|cookies`: sign from a PEM file or a mounted Secret directory, one URL or a
//! batch (one per line, in order). Every failure is one line naming the path or value at fault.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::{HashAlgorithm, MountedSigner, Policy, Signer};
use crate::api::parse_cli_duration;

/// What to sign.
#[derive(Subcommand, Debug)]
pub enum SignCommand {
    /// Print signed URLs, one per line.
    Url(SignArgs),
    /// Print signed cookies, one `Name=Value` per line.
    Cookies(SignArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashFlag {
    Sha1,
    Sha256,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// PEM private key (PKCS#1, PKCS#8 or SEC1), with --key-pair-id.
    #[arg(long, requires = "key_pair_id", conflicts_with = "secret_dir")]
    private_key: Option<PathBuf>,
    /// CloudFront public key ID the key is registered under.
    #[arg(long, requires = "private_key")]
    key_pair_id: Option<String>,
    /// A directory holding keyfront's Secret as the kubelet mounts it.
    #[arg(long)]
    secret_dir: Option<PathBuf>,
    /// The URL to sign (also the policy's resource).
    #[arg(long, conflicts_with = "urls_from")]
    url: Option<String>,
    /// Sign every URL in FILE (or `-` for stdin), one per line.
    #[arg(long, value_name = "FILE|-")]
    urls_from: Option<String>,
    /// Expiry as Unix epoch seconds.
    #[arg(long, conflicts_with = "expires_in")]
    expires: Option<i64>,
    /// Expiry relative to now, e.g. `1h`, `15m`, `7d`.
    #[arg(long, allow_hyphen_values = true)]
    expires_in: Option<String>,
    /// Not valid before this Unix epoch second (makes a custom policy).
    #[arg(long)]
    not_before: Option<i64>,
    /// Only viewers from this address or CIDR range (makes a custom policy).
    #[arg(long, value_name = "CIDR")]
    ip: Option<String>,
    /// A custom policy JSON file, signed as is.
    #[arg(long, conflicts_with_all = ["expires", "expires_in", "not_before", "ip"])]
    policy_file: Option<PathBuf>,
    /// Hash algorithm (default: the Secret's, else SHA-1 for RSA and SHA-256 for ECDSA).
    #[arg(long, value_enum)]
    hash: Option<HashFlag>,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn load_signer(args: &SignArgs) -> anyhow::Result<Signer> {
    let mut signer = match (&args.secret_dir, &args.private_key, &args.key_pair_id) {
        (Some(dir), None, None) => MountedSigner::open(dir)?.current()?,
        (None, Some(path), Some(id)) => {
            let pem = zeroize::Zeroizing::new(
                std::fs::read(path)
                    .with_context(|| format!("cannot read private key {}", path.display()))?,
            );
            if pem.windows(16).any(|w| w == b"BEGIN PUBLIC KEY") {
                bail!(
                    "--private-key {} holds a public key: sign with the private key it was made from (the app Secret's private_key.pem)",
                    path.display()
                );
            }
            Signer::from_pem(&pem, id, None)
                .with_context(|| format!("private key {}", path.display()))?
        }
        _ => bail!("give either --secret-dir DIR or --private-key FILE with --key-pair-id ID"),
    };
    if let Some(hash) = args.hash {
        let hash = match hash {
            HashFlag::Sha1 => HashAlgorithm::Sha1,
            HashFlag::Sha256 => HashAlgorithm::Sha256,
        };
        signer = signer.with_hash(hash)?;
    }
    Ok(signer)
}

fn check_url(url: &str) -> anyhow::Result<()> {
    if url.contains(char::is_whitespace) {
        bail!(
            "malformed URL {url:?}: it contains a space; percent-encode it (%20) as the viewer's request will"
        );
    }
    let parsed = url::Url::parse(url).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => anyhow!(
            "malformed URL {url:?}: it has no scheme; give the whole URL, like https://{url}"
        ),
        e => anyhow!("malformed URL {url:?}: {e}"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https" | "rtmp" | "ws" | "wss")
        || parsed.host_str().is_none()
    {
        bail!("malformed URL {url:?}: expected an http(s) URL with a host");
    }
    Ok(())
}

fn check_ip(value: &str) -> anyhow::Result<()> {
    let (address, prefix) = value
        .split_once('/')
        .map_or((value, None), |(a, p)| (a, Some(p)));
    let ip: IpAddr = address
        .parse()
        .map_err(|_| anyhow!("malformed --ip {value:?}: not an IP address"))?;
    if let Some(prefix) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => {}
            _ => bail!("malformed --ip {value:?}: prefix length must be 0-{max}"),
        }
    }
    Ok(())
}

/// How each URL gets its policy.
enum PolicySource {
    Built {
        expires: i64,
        not_before: Option<i64>,
        ip: Option<String>,
    },
    Text(String),
}

fn policy_source(args: &SignArgs) -> anyhow::Result<PolicySource> {
    if let Some(path) = &args.policy_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("policy file {} is not JSON: {e}", path.display()))?;
        if parsed.pointer("/Statement/0/Resource").is_none() {
            bail!(
                "policy file {} has no Statement[0].Resource",
                path.display()
            );
        }
        // CloudFront verifies the exact bytes; only surrounding whitespace is dropped.
        return Ok(PolicySource::Text(text.trim().to_owned()));
    }
    let expires = match (args.expires, &args.expires_in) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d = parse_cli_duration(d).map_err(|e| anyhow!("--expires-in: {e}"))?;
            i64::try_from(d.as_secs())
                .ok()
                .and_then(|secs| now().checked_add(secs))
                .ok_or_else(|| anyhow!("--expires-in is too large"))?
        }
        _ => bail!("give --expires EPOCH or --expires-in DURATION (or --policy-file)"),
    };
    if expires <= now() {
        bail!("expiry {expires} is in the past (now is {})", now());
    }
    if let Some(start) = args.not_before
        && start >= expires
    {
        bail!("--not-before {start} is not before the expiry {expires}");
    }
    if let Some(ip) = &args.ip {
        check_ip(ip)?;
    }
    Ok(PolicySource::Built {
        expires,
        not_before: args.not_before,
        ip: args.ip.clone(),
    })
}

fn sign_one(signer: &Signer, source: &PolicySource, url: &str) -> anyhow::Result<String> {
    check_url(url)?;
    Ok(match source {
        PolicySource::Text(text) => signer.sign_url_with_policy_text(url, text)?,
        PolicySource::Built {
            expires,
            not_before,
            ip,
        } => {
            let policy = Policy {
                resource: url.to_owned(),
                expires: *expires,
                not_before: *not_before,
                ip_range: ip.clone(),
            };
            signer.sign_url(url, &policy)?
        }
    })
}

/// Runs `keyfront sign`, writing results to `out`.
pub fn run(command: &SignCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        SignCommand::Url(args) => {
            let signer = load_signer(args)?;
            let source = policy_source(args)?;
            match (&args.url, &args.urls_from) {
                (Some(url), None) => writeln!(out, "{}", sign_one(&signer, &source, url)?)?,
                (None, Some(from)) => {
                    let reader: Box<dyn BufRead> = if from == "-" {
                        Box::new(std::io::stdin().lock())
                    } else {
                        Box::new(std::io::BufReader::new(
                            std::fs::File::open(from)
                                .with_context(|| format!("cannot read URL list {from}"))?,
                        ))
                    };
                    for (number, line) in reader.lines().enumerate() {
                        let line = line.with_context(|| format!("cannot read URL list {from}"))?;
                        let url = line.trim();
                        if url.is_empty() {
                            continue;
                        }
                        let signed = sign_one(&signer, &source, url)
                            .with_context(|| format!("{from} line {}", number + 1))?;
                        writeln!(out, "{signed}")?;
                    }
                }
                _ => bail!("give --url URL or --urls-from FILE|-"),
            }
        }
        SignCommand::Cookies(args) => {
            if args.urls_from.is_some() {
                bail!("cookies sign one policy: use --url (or --policy-file), not --urls-from");
            }
            let signer = load_signer(args)?;
            let cookies = match (policy_source(args)?, &args.url) {
                (PolicySource::Text(text), _) => signer.sign_cookies_with_policy_text(&text)?,
                (
                    PolicySource::Built {
                        expires,
                        not_before,
                        ip,
                    },
                    Some(url),
                ) => {
                    check_url(url)?;
                    signer.sign_cookies(&Policy {
                        resource: url.clone(),
                        expires,
                        not_before,
                        ip_range: ip,
                    })?
                }
                (PolicySource::Built { .. }, None) => {
                    bail!("give --url URL (the policy's resource) or --policy-file")
                }
            };
            for (name, value) in cookies.0 {
                writeln!(out, "{name}={value}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
