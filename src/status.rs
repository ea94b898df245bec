//! `keyfront status NAME`: one screen on a `SigningKeyGroup`, as cmctl's `status certificate`
//! is for a certificate: the spec in effect, the conditions, the keys with their states and
//! times, each distribution as CloudFront last reported it to keyfront, and the recent Events.
//!
//! Read-only, from the Kubernetes API alone (no AWS credentials needed): everything shown is
//! what keyfront recorded in the object's status and Events. Never key material: status holds
//! none.

use std::io::Write;

use anyhow::Context as _;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt as _};

use crate::api::{DistributionTrust, SigningKeyGroup};

/// `keyfront status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The SigningKeyGroup's name.
    name: String,
    /// Its namespace; default: the kubeconfig context's.
    #[arg(short, long)]
    namespace: Option<String>,
    /// How many of the latest Events to show.
    #[arg(long, default_value_t = 10)]
    events: usize,
}

/// Runs `keyfront status`.
pub async fn run(args: StatusArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (set KUBECONFIG, or run in a pod)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let objects: Api<SigningKeyGroup> = Api::namespaced(client.clone(), &namespace);
    let object = objects
        .get_opt(&args.name)
        .await
        .with_context(|| format!("cannot read SigningKeyGroup {namespace}/{}", args.name))?
        .with_context(|| {
            format!(
                "no SigningKeyGroup {namespace}/{} (kubectl get skg -n {namespace} lists them)",
                args.name
            )
        })?;
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let mut related: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .context("cannot list Events")?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.uid.is_some() && r.uid == object.metadata.uid)
        })
        .collect();
    related.sort_by_key(last_seen);
    let skip = related.len().saturating_sub(args.events);
    print(out, &object, &related[skip..])?;
    Ok(())
}

/// When an Event last happened.
fn last_seen(event: &Event) -> Option<jiff::Timestamp> {
    event
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
}

/// A time to the second, as RFC 3339 (`-` when there is none).
fn seconds(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn print(out: &mut impl Write, object: &SigningKeyGroup, events: &[Event]) -> std::io::Result<()> {
    let spec = &object.spec;
    let status = object.status.clone().unwrap_or_default();
    writeln!(
        out,
        "SigningKeyGroup {}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )?;
    writeln!(out, "\nSpec")?;
    writeln!(out, "  account:        {}", spec.account_ref.name)?;
    writeln!(
        out,
        "  key group:      {} (ID {})",
        status
            .key_group_name
            .as_deref()
            .unwrap_or("not created yet"),
        status.key_group_id.as_deref().unwrap_or("none yet")
    )?;
    writeln!(out, "  algorithm:      {}", spec.key.algorithm)?;
    let r = &spec.rotation;
    writeln!(
        out,
        "  rotation:       every {}; signed URLs live up to {}; pods refresh within {}; min propagation wait {}",
        r.interval, r.max_signed_url_lifetime, r.secret_refresh_allowance, r.min_propagation_wait
    )?;
    writeln!(
        out,
        "  secret:         {}",
        status.secret_name.as_deref().unwrap_or("not written yet")
    )?;
    for d in &spec.distributions {
        let mut behaviors: Vec<String> = crate::reconcile::plan::selectors(d)
            .iter()
            .map(ToString::to_string)
            .collect();
        if d.trust == DistributionTrust::External {
            behaviors.push("attached by its owner (trust: External)".into());
        }
        writeln!(out, "  distribution:   {} ({})", d.id, behaviors.join(", "))?;
    }

    writeln!(out, "\nConditions")?;
    writeln!(
        out,
        "  {:<20} {:<7} {:<30} MESSAGE",
        "TYPE", "STATUS", "REASON"
    )?;
    for c in &status.conditions {
        writeln!(
            out,
            "  {:<20} {:<7} {:<30} {}",
            c.type_, c.status, c.reason, c.message
        )?;
    }

    writeln!(
        out,
        "\nKeys (apps sign with {})",
        status.active_key_id.as_deref().unwrap_or("none yet")
    )?;
    writeln!(
        out,
        "  {:<16} {:<10} {:<22} {:<22} LEAVES THE GROUP AFTER",
        "ID", "STATE", "CREATED", "ACTIVATED"
    )?;
    let time =
        |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| seconds(t.map(|t| t.0));
    for k in &status.keys {
        writeln!(
            out,
            "  {:<16} {:<10} {:<22} {:<22} {}",
            k.id.as_deref().unwrap_or("(not created)"),
            format!("{:?}", k.state),
            time(Some(&k.created_at)),
            time(k.activated_at.as_ref()),
            time(k.retire_after.as_ref()),
        )?;
    }
    writeln!(
        out,
        "  next rotation: {}",
        time(status.next_rotation_time.as_ref())
    )?;

    writeln!(
        out,
        "\nDistributions (as CloudFront last reported them to keyfront)"
    )?;
    writeln!(
        out,
        "  {:<20} {:<9} DEPLOYED WITH THE CURRENT KEYS",
        "ID", "ATTACHED"
    )?;
    for d in &status.distributions {
        writeln!(
            out,
            "  {:<20} {:<9} {}",
            d.id,
            if d.attached { "yes" } else { "no" },
            if d.deployed { "yes" } else { "no" }
        )?;
    }

    writeln!(out, "\nEvents (latest {})", events.len())?;
    writeln!(
        out,
        "  {:<22} {:<8} {:<26} NOTE",
        "LAST SEEN", "TYPE", "REASON"
    )?;
    for e in events {
        writeln!(
            out,
            "  {:<22} {:<8} {:<26} {}",
            seconds(last_seen(e)),
            e.type_.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            e.note.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}
