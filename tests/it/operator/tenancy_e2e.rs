//! Tenancy end to end: the real `keyfront run` and `keyfront emulator` (serving STS too)
//! against a real kube-apiserver (a fresh control plane per test), driven by kubectl, with three tenants and two AWS accounts.
//!
//! - team-a is granted distribution E1TEAMA and attaches to it;
//! - team-b lists E1TEAMA, is refused with `DistributionNotAllowed`, and E1TEAMA's
//!   DistributionConfig and ETag stay exactly as they were;
//! - team-c is not admitted by the account: `NamespaceNotAllowed`, and the emulator's request
//!   log shows no CloudFront call while it is reconciled;
//! - team-m uses a second account through AssumeRole: its key group is in that account, not
//!   the default one, and the request log names the session `keyfront-team-m`;
//! - narrowing team-a's grant detaches it from E1TEAMA (another group keeps it private);
//! - no keyring is in any tenant namespace.
//!
//! And a restore: the object force-deleted (finalizer cleared) and applied again resumes the
//! same key group and key, and URLs signed before still pass the verifying edge.

use std::time::Duration;

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::{CloudFrontAccount, SigningKeyGroup};
use keyfront::cloudfront::sdk::SdkCloudFront;
use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront as _, KeyGroupConfig, NewPublicKey,
};
use keyfront::emulator::accounts::RequestRecord;
use keyfront::reconcile::names;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::support::rbac::{self, Place};
use crate::support::stack::Stack;
use crate::support::{Cluster, ShowLogOnFailure, data, edge_get, kubectl, ready, repo, wait_for};

const CLUSTER_ID: &str = "tenancy";
const KEYRING_NAMESPACE: &str = "keyfront-system";
const MEDIA_ROLE: &str = "arn:aws:iam::210987654321:role/keyfront-media";
const MEDIA_EXTERNAL_ID: &str = "media-ext-1";

/// How the stack's operator runs: as the chart does, with this suite's cluster ID.
pub(super) const OPERATOR_ARGS: &[&str] = &[
    "--cluster-id",
    CLUSTER_ID,
    "--keyring-namespace",
    KEYRING_NAMESPACE,
    // As the chart runs it, so the Lease calls are audited against the table too.
    "--leader-election",
];

async fn start() -> Stack {
    start_with(OPERATOR_ARGS).await
}

/// A real control plane with three tenants' namespaces, the CRDs and the suite's accounts, the
/// emulator with the tenants' distributions (and a role that demands an external ID), and the
/// operator with `operator_args`.
async fn start_with(operator_args: &[&str]) -> Stack {
    start_on("1", operator_args).await
}

/// [`start_with`], with CloudFront deploying a change in `propagation` seconds.
pub(super) async fn start_on(propagation: &str, operator_args: &[&str]) -> Stack {
    let external_id = format!("{MEDIA_ROLE}={MEDIA_EXTERNAL_ID}");
    Stack::start(
        Cluster::real().await,
        &[
            "--propagation-delay",
            propagation,
            "--distribution",
            "E1TEAMA",
            "--distribution",
            "E2TEAMB",
            "--distribution",
            "E3SHARED=/a/*,/b/*",
            "--require-external-id",
            &external_id,
        ],
        async |cluster, dir| {
            cluster
                .create_namespaces(&[KEYRING_NAMESPACE, "team-a", "team-b", "team-c", "team-m"])
                .await;
            let accounts = dir.join("accounts.yaml");
            std::fs::write(&accounts, ACCOUNTS).unwrap();
            cluster.install_crds().await;
            cluster
                .kubectl(&["apply", "-f", &accounts.to_string_lossy()])
                .await;
        },
        operator_args,
    )
    .await
}

impl Stack {
    /// Applies the suite's accounts with `from` replaced by `to` (as an admin edits them).
    async fn apply_accounts_with(&self, from: &str, to: &str) {
        let edited = ACCOUNTS.replace(from, to);
        assert_ne!(edited, ACCOUNTS, "{from:?} is not in the accounts");
        let file = self
            .dir
            .path()
            .join(format!("accounts-{}.yaml", rand_name()));
        std::fs::write(&file, edited).unwrap();
        let kubeconfig = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            kubectl(&kubeconfig, &["apply", "-f", &file.to_string_lossy()]);
        })
        .await
        .unwrap();
    }

    pub(super) fn objects(&self, namespace: &str) -> Api<SigningKeyGroup> {
        Api::namespaced(self.cluster.client(), namespace)
    }

    pub(super) async fn apply(&self, yaml: &str) {
        let file = self.dir.path().join(format!("{}.yaml", rand_name()));
        std::fs::write(&file, yaml).unwrap();
        let kubeconfig = self.kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            kubectl(&kubeconfig, &["apply", "-f", &file.to_string_lossy()]);
        })
        .await
        .unwrap();
    }

    /// A condition's (status, reason) on `namespace/name`.
    async fn condition(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
    ) -> Option<(String, String)> {
        let object = self.objects(namespace).get_opt(name).await.unwrap()?;
        object
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason))
    }

    pub(super) async fn requests(&self) -> Vec<RequestRecord> {
        crate::support::emulator_requests(self.cf_addr).await
    }

    /// Waits until the emulator has seen no call for `quiet`.
    async fn until_quiet(&self, quiet: Duration) -> usize {
        let mut seen = self.requests().await.len();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.requests().await.len();
            if now == seen {
                return now;
            }
            seen = now;
        }
    }

    /// A CloudFront client acting in the media account, through STS like keyfront.
    async fn media_account(&self) -> SdkCloudFront {
        let endpoint = format!("http://{}", self.cf_addr);
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&endpoint)
            .load()
            .await;
        let role = aws_config::sts::AssumeRoleProvider::builder(MEDIA_ROLE)
            .session_name("tenancy-test")
            .external_id(MEDIA_EXTERNAL_ID)
            .configure(&base)
            .build()
            .await;
        let config = aws_sdk_cloudfront::config::Builder::from(&base)
            .credentials_provider(role)
            .build();
        SdkCloudFront::new(aws_sdk_cloudfront::Client::from_conf(config))
    }
}

/// Sets one annotation on `name`, as `kubectl annotate` does (a change the watch sees).
pub(super) async fn annotate<K>(api: &Api<K>, name: &str, key: &str, value: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
    )
    .await
    .unwrap();
}

pub(super) fn rand_name() -> String {
    format!("m{:016x}", rand::random::<u64>())
}

