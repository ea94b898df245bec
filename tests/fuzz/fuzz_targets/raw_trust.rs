//! The raw-XML trust patch keyfront applies to CloudFront's `GetDistributionConfig` bodies:
//! any body is patched or refused, never a panic or unbounded work; patching is idempotent (the
//! same change twice gives the same bytes); and outside the behaviors' `TrustedKeyGroups`
//! nothing moves, so a body patched to trust nothing and one patched to trust a group differ
//! only there.
#![no_main]

use keyfront::cloudfront::sdk::raw_trust::patch;
use keyfront::cloudfront::{BehaviorSelector, BehaviorTrust};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let change = |groups: &[&str]| {
        [BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }]
    };
    let Ok(once) = patch(body, &change(&["KG1"])) else {
        return;
    };
    let twice = patch(&once, &change(&["KG1"])).expect("a patched body patches again");
    assert_eq!(once, twice, "patching is not idempotent");
    let none = patch(body, &change(&[])).expect("the same body patches with no group");
    let (shorter, longer) = if none.len() <= once.len() { (&none, &once) } else { (&once, &none) };
    let prefix = shorter.iter().zip(longer.iter()).take_while(|(a, b)| a == b).count();
    let suffix = shorter[prefix..]
        .iter()
        .rev()
        .zip(longer[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    // The two patches differ in one place: the default behavior's TrustedKeyGroups.
    let differing = &longer[prefix..longer.len() - suffix];
    const TRUSTING: &str = "<TrustedKeyGroups><Enabled>true</Enabled><Quantity>1</Quantity><Items><KeyGroup>KG1</KeyGroup></Items></TrustedKeyGroups>";
    assert!(
        differing.len() <= TRUSTING.len(),
        "the patches differ beyond the trust element: {}",
        String::from_utf8_lossy(differing)
    );
});
