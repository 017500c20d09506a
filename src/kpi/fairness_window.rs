//! Fairness over a sliding window of the last W rows, per protected
//! attribute, with an O(1) update per row: the counts of the row entering
//! are added and those of the row leaving subtracted. Cumulative counters
//! (never decreasing) are kept beside them for rate queries over any time
//! range.

use std::collections::{BTreeMap, HashMap};

use super::error::{KpiError, check_shape};
use super::fairness::{AttributeFairness, GroupCounts, evaluate};
use super::ring::{Located, Ring, RowSeq, put};
use super::{Class, Row};

/// What a fairness window tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairnessSpec {
    /// The protected attributes, in the order of [`Row::groups`].
    pub attributes: Vec<String>,
    /// W: rows in the window (at least 1).
    pub window: usize,
    /// Groups with fewer rows in the window are reported but left out of
    /// the aggregates.
    pub min_group_size: u64,
    /// Distinct values tracked per attribute (at least 1); rows with a
    /// further value count as [`Unassigned::overflow`].
    pub max_groups: usize,
}

/// Rows that belong to no tracked group of an attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unassigned {
    /// Rows without a value for the attribute.
    pub missing: u64,
    /// Rows whose value came after `max_groups` values were tracked.
    pub overflow: u64,
}

/// The answer to a label fed back for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labeled {
    /// Counted, in the window and in the cumulative counters.
    Applied,
    /// The row already has a label; this one is ignored.
    AlreadyLabeled,
    /// The row has left the window; see
    /// [`FairnessWindow::record_late_label`].
    Evicted,
    /// No row with this sequence number was fed yet.
    Unknown,
}

/// One attribute's fairness in the window and its cumulative counts.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeSnapshot {
    /// The attribute.
    pub name: String,
    /// The KPIs over the window's rows.
    pub window: AttributeFairness,
    /// The window's rows without a tracked group.
    pub window_unassigned: Unassigned,
    /// Counts over every row fed, per tracked group (including groups with
    /// no row left in the window).
    pub cumulative: BTreeMap<String, GroupCounts>,
    /// Every row fed without a tracked group.
    pub cumulative_unassigned: Unassigned,
}

/// A fairness window's state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct FairnessSnapshot {
    /// Rows in the window.
    pub rows_in_window: u64,
    /// Rows fed since the window was built.
    pub rows_total: u64,
    /// Per attribute, in the spec's order.
    pub attributes: Vec<AttributeSnapshot>,
}

/// Where a row stands for one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Group(usize),
    Missing,
    Overflow,
}

/// One attribute's groups (interned) and counts.
#[derive(Debug, Clone)]
struct Attribute {
    name: String,
    names: Vec<String>,
    index: HashMap<String, usize>,
    window: Vec<GroupCounts>,
    cumulative: Vec<GroupCounts>,
    window_unassigned: Unassigned,
    cumulative_unassigned: Unassigned,
}

impl Attribute {
    fn new(name: String) -> Self {
        Attribute {
            name,
            names: Vec::new(),
            index: HashMap::new(),
            window: Vec::new(),
            cumulative: Vec::new(),
            window_unassigned: Unassigned::default(),
            cumulative_unassigned: Unassigned::default(),
        }
    }

    /// The slot of a value, tracking it as a new group while there is room.
    fn slot(&mut self, value: Option<&str>, max_groups: usize) -> Slot {
        let Some(value) = value else {
            return Slot::Missing;
        };
        if let Some(group) = self.index.get(value) {
            return Slot::Group(*group);
        }
        if self.names.len() >= max_groups {
            return Slot::Overflow;
        }
        let group = self.names.len();
        self.names.push(value.to_owned());
        self.index.insert(value.to_owned(), group);
        self.window.push(GroupCounts::default());
        self.cumulative.push(GroupCounts::default());
        Slot::Group(group)
    }

    fn add_row(&mut self, slot: Slot, predicted: Class, label: Option<Class>) {
        match slot {
            Slot::Group(g) => {
                self.window[g].add_row(predicted, label);
                self.cumulative[g].add_row(predicted, label);
            }
            Slot::Missing => {
                self.window_unassigned.missing += 1;
                self.cumulative_unassigned.missing += 1;
            }
            Slot::Overflow => {
                self.window_unassigned.overflow += 1;
                self.cumulative_unassigned.overflow += 1;
            }
        }
    }

    fn remove_row(&mut self, slot: Slot, predicted: Class, label: Option<Class>) {
        // INVARIANT: the slot was added with this prediction and label (a
        // later label updates both), so no count goes below zero.
        match slot {
            Slot::Group(g) => self.window[g].remove_row(predicted, label),
            Slot::Missing => self.window_unassigned.missing -= 1,
            Slot::Overflow => self.window_unassigned.overflow -= 1,
        }
    }