/// The default account grants E1TEAMA to team-a and E2TEAMB to team-b, admitting only those
/// two namespaces; the media account (another AWS account, through a role) admits team-m and
/// lets it have a key group with no distribution.
const ACCOUNTS: &str = r#"
apiVersion: keyfront.dev/v1alpha1
kind: CloudFrontAccount
metadata:
  name: default
spec:
  allowedNamespaces:
    from: Names
    names: ["team-a", "team-b"]
  distributions:
    - id: E1TEAMA
      allowedNamespaces: {from: Names, names: ["team-a"]}
      defaultCacheBehavior: true
    - id: E2TEAMB
      allowedNamespaces: {from: Names, names: ["team-b"]}
      defaultCacheBehavior: true
    - id: E3SHARED
      allowedNamespaces: {from: Names, names: ["team-a"]}
      pathPatterns: ["/a/*"]
    - id: E3SHARED
      allowedNamespaces: {from: Names, names: ["team-b"]}
      pathPatterns: ["/b/*"]
---
apiVersion: keyfront.dev/v1alpha1
kind: CloudFrontAccount
metadata:
  name: media
spec:
  assumeRole:
    roleArn: arn:aws:iam::210987654321:role/keyfront-media
    externalId: media-ext-1
  allowedNamespaces:
    from: Names
    names: ["team-m"]
  # No distribution here: team-m's key group is attached by the media account's own tooling.
  namespacesWithoutDistributions: Allow
"#;

pub(super) fn object(namespace: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: keyfront.dev/v1alpha1\nkind: SigningKeyGroup\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  key:\n    algorithm: ECDSAP256\n{extra}"
    )
}

