//! Target groups and the generated approvals and declines.

use uuid::Uuid;

use super::catalog::Catalog;
use crate::model::{groups, ApprovalAction, TargetGroup, UpdateKind};

impl Catalog {
    pub(crate) fn gen_groups(&mut self) {
        let add = |cat: &mut Catalog, id: Uuid, name: &'static str, parent: Option<Uuid>| {
            cat.groups.push(TargetGroup {
                id,
                name: name.to_string(),
                parent,
            });
            cat.state.group_ids.insert(name, id);
        };
        let all = Some(groups::ALL_COMPUTERS);
        add(self, groups::ALL_COMPUTERS, "All Computers", None);
        add(
            self,
            groups::UNASSIGNED_COMPUTERS,
            "Unassigned Computers",
            all,
        );
        add(self, groups::DOWNSTREAM_SERVERS, "Downstream Servers", all);
        let ws = self.rng.uuid();
        add(self, ws, "Workstations", all);
        let pilot = self.rng.uuid();
        add(self, pilot, "Pilot", Some(ws));
        let finance = self.rng.uuid();
        add(self, finance, "Finance", Some(ws));
        let servers = self.rng.uuid();
        add(self, servers, "Servers", all);
    }

    /// Approvals spread over groups, with conflicts on purpose (deeper group, same depth,
    /// deadlines), and declines.
    pub(crate) fn gen_approvals(&mut self) {
        let leaves: Vec<Uuid> = self
            .latest_revisions()
            .filter(|r| {
                matches!(r.record.kind, UpdateKind::Software | UpdateKind::Driver)
                    && r.detail.explicitly_deployable
                    && !r.record.expired
            })
            .map(|r| r.record.key.update_id)
            .collect();
        let g = |name: &str, cat: &Catalog| cat.state.group_ids[name];
        for id in leaves {
            let roll = self.rng.below(100);
            if roll < 4 {
                let _ = self.decline(id);
                continue;
            }
            let deadline = |cat: &mut Catalog| {
                cat.rng.percent(30).then(|| {
                    Catalog::time_of(cat.change + 1)
                        + time::Duration::days(cat.rng.range(1, 30) as i64)
                })
            };
            let mut plan: Vec<(&str, ApprovalAction)> = Vec::new();
            match roll {
                4..=38 => plan.push(("All Computers", ApprovalAction::Install)),
                39..=53 => plan.push(("Workstations", ApprovalAction::Install)),
                54..=61 => plan.push(("Pilot", ApprovalAction::Install)),
                62..=66 => plan.push(("Servers", ApprovalAction::Install)),
                67..=69 => plan.push(("Unassigned Computers", ApprovalAction::Install)),
                70..=73 => plan.extend([
                    ("Workstations", ApprovalAction::Install),
                    ("Finance", ApprovalAction::Uninstall),
                ]),
                74..=76 => plan.extend([
                    ("Pilot", ApprovalAction::Install),
                    ("Finance", ApprovalAction::Uninstall),
                ]),
                77..=78 => plan.extend([
                    ("All Computers", ApprovalAction::Install),
                    ("Pilot", ApprovalAction::Block),
                ]),
                79..=80 => plan.extend([
                    ("Workstations", ApprovalAction::Install),
                    ("Pilot", ApprovalAction::Install),
                ]),
                81 => plan.push(("Servers", ApprovalAction::Scan)),
                _ => {}
            }
            for (group, action) in plan {
                let d = deadline(self);
                let group = g(group, self);
                let _ = self.approve(id, group, action, d);
            }
        }
    }
}
