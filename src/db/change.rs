//! The one way to change a workspace: lock it, change, append the audit
//! events, commit. Every change of a workspace takes its lock first, so
//! that a change that reads before it writes (a last-owner check, a
//! settings merge, a count before a delete) acts on current data, and no
//! two changes can wait on each other in opposite orders.

use std::ops::{Deref, DerefMut};

use super::{audit_events, Db, Result, Tx};
use crate::audit::NewEvent;
use crate::time::now_micros;

pub struct Change {
    tx: Tx,
    at: i64,
    /// Sorted: locks are always taken in this order.
    workspaces: Vec<String>,
    events: Vec<(usize, NewEvent)>,
}

impl Change {
    /// Begins a transaction and locks `workspaces` in a fixed order.
    pub async fn begin<'a>(
        db: &Db,
        workspaces: impl IntoIterator<Item = &'a str>,
    ) -> Result<Change> {
        let mut workspaces: Vec<String> = workspaces.into_iter().map(str::to_string).collect();
        workspaces.sort();
        workspaces.dedup();
        let mut tx = db.begin().await?;
        for workspace_id in &workspaces {
            audit_events::lock_workspace(&mut tx, workspace_id).await?;
        }
        Ok(Change {
            tx,
            at: now_micros(),
            workspaces,
            events: Vec::new(),
        })
    }

    /// When the change happens: its rows' times and its events' timestamp.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// Records an event of the change's first (for most changes, only)
    /// workspace; appended at commit.
    pub fn record(&mut self, event: NewEvent) {
        self.events.push((0, event));
    }

    /// Records an event of one of the change's workspaces. An event for a
    /// workspace the change did not lock is a bug, refused at commit.
    pub fn record_in(&mut self, workspace_id: &str, event: NewEvent) -> Result<()> {
        let index = self
            .workspaces
            .binary_search_by(|w| w.as_str().cmp(workspace_id))
            .map_err(|_| {
                super::Error::decode(
                    "workspace_id",
                    format!("workspace {workspace_id} is not locked by this change"),
                )
            })?;
        self.events.push((index, event));
        Ok(())
    }

    /// Appends the recorded events to each workspace's chain and commits.
    pub async fn commit(mut self) -> Result<()> {
        let mut by_workspace: Vec<Vec<NewEvent>> = vec![Vec::new(); self.workspaces.len()];
        for (index, event) in std::mem::take(&mut self.events) {
            by_workspace[index].push(event);
        }
        for (workspace_id, events) in self.workspaces.iter().zip(by_workspace) {
            crate::audit::append(&mut self.tx, workspace_id, self.at, events).await?;
        }
        self.tx.commit().await
    }
}

impl Deref for Change {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for Change {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}