const ATTACH_E1: &str = "  distributions:\n    - id: E1TEAMA\n      defaultCacheBehavior: true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_get_only_what_their_account_grants() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());

    // The platform team's own key group already protects E1TEAMA, so detaching team-a later
    // never makes it public.
    let platform_key = stack
        .cf
        .create_public_key(&NewPublicKey {
            name: "platform-key".into(),
            encoded_key: std::fs::read_to_string(repo("tests/fixtures/keys/ec-1.pub.pem")).unwrap(),
            comment: None,
            caller_reference: "platform-key".into(),
        })
        .await
        .unwrap();
    let platform = stack
        .cf
        .create_key_group(&KeyGroupConfig {
            name: "platform".into(),
            comment: None,
            items: vec![platform_key.value.id.clone()],
        })
        .await
        .unwrap();
    let e1 = stack.cf.get_distribution("E1TEAMA").await.unwrap();
    stack
        .cf
        .set_trusted_key_groups(
            "E1TEAMA",
            &[BehaviorTrust {
                behavior: BehaviorSelector::Default,
                trusted_key_groups: vec![platform.value.id.clone()],
            }],
            &e1.etag,
        )
        .await
        .unwrap();

    // team-a: granted, attaches.
    stack.apply(&object("team-a", "site", ATTACH_E1)).await;
    let team_a = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&team_a, "site").await
    })
    .await;
    let team_a_owner = names::owner_token(CLUSTER_ID, "team-a", "site");
    let team_a_group = stack
        .cf
        .list_key_groups()
        .await
        .unwrap()
        .into_iter()
        .find(|g| names::is_owned_comment(g.config.comment.as_deref(), &team_a_owner))
        .expect("team-a's key group")
        .id;
    wait_for(
        "E1TEAMA to trust team-a",
        Duration::from_secs(30),
        async || {
            let d = stack.cf.get_distribution("E1TEAMA").await.unwrap().value;
            d.behaviors[0].trusted_key_groups.contains(&team_a_group)
                && d.status == keyfront::cloudfront::DeploymentStatus::Deployed
        },
    )
    .await;

    // team-b lists team-a's distribution: refused by name, and E1TEAMA is never written.
    let raw = crate::support::raw_cloudfront(stack.cf_addr);
    let before = raw
        .get_distribution_config()
        .id("E1TEAMA")
        .send()
        .await
        .unwrap();
    stack.apply(&object("team-b", "steal", ATTACH_E1)).await;
    wait_for(
        "team-b/steal refused",
        Duration::from_secs(60),
        async || {
            stack
                .condition("team-b", "steal", "DistributionsReady")
                .await
                == Some(("False".into(), "DistributionNotAllowed".into()))
        },
    )
    .await;
    assert_eq!(
        stack.condition("team-b", "steal", "Ready").await,
        Some(("False".into(), "DistributionNotAllowed".into()))
    );
    let steal = stack.objects("team-b").get("steal").await.unwrap();
    let message = steal.status.unwrap().conditions[0].message.clone();
    assert!(
        message.contains("E1TEAMA") && message.contains("team-b"),
        "{message}"
    );
    stack.until_quiet(Duration::from_secs(2)).await;
    let after = raw
        .get_distribution_config()
        .id("E1TEAMA")
        .send()
        .await
        .unwrap();
    assert_eq!(after.e_tag, before.e_tag, "E1TEAMA was written");
    assert_eq!(after.distribution_config, before.distribution_config);

    // team-c is not admitted: no key, no CloudFront call at all.
    let quiet_at = stack.until_quiet(Duration::from_secs(2)).await;
    stack.apply(&object("team-c", "nope", ATTACH_E1)).await;
    wait_for("team-c/nope refused", Duration::from_secs(30), async || {
        stack.condition("team-c", "nope", "Ready").await
            == Some(("False".into(), "NamespaceNotAllowed".into()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during: Vec<RequestRecord> = stack.requests().await.split_off(quiet_at);
    assert!(
        during.is_empty(),
        "CloudFront calls while team-c was refused: {during:?}"
    );
    assert!(
        Api::<Secret>::namespaced(stack.cluster.client(), "team-c")
            .get_opt("nope-cloudfront-key")
            .await
            .unwrap()
            .is_none()
    );

    // team-m works in the media account through AssumeRole.
    stack
        .apply(&object(
            "team-m",
            "media",
            "  accountRef:\n    name: media\n",
        ))
        .await;
    let team_m = stack.objects("team-m");
    wait_for("team-m/media Ready", Duration::from_secs(60), async || {
        ready(&team_m, "media").await
    })
    .await;
    let team_m_owner = names::owner_token(CLUSTER_ID, "team-m", "media");
    let owned = |groups: &[keyfront::cloudfront::KeyGroup]| {
        groups
            .iter()
            .any(|g| names::is_owned_comment(g.config.comment.as_deref(), &team_m_owner))
    };
    let media = stack.media_account().await;
    assert!(
        owned(&media.list_key_groups().await.unwrap()),
        "not in the media account"
    );
    assert!(
        !owned(&stack.cf.list_key_groups().await.unwrap()),
        "in the default account"
    );
    let session = "arn:aws:sts::210987654321:assumed-role/keyfront-media/keyfront-team-m";
    assert!(
        stack
            .requests()
            .await
            .iter()
            .any(|r| r.caller == session && r.operation == "CreateKeyGroup"),
        "the request log does not name the tenant's session"
    );
    let accounts: Api<CloudFrontAccount> = Api::all(stack.cluster.client());
    wait_for(
        "the media account's status",
        Duration::from_secs(30),
        async || {
            accounts
                .get("media")
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.account_id.as_deref() == Some("210987654321"))
        },
    )
    .await;

    // Narrowing team-a's grant: keyfront detaches (the platform group keeps E1 private).
    stack
        .apply(&ACCOUNTS.split("---").next().unwrap().replace(
            "allowedNamespaces: {from: Names, names: [\"team-a\"]}",
            "allowedNamespaces: {from: Names, names: [\"team-z\"]}",
        ))
        .await;
    wait_for(
        "E1TEAMA to let go of team-a",
        Duration::from_secs(60),
        async || {
            let d = stack.cf.get_distribution("E1TEAMA").await.unwrap().value;
            d.behaviors[0].trusted_key_groups == vec![platform.value.id.clone()]
        },
    )
    .await;
    wait_for(
        "team-a/site to say why",
        Duration::from_secs(30),
        async || {
            stack
                .condition("team-a", "site", "DistributionsReady")
                .await
                == Some(("False".into(), "DistributionNotAllowed".into()))
        },
    )
    .await;

    // Keyrings live in the operator's namespace only.
    for namespace in ["team-a", "team-b", "team-c", "team-m"] {
        let keyrings = Api::<Secret>::namespaced(stack.cluster.client(), namespace)
            .list(&ListParams::default().labels("keyfront.dev/role=keyring"))
            .await
            .unwrap();
        assert!(keyrings.items.is_empty(), "a keyring in {namespace}");
    }
    let keyrings = Api::<Secret>::namespaced(stack.cluster.client(), KEYRING_NAMESPACE)
        .list(&ListParams::default().labels("keyfront.dev/role=keyring"))
        .await
        .unwrap();
    assert_eq!(
        keyrings.items.len(),
        3,
        "team-a, team-b and team-m each have one"
    );

    // Every request the operator sent is one the chart's roles are checked to grant.
    let mut operator_calls = 0;
    for call in stack.cluster.audit() {
        // The operator's own requests, by its user agent (the API server's controllers, kubectl
        // and this test's client have theirs).
        if !call
            .user_agent
            .as_deref()
            .is_some_and(|a| a.starts_with("keyfront/"))
        {
            continue;
        }
        operator_calls += 1;
        let place = match call.namespace.as_deref() {
            _ if [
                "namespaces",
                "cloudfrontaccounts",
                "cloudfrontaccounts/status",
            ]
            .contains(&call.resource.as_str()) =>
            {
                Place::Cluster
            }
            Some(KEYRING_NAMESPACE)
                if ["leases", "configmaps"].contains(&call.resource.as_str()) =>
            {
                Place::Lease
            }
            Some(KEYRING_NAMESPACE) => Place::Keyring,
            _ => Place::Tenant,
        };
        assert!(
            rbac::in_table(&call.group, &call.resource, &call.verb, place),
            "the operator called {call:?}, which tests/it/support/rbac.rs (and so the chart) does not grant"
        );
    }
    assert!(
        operator_calls > 50,
        "only {operator_calls} operator calls were audited"
    );
    assert!(
        stack
            .cluster
            .audit()
            .iter()
            .any(|c| c.resource == "leases" && c.verb == "update"),
        "the leader never renewed its Lease"
    );
}

/// Signs `path` on `host` with the key in `secret`, valid for 10 minutes.
pub(super) fn sign(secret: &Secret, host: &str, path: &str) -> String {
    let signer = keyfront::signer::Signer::from_pem(
        data(secret, "private_key.pem").as_bytes(),
        &data(secret, "key_pair_id"),
        None,
    )
    .unwrap();
    let url = format!("https://{host}{path}");
    let expires = jiff::Timestamp::now().as_second() + 600;
    let signed = signer
        .sign_url(&url, &keyfront::signer::Policy::canned(&url, expires))
        .unwrap();
    signed[signed.find(path).unwrap()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_object_resumes_its_own_key_group_and_keys() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    let manifest = object("team-a", "site", ATTACH_E1);
    stack.apply(&manifest).await;
    let objects = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&objects, "site").await
    })
    .await;
    let host = crate::support::domain_name(stack.cf_addr, "E1TEAMA").await;
    wait_for(
        "the edge to protect E1TEAMA",
        Duration::from_secs(30),
        async || edge_get(stack.edge, &host, "/unsigned").await == 403,
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "team-a");
    let secret = secrets.get("site-cloudfront-key").await.unwrap();
    let signed_before = sign(&secret, &host, "/video/1.ts");
    wait_for(
        "the signed URL to pass",
        Duration::from_secs(30),
        async || edge_get(stack.edge, &host, &signed_before).await == 200,
    )
    .await;
    let before = objects.get("site").await.unwrap();
    let group_before = before
        .status
        .as_ref()
        .unwrap()
        .key_group_id
        .clone()
        .unwrap();

    // Lost: the object goes without its finalizer running (as a namespace wiped and restored
    // from backup would); its Secret is garbage-collected with it.
    objects
        .patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    objects.delete("site", &Default::default()).await.unwrap();
    // A real garbage collector finds a new CRD's objects on its discovery pass (every 30 s).
    wait_for(
        "the object and its Secret to go",
        Duration::from_secs(90),
        async || {
            objects.get_opt("site").await.unwrap().is_none()
                && secrets
                    .get_opt("site-cloudfront-key")
                    .await
                    .unwrap()
                    .is_none()
        },
    )
    .await;

    // Restored from the same manifest: a new UID, the same identity.
    stack.apply(&manifest).await;
    wait_for(
        "team-a/site Ready again",
        Duration::from_secs(60),
        async || ready(&objects, "site").await,
    )
    .await;
    let after = objects.get("site").await.unwrap();
    assert_ne!(after.uid(), before.uid());
    assert_eq!(
        after.status.as_ref().unwrap().key_group_id.as_ref(),
        Some(&group_before)
    );
    let restored = secrets.get("site-cloudfront-key").await.unwrap();
    assert_eq!(data(&restored, "key_pair_id"), data(&secret, "key_pair_id"));
    let owner = names::owner_token(CLUSTER_ID, "team-a", "site");
    let groups: Vec<_> = stack
        .cf
        .list_key_groups()
        .await
        .unwrap()
        .into_iter()
        .filter(|g| names::is_owned_comment(g.config.comment.as_deref(), &owner))
        .collect();
    assert_eq!(groups.len(), 1, "a second key group: {groups:?}");
    let keys: Vec<String> = stack
        .cf
        .list_public_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| names::serial_of_public_key(&owner, &k.name).is_some())
        .map(|k| k.id)
        .collect();
    assert_eq!(keys, groups[0].config.items, "an orphaned public key");
    assert_eq!(edge_get(stack.edge, &host, &signed_before).await, 200);
}