    fn snapshot(&self, min_group_size: u64) -> AttributeSnapshot {
        let counts = |counts: &[GroupCounts]| -> BTreeMap<String, GroupCounts> {
            self.names
                .iter()
                .cloned()
                .zip(counts.iter().copied())
                .collect()
        };
        AttributeSnapshot {
            name: self.name.clone(),
            window: evaluate(&counts(&self.window), min_group_size),
            window_unassigned: self.window_unassigned,
            cumulative: counts(&self.cumulative),
            cumulative_unassigned: self.cumulative_unassigned,
        }
    }
}

/// Fairness KPIs over the last W rows of one model.
#[derive(Debug, Clone)]
pub struct FairnessWindow {
    min_group_size: u64,
    max_groups: usize,
    ring: Ring,
    attributes: Vec<Attribute>,
    /// Per stored row.
    predicted: Vec<Class>,
    /// Per stored row.
    labels: Vec<Option<Class>>,
    /// `attributes.len()` per stored row.
    slots: Vec<Slot>,
}

impl FairnessWindow {
    /// An empty window. Refuses a window of 0 rows and `max_groups` 0.
    pub fn new(spec: FairnessSpec) -> Result<Self, KpiError> {
        if spec.max_groups == 0 {
            return Err(KpiError::ZeroMaxGroups);
        }
        Ok(FairnessWindow {
            min_group_size: spec.min_group_size,
            max_groups: spec.max_groups,
            ring: Ring::new(spec.window)?,
            attributes: spec.attributes.into_iter().map(Attribute::new).collect(),
            predicted: Vec::new(),
            labels: Vec::new(),
            slots: Vec::new(),
        })
    }

    /// Feeds one row (its groups, prediction and label if known), pushing
    /// out the oldest once W rows are in. O(attributes).
    pub fn push(&mut self, row: &Row) -> Result<RowSeq, KpiError> {
        let width = self.attributes.len();
        check_shape("group values", width, row.groups.len())?;
        let position = self.ring.next_position();
        if self.ring.full() {
            let (predicted, label) = (self.predicted[position], self.labels[position]);
            for (a, attribute) in self.attributes.iter_mut().enumerate() {
                attribute.remove_row(self.slots[position * width + a], predicted, label);
            }
        }
        for (a, (attribute, value)) in self.attributes.iter_mut().zip(&row.groups).enumerate() {
            let slot = attribute.slot(value.as_deref(), self.max_groups);
            attribute.add_row(slot, row.predicted, row.label);
            put(&mut self.slots, position * width + a, slot);
        }
        put(&mut self.predicted, position, row.predicted);
        put(&mut self.labels, position, row.label);
        Ok(self.ring.advance())
    }

    /// Feeds back the label of a row fed earlier without one. Counted if the
    /// row is still in the window; otherwise the answer says why not.
    pub fn label(&mut self, seq: RowSeq, label: Class) -> Labeled {
        let position = match self.ring.locate(seq) {
            Located::InWindow(position) => position,
            Located::Evicted => return Labeled::Evicted,
            Located::Unknown => return Labeled::Unknown,
        };
        if self.labels[position].is_some() {
            return Labeled::AlreadyLabeled;
        }
        let predicted = self.predicted[position];
        let width = self.attributes.len();
        for (a, attribute) in self.attributes.iter_mut().enumerate() {
            if let Slot::Group(g) = self.slots[position * width + a] {
                attribute.window[g].add_label(predicted, label);
                attribute.cumulative[g].add_label(predicted, label);
            }
        }
        self.labels[position] = Some(label);
        Labeled::Applied
    }

    /// Whether the row `seq` has a label, while it is in the window
    /// (`None` once pushed out, or not fed yet).
    pub fn is_labeled(&self, seq: RowSeq) -> Option<bool> {
        match self.ring.locate(seq) {
            Located::InWindow(position) => Some(self.labels[position].is_some()),
            Located::Evicted | Located::Unknown => None,
        }
    }

    /// Counts the label of a row that has left the window
    /// ([`Labeled::Evicted`]) in the cumulative counters only, from the
    /// row's groups and prediction as the caller kept them. The caller
    /// MUST NOT count a row's label twice. Values of untracked groups are
    /// ignored.
    pub fn record_late_label(
        &mut self,
        groups: &[Option<String>],
        predicted: Class,
        label: Class,
    ) -> Result<(), KpiError> {
        check_shape("group values", self.attributes.len(), groups.len())?;
        for (attribute, value) in self.attributes.iter_mut().zip(groups) {
            if let Some(g) = value.as_deref().and_then(|v| attribute.index.get(v)) {
                attribute.cumulative[*g].add_label(predicted, label);
            }
        }
        Ok(())
    }

    /// The KPIs now. O(attributes x groups).
    pub fn snapshot(&self) -> FairnessSnapshot {
        FairnessSnapshot {
            rows_in_window: self.ring.len(),
            rows_total: self.ring.pushed(),
            attributes: self
                .attributes
                .iter()
                .map(|a| a.snapshot(self.min_group_size))
                .collect(),
        }
    }
}
