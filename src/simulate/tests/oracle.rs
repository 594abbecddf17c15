//! Tests of the offered-set oracle: conflict rules, bundles, groups, machine profiles.

use std::collections::HashSet;

use uuid::Uuid;

use super::small;
use crate::model::{groups, ApprovalAction, UpdateKind};
use crate::simulate::categories;
use crate::simulate::*;

/// A catalog with no approvals, plus one plain update and one bundle to approve by hand.
fn oracle_fixture() -> (Catalog, Uuid, Uuid, HashSet<Uuid>) {
    let mut c = small();
    let ids: Vec<Uuid> = c.deployments().map(|d| d.update.update_id).collect();
    for g in c.groups().iter().map(|g| g.id).collect::<Vec<_>>() {
        for id in &ids {
            c.unapprove(*id, g);
        }
    }
    assert_eq!(c.deployments().count(), 0);
    let ok = |r: &&SimRevision| !c.is_declined(&r.record.key.update_id) && !r.record.expired;
    let plain = c
        .of_kind(UpdateKind::Software)
        .filter(ok)
        .find(|r| r.handler() == Handler::Cbs && r.detail.explicitly_deployable)
        .unwrap()
        .record
        .key
        .update_id;
    let bundle = c
        .of_kind(UpdateKind::Software)
        .filter(ok)
        .find(|r| r.handler() == Handler::Bundle)
        .unwrap()
        .record
        .key
        .update_id;
    let everything: HashSet<Uuid> = c.category_and_detectoid_ids().into_iter().collect();
    (c, plain, bundle, everything)
}

#[test]
fn oracle_resolves_conflicts_as_wsus_does() {
    let (mut c, u, _, all) = oracle_fixture();
    let key = c.latest(&u).unwrap().record.key;
    let g = |c: &Catalog, n: &str| c.group_named(n).unwrap().id;
    let (ws, pilot, finance) = (g(&c, "Workstations"), g(&c, "Pilot"), g(&c, "Finance"));
    let none = HashSet::new();
    assert!(c.offered(&[pilot], &all).is_empty());

    c.approve(u, groups::ALL_COMPUTERS, ApprovalAction::Install, None)
        .unwrap();
    assert!(c
        .offered(&[groups::UNASSIGNED_COMPUTERS], &all)
        .contains(&key));
    assert!(
        c.offered(&[], &all).contains(&key),
        "All Computers always applies"
    );
    assert!(c.offered(&[pilot], &none).is_empty(), "prerequisites unmet");

    // Deeper group wins.
    c.approve(u, finance, ApprovalAction::Uninstall, None)
        .unwrap();
    assert_eq!(
        c.offers(&[finance], &all)[&key].action,
        OfferAction::Uninstall
    );
    assert_eq!(c.offers(&[pilot], &all)[&key].action, OfferAction::Install);
    c.approve(u, ws, ApprovalAction::Install, None).unwrap();
    assert_eq!(
        c.offers(&[finance], &all)[&key].action,
        OfferAction::Uninstall
    );

    // Same depth: Install beats Uninstall.
    c.approve(u, pilot, ApprovalAction::Install, None).unwrap();
    assert_eq!(
        c.offers(&[pilot, finance], &all)[&key].action,
        OfferAction::Install
    );

    // Same depth and action: the earlier deadline wins; a deadline beats none.
    let t = Catalog::time_of(10_000);
    c.approve(
        u,
        finance,
        ApprovalAction::Install,
        Some(t + time::Duration::days(3)),
    )
    .unwrap();
    assert_eq!(
        c.offers(&[pilot, finance], &all)[&key].deadline,
        Some(t + time::Duration::days(3))
    );
    c.approve(u, pilot, ApprovalAction::Install, Some(t))
        .unwrap();
    assert_eq!(c.offers(&[pilot, finance], &all)[&key].deadline, Some(t));

    // Block on a deeper group hides it there only.
    c.approve(u, pilot, ApprovalAction::Block, None).unwrap();
    assert!(!c.offered(&[pilot], &all).contains(&key));
    assert!(c.offered(&[ws], &all).contains(&key));

    // Declined: never offered.
    c.decline(u).unwrap();
    assert!(!c.offered(&[ws], &all).contains(&key));
}

#[test]
fn oracle_offers_bundled_children_with_their_bundle() {
    let (mut c, _, b, all) = oracle_fixture();
    let bundle = c.latest(&b).unwrap().record.clone();
    c.approve(b, groups::ALL_COMPUTERS, ApprovalAction::Install, None)
        .unwrap();
    let offers = c.offers(&[], &all);
    assert_eq!(offers[&bundle.key].action, OfferAction::Install);
    for child in &bundle.bundled {
        let ck = c.latest(child).unwrap().record.key;
        assert_eq!(offers[&ck].action, OfferAction::Bundle);
    }
    assert_eq!(offers.len(), 1 + bundle.bundled.len());
    // Declining the bundle declines its children.
    c.decline(b).unwrap();
    assert!(bundle.bundled.iter().all(|u| c.is_declined(u)));
    assert!(c.offered(&[], &all).is_empty());
}

#[test]
fn oracle_on_the_generated_approvals_differs_between_groups() {
    let c = small();
    let all: HashSet<Uuid> = c.category_and_detectoid_ids().into_iter().collect();
    let g = |n: &str| c.group_named(n).unwrap().id;
    let pilot = c.offered(&[g("Pilot")], &all);
    let finance = c.offered(&[g("Finance")], &all);
    let servers = c.offered(&[g("Servers")], &all);
    assert!(!pilot.is_empty() && !finance.is_empty() && !servers.is_empty());
    assert_ne!(pilot, finance);
    assert_ne!(pilot, servers);
    for k in pilot.iter().chain(&finance) {
        assert!(!c.is_declined(&k.update_id));
        assert!(!c.revision(k).unwrap().record.expired);
    }
}

#[test]
fn a_machine_profile_only_gets_updates_for_its_products_and_architecture() {
    let c = Catalog::generate(2000, 21);
    assert!(c
        .products()
        .iter()
        .any(|(id, _)| *id == categories::PRODUCT_WINDOWS_11));
    let win11 = [categories::PRODUCT_WINDOWS_11];
    let x64 = c.machine_installed(&win11, "x64");
    let arm = c.machine_installed(&win11, "arm64");
    assert_ne!(x64, arm);
    let all = c.group_named("All Computers").unwrap().id;
    let offered_x64 = c.offered(&[all], &x64);
    let offered_arm = c.offered(&[all], &arm);
    assert!(!offered_x64.is_empty() && !offered_arm.is_empty());
    assert!(offered_x64.is_disjoint(&offered_arm));
    for k in &offered_x64 {
        let r = &c.revision(k).unwrap().record;
        assert!(
            r.products.contains(&categories::PRODUCT_WINDOWS_11),
            "{}",
            r.title
        );
        assert!(!r.title.contains("arm64"), "{}", r.title);
    }
    // A profile is closed under prerequisites: each of its detectoids' prerequisites is met.
    for id in &x64 {
        let r = &c.latest(id).unwrap().record;
        assert!(
            r.prerequisites
                .iter()
                .all(|cl| cl.iter().any(|u| x64.contains(u))),
            "{}",
            r.title
        );
    }
}