/// The attack from the isolation issue: team-a's object is deleted with `Retain`, the namespace
/// is deleted, and a namespace of the same name is created again (another tenant could be
/// handed it) with an object of the same name. The new namespace never gets the old key, the old
/// team's content stays refused to anything the new tenant holds, and the account lists the
/// keyring no object claims. Then a cluster admin says it is the same tenant, and it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_namespace_never_inherits_the_old_tenants_key() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    let retained = object(
        "team-a",
        "site",
        &format!("  deletionPolicy: Retain\n{ATTACH_E1}"),
    );
    stack.apply(&retained).await;
    let objects = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&objects, "site").await
    })
    .await;
    let host = crate::support::domain_name(stack.cf_addr, "E1TEAMA").await;
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "team-a");
    let old_secret = secrets.get("site-cloudfront-key").await.unwrap();
    let old_key = data(&old_secret, "private_key.pem");
    let signed_by_old_team = sign(&old_secret, &host, "/video/1.ts");
    wait_for(
        "the old team's URL to pass",
        Duration::from_secs(30),
        async || edge_get(stack.edge, &host, &signed_by_old_team).await == 200,
    )
    .await;

    // The namespace goes (keyfront lets the object go under Retain), then comes back.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(stack.cluster.client());
    let old_uid = namespaces.get("team-a").await.unwrap().uid().unwrap();
    namespaces
        .delete("team-a", &Default::default())
        .await
        .unwrap();
    wait_for(
        "namespace team-a to go",
        Duration::from_secs(60),
        async || namespaces.get_opt("team-a").await.unwrap().is_none(),
    )
    .await;
    stack.cluster.create_namespaces(&["team-a"]).await;
    let new_uid = namespaces.get("team-a").await.unwrap().uid().unwrap();
    assert_ne!(new_uid, old_uid);
    stack.apply(&object("team-a", "site", ATTACH_E1)).await;
    wait_for(
        "team-a/site to say the keyring is another namespace's",
        Duration::from_secs(60),
        async || {
            stack.condition("team-a", "site", "Ready").await
                == Some(("False".into(), "KeyringOfAnotherNamespace".into()))
        },
    )
    .await;
    let requests_then = stack.until_quiet(Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        secrets
            .get_opt("site-cloudfront-key")
            .await
            .unwrap()
            .is_none(),
        "nothing is written into the new namespace"
    );
    let leaked = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|s| {
            s.data
                .as_ref()
                .is_some_and(|d| d.values().any(|v| v.0 == old_key.as_bytes()))
        });
    assert!(
        !leaked,
        "the old team's private key is in the new namespace"
    );
    let since: Vec<_> = stack.requests().await[requests_then..]
        .iter()
        .filter(|r| r.operation != "ListKeyGroups")
        .map(|r| r.operation.clone())
        .collect();
    assert!(
        since.is_empty(),
        "CloudFront calls for the foreign keyring: {since:?}"
    );
    // The old team's content: still refused unsigned, still open to its own URLs only.
    assert_eq!(edge_get(stack.edge, &host, "/video/1.ts").await, 403);
    assert_eq!(edge_get(stack.edge, &host, &signed_by_old_team).await, 200);

    // The account lists the keyring no object claims (checked again on any account change).
    let accounts: Api<CloudFrontAccount> = Api::all(stack.cluster.client());
    annotate(&accounts, "default", "example.com/nudge", "1").await;
    let keyring = names::keyring_secret_name(&names::owner_token(CLUSTER_ID, "team-a", "site"));
    wait_for(
        "the account to list the unclaimed keyring",
        Duration::from_secs(30),
        async || {
            accounts
                .get("default")
                .await
                .unwrap()
                .status
                .is_some_and(|s| {
                    s.unclaimed_keyrings.iter().any(|u| {
                        u.secret == keyring
                            && u.object == "team-a/site"
                            && u.reason.contains("created again")
                    })
                })
        },
    )
    .await;

    // A cluster admin says it is the same tenant: the object resumes the same key.
    let keyrings: Api<Secret> = Api::namespaced(stack.cluster.client(), KEYRING_NAMESPACE);
    annotate(&keyrings, &keyring, names::RESUME_ANNOTATION, &new_uid).await;
    annotate(&objects, "site", "example.com/nudge", "1").await;
    wait_for(
        "team-a/site Ready after the admin's word",
        Duration::from_secs(60),
        async || ready(&objects, "site").await,
    )
    .await;
    let resumed = secrets.get("site-cloudfront-key").await.unwrap();
    assert_eq!(
        data(&resumed, "key_pair_id"),
        data(&old_secret, "key_pair_id")
    );
}

/// A distribution attached to the key group outside keyfront (by boto3, as Terraform would, by
/// the ID in status) is found with ListDistributionsByKeyGroup and waited for: an app signing with
/// whatever the Secret holds is never rejected there through a rotation, and keyfront never
/// writes that distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distribution_attached_outside_keyfront_is_waited_for_through_a_rotation() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack.apply(&object("team-a", "ext", "")).await;
    let objects = stack.objects("team-a");
    wait_for("team-a/ext Ready", Duration::from_secs(60), async || {
        ready(&objects, "ext").await
    })
    .await;
    let status = objects.get("ext").await.unwrap().status.unwrap();
    let group = status.key_group_id.clone().unwrap();

    // "Terraform" (boto3) attaches the group to E1TEAMA by the ID in status (granted to team-a,
    // not in the spec).
    terraform_attaches(&stack, "E1TEAMA", &group);
    let host = crate::support::domain_name(stack.cf_addr, "E1TEAMA").await;
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "team-a");
    wait_for(
        "E1TEAMA to verify the first key",
        Duration::from_secs(30),
        async || {
            let secret = secrets.get("ext-cloudfront-key").await.unwrap();
            edge_get(stack.edge, &host, &sign(&secret, &host, "/v/0.ts")).await == 200
        },
    )
    .await;
    let updates_before = stack
        .requests()
        .await
        .iter()
        .filter(|r| r.operation == "UpdateDistribution")
        .count();

    let (sent, rejected) =
        sign_through_a_rotation(&stack, "team-a", "ext", "ext-cloudfront-key", &host).await;
    println!(
        "{sent} signed requests through a rotation on an externally attached distribution, {rejected} rejected"
    );
    assert_eq!(rejected, 0, "requests rejected at the edge of E1TEAMA");
    let updates_after = stack
        .requests()
        .await
        .iter()
        .filter(|r| r.operation == "UpdateDistribution")
        .count();
    assert_eq!(
        updates_after, updates_before,
        "keyfront wrote a distribution it does not own"
    );
}

/// Terraform owns the distribution (`trust: External`): keyfront says it waits for the owner,
/// boto3 (playing Terraform) attaches the group by the ID read from status, and then three
/// rotations each switch the Secret only once that distribution verifies the new key: not one
/// signed request is refused, and keyfront never calls UpdateDistribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distribution_its_owner_attaches_is_never_written_and_rotates_without_a_rejected_request()
{
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack
        .apply(&object(
            "team-a",
            "iac",
            "  keyGroup:\n    idConfigMap: iac-key-group\n  distributions:\n    - id: E1TEAMA\n      defaultCacheBehavior: true\n      trust: External\n",
        ))
        .await;
    wait_for(
        "team-a/iac to wait for the owner's attachment",
        Duration::from_secs(60),
        async || {
            stack.condition("team-a", "iac", "DistributionsReady").await
                == Some(("False".into(), "AwaitingExternalAttachment".into()))
        },
    )
    .await;
    let objects = stack.objects("team-a");
    let group = objects
        .get("iac")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id
        .expect("the key group ID is in status before the owner attaches");
    // Terraform reads it where `kubernetes_config_map` would: the ConfigMap the spec names.
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(stack.cluster.client(), "team-a");
    let mut published = None;
    wait_for("the ID's ConfigMap", Duration::from_secs(30), async || {
        published = config_maps
            .get_opt("iac-key-group")
            .await
            .unwrap()
            .and_then(|c| c.data)
            .and_then(|d| d.get("keyGroupId").cloned());
        published.is_some()
    })
    .await;
    assert_eq!(published.as_deref(), Some(group.as_str()));

    terraform_attaches(&stack, "E1TEAMA", published.as_deref().unwrap());
    wait_for("team-a/iac Ready", Duration::from_secs(120), async || {
        ready(&objects, "iac").await
    })
    .await;
    let host = crate::support::domain_name(stack.cf_addr, "E1TEAMA").await;
    let (mut sent, mut rejected) = (0, 0);
    for _ in 0..3 {
        let (s, r) =
            sign_through_a_rotation(&stack, "team-a", "iac", "iac-cloudfront-key", &host).await;
        sent += s;
        rejected += r;
    }
    // keyfront's own calls (its user agent names the replica as `app/<name>`), not boto3's.
    let by_keyfront: Vec<_> = stack
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("app/"))
        })
        .collect();
    assert!(
        by_keyfront.iter().any(|r| r.operation == "CreatePublicKey"),
        "keyfront's calls are told apart by their user agent"
    );
    let updates = by_keyfront
        .iter()
        .filter(|r| r.operation == "UpdateDistribution" || r.operation == "GetDistributionConfig")
        .count();
    println!(
        "trust: External: {sent} signed requests through 3 rotations, {rejected} rejected, {updates} distribution writes by keyfront"
    );
    assert_eq!(rejected, 0, "requests rejected at the edge of E1TEAMA");
    assert_eq!(
        updates, 0,
        "keyfront wrote a distribution its owner attaches"
    );
}

/// Two clusters that claim one cluster ID in one AWS account: a public key another cluster
/// made under this object's identity (same name and marker, another install claim) stops the
/// object, and keyfront touches nothing. Its own lost record is another matter: a keyring
/// deleted by hand is rebuilt from its own keys, which carry this cluster's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_another_writer_removes_is_warned_about_and_reattached_after_a_pause() {
    // Changes by others are seen at a resync once the remembered read is stale: both short.
    let args = [
        OPERATOR_ARGS,
        &["--resync", "3s", "--distribution-resync", "1s"],
    ]
    .concat();
    let stack = start_with(&args).await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack.apply(&object("team-a", "fought", ATTACH_E1)).await;
    let objects = stack.objects("team-a");
    wait_for("team-a/fought Ready", Duration::from_secs(60), async || {
        ready(&objects, "fought").await
    })
    .await;
    let group = objects
        .get("fought")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id
        .unwrap();

    // Terraform applies a config that lacks keyfront's group.
    terraform_sets_trust(&stack, "E1TEAMA", &[]);
    let removed_at = std::time::Instant::now();
    wait_for(
        "DistributionsReady=False TrustRemovedByAnotherWriter",
        Duration::from_secs(60),
        async || {
            stack
                .condition("team-a", "fought", "DistributionsReady")
                .await
                == Some(("False".into(), "TrustRemovedByAnotherWriter".into()))
        },
    )
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(stack.cluster.client(), "team-a");
    let mut warning = None;
    wait_for("a Warning Event", Duration::from_secs(30), async || {
        warning = events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("TrustRemovedByAnotherWriter")
                    && e.type_.as_deref() == Some("Warning")
            });
        warning.is_some()
    })
    .await;
    let note = warning.unwrap().note.unwrap_or_default();
    assert!(note.contains("trust: External"), "{note}");
    assert!(note.contains(&group), "{note}");

    // Not at once (no fight in a loop), but after the first pause: attached again.
    assert!(
        !trusted_by(&stack, "E1TEAMA", &BehaviorSelector::Default)
            .await
            .contains(&group)
    );
    wait_for(
        "the group attached again",
        Duration::from_secs(90),
        async || {
            trusted_by(&stack, "E1TEAMA", &BehaviorSelector::Default)
                .await
                .contains(&group)
        },
    )
    .await;
    let waited = removed_at.elapsed();
    assert!(
        waited >= keyfront::reconcile::plan::REATTACH_FIRST_PAUSE - Duration::from_secs(1),
        "re-attached after {waited:?}, before the first pause"
    );
    wait_for(
        "team-a/fought Ready again",
        Duration::from_secs(60),
        async || ready(&objects, "fought").await,
    )
    .await;
    println!("removed by another writer; re-attached after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_keys_under_our_identity_are_detected_and_our_own_lost_record_is_not() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    // The other cluster (also run with --cluster-id tenancy) made team-a/twin's first key.
    let owner = names::owner_token(CLUSTER_ID, "team-a", "twin");
    let foreign = stack
        .cf
        .create_public_key(&NewPublicKey {
            name: names::public_key_name(&owner, 1),
            encoded_key: std::fs::read_to_string(repo("tests/fixtures/keys/ec-1.pub.pem")).unwrap(),
            comment: Some(names::public_key_comment(&owner, "0123456789ab")),
            caller_reference: "other-cluster".into(),
        })
        .await
        .unwrap();
    let quiet_before = stack.until_quiet(Duration::from_secs(2)).await;
    stack.apply(&object("team-a", "twin", "")).await;
    wait_for(
        "team-a/twin to report the other cluster",
        Duration::from_secs(60),
        async || {
            stack.condition("team-a", "twin", "Ready").await
                == Some(("False".into(), "IdentityClaimedByAnotherCluster".into()))
        },
    )
    .await;
    let writes: Vec<String> = stack.requests().await[quiet_before..]
        .iter()
        .filter(|r| crate::support::is_cloudfront_write(&r.operation))
        .map(|r| r.operation.clone())
        .collect();
    assert!(writes.is_empty(), "keyfront wrote: {writes:?}");
    assert!(stack.cf.get_public_key(&foreign.value.id).await.is_ok());

    // Our own object, its keyring deleted by hand: rebuilt, Ready again with the same group.
    stack.apply(&object("team-a", "site", ATTACH_E1)).await;
    let objects = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&objects, "site").await
    })
    .await;
    let group = objects
        .get("site")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id;
    let keyrings: Api<Secret> = Api::namespaced(stack.cluster.client(), KEYRING_NAMESPACE);
    let keyring = names::keyring_secret_name(&names::owner_token(CLUSTER_ID, "team-a", "site"));
    keyrings
        .delete(&keyring, &Default::default())
        .await
        .unwrap();
    annotate(&objects, "site", "example.com/nudge", "1").await;
    wait_for(
        "the keyring to be rebuilt",
        Duration::from_secs(60),
        async || keyrings.get_opt(&keyring).await.unwrap().is_some(),
    )
    .await;
    wait_for(
        "team-a/site Ready again",
        Duration::from_secs(60),
        async || ready(&objects, "site").await,
    )
    .await;
    let after = objects.get("site").await.unwrap().status.unwrap();
    assert_eq!(after.key_group_id, group);
    assert!(
        after
            .conditions
            .iter()
            .all(|c| c.reason != "IdentityClaimedByAnotherCluster"),
        "{:?}",
        after.conditions
    );
}

/// The trust E3SHARED's behavior `pattern` has now.
/// The key groups `behavior` of `distribution` trusts now.
async fn trusted_by(stack: &Stack, distribution: &str, behavior: &BehaviorSelector) -> Vec<String> {
    stack
        .cf
        .get_distribution(distribution)
        .await
        .unwrap()
        .value
        .behavior(behavior)
        .unwrap()
        .trusted_key_groups
        .clone()
}

/// The key groups the behavior `pattern` of E3SHARED trusts now.
pub(super) async fn trusted_on(stack: &Stack, pattern: &str) -> Vec<String> {
    trusted_by(
        stack,
        "E3SHARED",
        &BehaviorSelector::PathPattern(pattern.into()),
    )
    .await
}

/// One distribution split by behavior between two teams: neither can attach to the other's
/// behavior, with or without a `*` entry. Then team-a's grant is withdrawn where detaching
/// would make `/a/*` public: its group is frozen, and a requested rotation creates no public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distribution_split_by_behavior_and_a_withdrawn_grant_that_freezes() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    let split = |patterns: &str| {
        format!("  distributions:\n    - id: E3SHARED\n      pathPatterns: [{patterns}]\n")
    };
    stack
        .apply(&object("team-b", "b", &split("\"/b/*\"")))
        .await;
    wait_for("team-b/b Ready", Duration::from_secs(60), async || {
        ready(&stack.objects("team-b"), "b").await
    })
    .await;
    let group_b = stack
        .objects("team-b")
        .get("b")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id
        .unwrap();
    // team-a asks for its own behavior and team-b's.
    stack
        .apply(&object("team-a", "a", &split("\"/a/*\", \"/b/*\"")))
        .await;
    // Attached in CloudFront first, then reported in the status.
    wait_for(
        "team-a/a to attach /a/* and say so",
        Duration::from_secs(60),
        async || {
            let reported = stack.objects("team-a").get("a").await.unwrap().status;
            trusted_on(&stack, "/a/*").await.len() == 1
                && reported.is_some_and(|s| s.key_group_id.is_some())
        },
    )
    .await;
    let group_a = stack
        .objects("team-a")
        .get("a")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id
        .unwrap();
    assert_eq!(
        trusted_on(&stack, "/a/*").await,
        std::slice::from_ref(&group_a)
    );
    assert_eq!(
        trusted_on(&stack, "/b/*").await,
        std::slice::from_ref(&group_b)
    );
    assert_eq!(
        stack.condition("team-a", "a", "DistributionsReady").await,
        Some(("False".into(), "CacheBehaviorNotAllowed".into()))
    );

    // A `*` entry does not widen the entries that name E3SHARED.
    stack
        .apply_accounts_with(
            "    - id: E3SHARED\n      allowedNamespaces: {from: Names, names: [\"team-a\"]}",
            "    - id: \"*\"\n      pathPatterns: [\"*\"]\n    - id: E3SHARED\n      allowedNamespaces: {from: Names, names: [\"team-a\"]}",
        )
        .await;
    stack.until_quiet(Duration::from_secs(3)).await;
    assert_eq!(
        trusted_on(&stack, "/b/*").await,
        std::slice::from_ref(&group_b),
        "team-a reached /b/* through *"
    );

    // team-a now asks only for /a/*; then the admin withdraws team-a's share of E3SHARED.
    // Detaching would leave /a/* public, and nobody allowed that: the group is frozen.
    stack
        .apply(&object("team-a", "a", &split("\"/a/*\"")))
        .await;
    stack
        .apply_accounts_with(
            "    - id: E3SHARED\n      allowedNamespaces: {from: Names, names: [\"team-a\"]}",
            "    - id: E3SHARED\n      allowedNamespaces: {from: Names, names: []}",
        )
        .await;
    wait_for(
        "team-a/a to be frozen",
        Duration::from_secs(60),
        async || {
            stack.condition("team-a", "a", "Rotating").await
                == Some(("False".into(), "RotationFrozen".into()))
        },
    )
    .await;
    let since = stack.until_quiet(Duration::from_secs(2)).await;
    annotate(
        &stack.objects("team-a"),
        "a",
        names::ROTATE_ANNOTATION,
        "now",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let created: usize = stack.requests().await[since..]
        .iter()
        .filter(|r| r.operation == "CreatePublicKey")
        .count();
    println!("public keys created for the frozen group after a requested rotation: {created}");
    assert_eq!(created, 0);
    assert_eq!(
        trusted_on(&stack, "/a/*").await,
        [group_a],
        "the behavior stays protected"
    );
    assert_eq!(
        stack.condition("team-a", "a", "DistributionsReady").await,
        Some(("False".into(), "DistributionNotAllowed".into()))
    );
}

/// `team`/`a-x` and `team-a`/`x` shared the default key group name `team-a-x` before 0.2 (the
/// second was refused as taken, or could squat the first's name). Now both become Ready with
/// distinct groups, named `<namespace>_<name>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_whose_old_default_names_collided_both_become_ready_with_distinct_groups() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack.cluster.create_namespaces(&["team"]).await;
    stack
        .apply_accounts_with(
            "    names: [\"team-a\", \"team-b\"]",
            "    names: [\"team-a\", \"team-b\", \"team\"]\n  namespacesWithoutDistributions: Allow",
        )
        .await;
    stack.apply(&object("team", "a-x", "")).await;
    stack.apply(&object("team-a", "x", "")).await;
    for (namespace, name) in [("team", "a-x"), ("team-a", "x")] {
        wait_for(
            &format!("{namespace}/{name} Ready"),
            Duration::from_secs(60),
            async || ready(&stack.objects(namespace), name).await,
        )
        .await;
    }
    let status = async |namespace: &str, name: &str| {
        stack
            .objects(namespace)
            .get(name)
            .await
            .unwrap()
            .status
            .unwrap()
    };
    let (first, second) = (status("team", "a-x").await, status("team-a", "x").await);
    assert_ne!(first.key_group_id, second.key_group_id);
    assert_eq!(first.key_group_name.as_deref(), Some("team_a-x"));
    assert_eq!(second.key_group_name.as_deref(), Some("team-a_x"));
}

/// boto3, playing Terraform, attaches `group` to the default behavior of `distribution`.
fn terraform_attaches(stack: &Stack, distribution: &str, group: &str) {
    terraform_sets_trust(stack, distribution, &[group]);
}

/// boto3, playing Terraform, sets the default behavior of `distribution` to trust exactly
/// `groups`.
fn terraform_sets_trust(stack: &Stack, distribution: &str, groups: &[&str]) {
    let endpoint = format!("http://{}", stack.cf_addr);
    let args: Vec<&str> = [endpoint.as_str(), distribution]
        .into_iter()
        .chain(groups.iter().copied())
        .collect();
    crate::support::python_script("attach_key_group.py", &args);
}

/// Signs with whatever the Secret holds, as fast as it can, until a rotation has switched it
/// and 3 s more; returns (sent, rejected).
async fn sign_through_a_rotation(
    stack: &Stack,
    namespace: &str,
    name: &str,
    secret_name: &str,
    host: &str,
) -> (usize, usize) {
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), namespace);
    let first = data(&secrets.get(secret_name).await.unwrap(), "key_pair_id");
    annotate(
        &stack.objects(namespace),
        name,
        names::ROTATE_ANNOTATION,
        &rand_name(),
    )
    .await;
    let (mut sent, mut rejected, mut rotated_at) = (0, 0, None::<std::time::Instant>);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let secret = secrets.get(secret_name).await.unwrap();
        let path = format!("/v/{sent}.ts");
        if edge_get(stack.edge, host, &sign(&secret, host, &path)).await != 200 {
            rejected += 1;
        }
        sent += 1;
        if rotated_at.is_none() && data(&secret, "key_pair_id") != first {
            rotated_at = Some(std::time::Instant::now());
        }
        if rotated_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            return (sent, rejected);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{namespace}/{name} did not rotate within 60 s");
}

/// An install from before 0.2 keeps working under this build: the default cluster ID
/// `default`, a key group under the old default name, a keyring with neither the namespace
/// UID nor the name recorded, and no identity record. (Made here by running this build as 0.1
/// ran and stripping what 0.2 adds.) The upgrade creates no public key or key group, writes no
/// distribution, and a rotation after it rejects no request at the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_from_before_0_2_upgrades_in_place() {
    let mut stack = start_with(&[
        "--cluster-id",
        "default",
        "--keyring-namespace",
        KEYRING_NAMESPACE,
    ])
    .await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack
        .apply(&object(
            "team-a",
            "site",
            &format!("  keyGroup:\n    name: team-a-site\n{ATTACH_E1}"),
        ))
        .await;
    let objects = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&objects, "site").await
    })
    .await;
    let group = objects
        .get("site")
        .await
        .unwrap()
        .status
        .unwrap()
        .key_group_id;
    stack.operator = None;

    // What 0.1 left behind.
    let keyrings: Api<Secret> = Api::namespaced(stack.cluster.client(), KEYRING_NAMESPACE);
    let name = names::keyring_secret_name(&names::owner_token("default", "team-a", "site"));
    let mut keyring = keyrings.get(&name).await.unwrap();
    let record = keyring
        .data
        .as_mut()
        .unwrap()
        .get_mut("keyring.json")
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&record.0).unwrap();
    let fields = json.as_object_mut().unwrap();
    assert!(fields.remove("madeFor").is_some() && fields.remove("keyGroupName").is_some());
    record.0 = serde_json::to_vec(&json).unwrap();
    let annotations = keyring.metadata.annotations.as_mut().unwrap();
    annotations.remove(names::ACCOUNT_ANNOTATION);
    annotations.remove(names::NAMESPACE_UID_ANNOTATION);
    keyrings
        .replace(&name, &Default::default(), &keyring)
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        stack.cluster.client(),
        KEYRING_NAMESPACE,
    )
    .delete(
        keyfront::runtime::identity::IDENTITY_CONFIG_MAP,
        &Default::default(),
    )
    .await
    .unwrap();
    // The name was the default then: pinned names may be unpinned to the name in effect.
    objects
        .patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keyGroup": {"name": null}}})),
        )
        .await
        .unwrap();
    objects
        .patch_status(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"keyGroupName": null, "secretName": null}})),
        )
        .await
        .unwrap();
    let before = stack.requests().await.len();

    // The upgrade: this build, started as the chart now starts it (no --cluster-id).
    stack.run_operator(&[
        "--keyring-namespace",
        KEYRING_NAMESPACE,
        "--leader-election",
    ]);
    wait_for(
        "the keyring to record its namespace",
        Duration::from_secs(60),
        async || {
            keyrings
                .get(&name)
                .await
                .unwrap()
                .annotations()
                .contains_key(names::NAMESPACE_UID_ANNOTATION)
        },
    )
    .await;
    // Ready is still True from before the upgrade, and the keyring is saved before the status
    // is written: wait for the status this build writes (it records the name in effect).
    wait_for(
        "team-a/site Ready, as this build reports it",
        Duration::from_secs(60),
        async || {
            ready(&objects, "site").await
                && objects
                    .get("site")
                    .await
                    .unwrap()
                    .status
                    .is_some_and(|s| s.key_group_name.is_some())
        },
    )
    .await;
    let status = objects.get("site").await.unwrap().status.unwrap();
    assert_eq!(status.key_group_id, group);
    assert_eq!(status.key_group_name.as_deref(), Some("team-a-site"));
    let recorded = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        stack.cluster.client(),
        KEYRING_NAMESPACE,
    )
    .get(keyfront::runtime::identity::IDENTITY_CONFIG_MAP)
    .await
    .unwrap();
    assert_eq!(recorded.data.unwrap()["clusterId"], "default");
    let writes: Vec<String> = stack.requests().await[before..]
        .iter()
        .filter(|r| crate::support::is_cloudfront_write(&r.operation))
        .map(|r| r.operation.clone())
        .collect();
    assert!(
        writes.is_empty(),
        "the upgrade wrote to CloudFront: {writes:?}"
    );

    let host = crate::support::domain_name(stack.cf_addr, "E1TEAMA").await;
    let (sent, rejected) =
        sign_through_a_rotation(&stack, "team-a", "site", "site-cloudfront-key", &host).await;
    println!("after the upgrade: {sent} signed requests through a rotation, {rejected} rejected");
    assert_eq!(rejected, 0);
}

/// Issue 20's attack, on the release path: team-b floods the account team-a shares with 8
/// objects. team-b holds at most its share of the account (10 keys ÷ 2 admitted namespaces),
/// with a key left for its own rotations; the rest are `AccountCapacityExceeded`, naming the
/// share, with nothing created; and team-a's emergency revocation still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_namespace_cannot_fill_the_account_or_block_a_revocation() {
    use keyfront::reconcile::reasons;
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    stack.apply(&object("team-a", "site", ATTACH_E1)).await;
    let team_a = stack.objects("team-a");
    wait_for("team-a/site Ready", Duration::from_secs(60), async || {
        ready(&team_a, "site").await
    })
    .await;

    let flood: Vec<String> = (0..8).map(|n| format!("flood-{n}")).collect();
    for name in &flood {
        stack.apply(&object("team-b", name, "")).await;
    }
    let settled = async || {
        let mut reasons_seen = Vec::new();
        for name in &flood {
            reasons_seen.push(stack.condition("team-b", name, reasons::READY).await);
        }
        reasons_seen
    };
    wait_for(
        "every flood object admitted or refused",
        Duration::from_secs(90),
        async || {
            settled().await.iter().all(|r| {
                r.as_ref().is_some_and(|(_, reason)| {
                    reason == reasons::SIGNING_KEY_ACTIVE
                        || reason == reasons::ACCOUNT_CAPACITY_EXCEEDED
                })
            })
        },
    )
    .await;
    let outcome = settled().await;
    let admitted = outcome
        .iter()
        .filter(|r| r.as_ref().is_some_and(|(s, _)| s == "True"))
        .count();
    let keys = stack.cf.list_public_keys().await.unwrap().len();
    // team-a's key and one per admitted object: team-b's share is 5, one left for rotations.
    assert_eq!(keys, 1 + admitted, "{outcome:?}");
    assert_eq!(admitted, 4, "{outcome:?}");
    let refused = stack
        .objects("team-b")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .flat_map(|o| o.status.unwrap().conditions)
        .find(|c| c.reason == reasons::ACCOUNT_CAPACITY_EXCEEDED)
        .unwrap();
    assert!(
        refused
            .message
            .contains("namespace \"team-b\" holds 4 of the 5 public keys"),
        "{}",
        refused.message
    );

    // team-a revokes its signing key: the successor takes a free key, the revoked one leaves.
    let revoked = team_a
        .get("site")
        .await
        .unwrap()
        .status
        .unwrap()
        .active_key_id
        .unwrap();
    annotate(&team_a, "site", names::REVOKE_ANNOTATION, &revoked).await;
    wait_for(
        "team-a's revoked key gone",
        Duration::from_secs(90),
        async || {
            let listed = stack.cf.list_public_keys().await.unwrap();
            let status = team_a.get("site").await.unwrap().status.unwrap();
            !listed.iter().any(|k| k.id == revoked)
                && status.active_key_id.is_some_and(|k| k != revoked)
                && ready(&team_a, "site").await
        },
    )
    .await;
    // The account's usage follows every key keyfront makes or deletes, not minutes later.
    let accounts: Api<CloudFrontAccount> = Api::all(stack.cluster.client());
    let usage_shown = std::time::Instant::now();
    wait_for(
        "kubectl get cfa to show the account's keys",
        Duration::from_secs(20),
        async || {
            let listed = stack.cf.list_public_keys().await.unwrap().len();
            let status = accounts.get("default").await.unwrap().status.unwrap();
            status
                .usage
                .is_some_and(|u| u.public_keys as usize == listed)
        },
    )
    .await;
    println!(
        "flood: {admitted} of {} admitted, {keys} public keys; team-a's revocation done; the account's usage caught up {:.1} s after",
        flood.len(),
        usage_shown.elapsed().as_secs_f64()
    );
}
