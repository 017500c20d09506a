//! The queue in a fleet (`super::super::shared`): this replica's reviews
//! published for the others, verdicts claimed before they are applied,
//! and other replicas' reviews listed, shown, decided and polled here.

use super::{DecideError, ListFilter, ReviewQueue, check_verdict, now_unix_ms, without_bodies};
use crate::review::shared::{Claim, ClaimOutcome, ItemKey, MirrorError, ReviewMirror};
use crate::review::{ReviewItem, ReviewState, ReviewVerdict, Reviewer};
use std::sync::Arc;
use std::time::Duration;

/// How long a verdict given here waits for the owning replica to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How often a wait looks at the fleet's copy of a review.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Other replicas' reviews read for one list.
const MAX_LISTED_ELSEWHERE: usize = 1_000;

impl ReviewQueue {
    /// Shares this replica's reviews with its fleet through `mirror`
    /// (once; a second call changes nothing), publishing those it has.
    pub async fn share(&self, mirror: Arc<dyn ReviewMirror>) {
        if self.inner.mirror.set(mirror).is_err() {
            return;
        }
        let slots: Vec<_> = super::lock(&self.inner.slots).values().cloned().collect();
        for slot in slots {
            let item = slot.item.lock().await.clone();
            self.publish(&item).await;
        }
    }

    fn mirror(&self) -> Option<&Arc<dyn ReviewMirror>> {
        self.inner.mirror.get()
    }

    pub(super) fn is_shared(&self) -> bool {
        self.mirror().is_some()
    }

    /// Publishes `item` for the fleet; a failure is logged (the review
    /// stays decidable here, and the next change publishes it again).
    pub(super) async fn publish(&self, item: &ReviewItem) {
        let Some(mirror) = self.mirror() else {
            return;
        };
        let id = item.review_id.clone();
        match mirror.publish(item).await {
            Ok(()) => {
                super::lock(&self.inner.unpublished).remove(&id);
            }
            Err(err) => {
                tracing::warn!(review_id = %id, error = %err, "a review was not published to the fleet; published again once it can be");
                super::lock(&self.inner.unpublished).insert(id);
            }
        }
    }

    /// Publishes again the reviews whose last change the fleet missed.
    async fn publish_missed(&self) {
        let missed: Vec<String> = super::lock(&self.inner.unpublished)
            .iter()
            .cloned()
            .collect();
        for review_id in missed {
            let Some(slot) = self.slot(&review_id) else {
                // Forgotten meanwhile.
                super::lock(&self.inner.unpublished).remove(&review_id);
                continue;
            };
            let item = slot.item.lock().await.clone();
            self.publish(&item).await;
        }
    }

    /// Removes a forgotten review from the fleet's copy.
    pub(super) async fn unpublish(&self, review_id: &str) {
        if let Some(mirror) = self.mirror()
            && let Err(err) = mirror.forget(review_id).await
        {
            tracing::warn!(%review_id, error = %err, "a forgotten review stays in the fleet's copy");
        }
    }

    /// Claims the close of a review this replica owns: the verdict (or
    /// timeout) to apply, this one or the one that came first. Without the
    /// fleet's store the replica decides alone (its own reviews stay
    /// decidable through a database outage).
    pub(super) async fn claim(
        &self,
        review_id: &str,
        reviewer: Option<Reviewer>,
        verdict: Option<ReviewVerdict>,
        reason: Option<String>,
    ) -> Claimed {
        let mine = Claimed {
            reviewer,
            verdict,
            reason,
            came_first: true,
        };
        let Some(mirror) = self.mirror() else {
            return mine;
        };
        let claim = Claim::new(
            mine.reviewer.as_ref(),
            mine.verdict.as_ref(),
            mine.reason.as_ref(),
        );
        match mirror.claim(review_id, &claim).await {
            Ok(ClaimOutcome::Won) => mine,
            Ok(ClaimOutcome::Taken(first)) => {
                let came_first = first == claim;
                if !came_first {
                    tracing::info!(%review_id, verdict = %first.verdict, "another verdict came first in the fleet; it is the one applied");
                }
                Claimed {
                    reviewer: first.reviewer(),
                    verdict: first.verdict(),
                    reason: first.reason,
                    came_first,
                }
            }
            Err(err) => {
                tracing::warn!(%review_id, error = %err, "the fleet's review store is unreachable; the review is closed here alone");
                mine
            }
        }
    }

    /// A verdict on a review another replica owns: checked here, claimed
    /// in the fleet, then applied by the owner; the review as it closed.
    pub(super) async fn decide_elsewhere(
        &self,
        review_id: &str,
        reviewer: Reviewer,
        verdict: ReviewVerdict,
        reason: Option<String>,
    ) -> Result<ReviewItem, DecideError> {
        let Some(mirror) = self.mirror() else {
            return Err(DecideError::NotFound(review_id.to_owned()));
        };
        let shared = mirror
            .item(ItemKey::Review(review_id))
            .await?
            .ok_or_else(|| DecideError::NotFound(review_id.to_owned()))?;
        let reason = reason.filter(|text| !text.trim().is_empty());
        check_verdict(
            &shared.item,
            Some(&reviewer),
            Some(&verdict),
            reason.as_ref(),
        )?;
        let claim = Claim::new(Some(&reviewer), Some(&verdict), reason.as_ref());
        if let ClaimOutcome::Taken(first) = mirror.claim(review_id, &claim).await? {
            // Closed (or being closed) by what came first.
            let state = match first.verdict() {
                None => ReviewState::TimedOut,
                Some(ReviewVerdict::Approve) => ReviewState::Approved,
                Some(ReviewVerdict::Reject) => ReviewState::Rejected,
                Some(ReviewVerdict::Override(_)) => ReviewState::Overridden,
            };
            return Err(DecideError::AlreadyDecided(state));
        }
        let started = tokio::time::Instant::now();
        while started.elapsed() < APPLY_WAIT {
            tokio::time::sleep(LOOK_EVERY).await;
            if let Some(now) = mirror.item(ItemKey::Review(review_id)).await?
                && now.item.state != ReviewState::Pending
            {
                // The owner may have closed it on its own while the
                // fleet's copy was out of date: then this verdict lost.
                let closing = now.item.closing.as_ref();
                let ours = closing
                    .is_some_and(|c| c.verdict == claim.verdict && c.reviewer == claim.reviewer);
                if !ours {
                    return Err(DecideError::AlreadyDecided(now.item.state));
                }
                return Ok(now.item);
            }
        }
        Err(DecideError::NotYetApplied {
            owner: shared.owner,
        })
    }

    /// A poll for a decision another replica holds for review, waiting up
    /// to `wait` for it to close.
    pub(super) async fn poll_elsewhere(
        &self,
        decision_id: &str,
        wait: Duration,
    ) -> Option<ReviewItem> {
        let mirror = self.mirror()?;
        let started = tokio::time::Instant::now();
        loop {
            let item = match mirror.item(ItemKey::Decision(decision_id)).await {
                Ok(found) => found?.item,
                Err(err) => {
                    tracing::warn!(error = %err, "a poll could not read the fleet's reviews");
                    return None;
                }
            };
            if item.state != ReviewState::Pending || started.elapsed() + LOOK_EVERY > wait {
                return Some(item);
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Another replica's review, with its bodies.
    pub(super) async fn get_elsewhere(&self, review_id: &str) -> Option<ReviewItem> {
        match self.mirror()?.item(ItemKey::Review(review_id)).await {
            Ok(found) => Some(found?.item),
            Err(err) => {
                tracing::warn!(error = %err, "the fleet's reviews could not be read");
                None
            }
        }
    }

    /// Adds other replicas' reviews matching `filter` to `items` (this
    /// replica's), keeping the list oldest first and within its limit.
    pub(super) async fn add_elsewhere(&self, items: &mut Vec<ReviewItem>, filter: &ListFilter) {
        let Some(mirror) = self.mirror() else {
            return;
        };
        let others = match mirror.others(filter.pending, MAX_LISTED_ELSEWHERE).await {
            Ok(others) => others,
            Err(err) => {
                tracing::warn!(error = %err, "other replicas' reviews could not be listed");
                return;
            }
        };
        let now = now_unix_ms();
        items.extend(
            others
                .iter()
                .filter(|item| filter.matches(item, now))
                .map(without_bodies),
        );
        items.sort_by_key(|item| item.opened_unix_ms);
        items.truncate(filter.limit);
    }

    /// Publishes what the fleet's copy missed, then applies the verdicts
    /// given on other replicas to this replica's reviews: how many were
    /// applied.
    pub async fn apply_fleet_verdicts(&self) -> Result<usize, MirrorError> {
        let Some(mirror) = self.mirror() else {
            return Ok(0);
        };
        self.publish_missed().await;
        let mut applied = 0;
        for (review_id, claim) in mirror.claims_to_apply().await? {
            if self.slot(&review_id).is_none() {
                continue;
            }
            match self
                .close(&review_id, claim.reviewer(), claim.verdict(), claim.reason)
                .await
            {
                Ok(_) => applied += 1,
                // Closed here while the fleet's copy could not be written:
                // `publish_missed` above brings the copy up to date.
                Err(DecideError::AlreadyDecided(_)) => {}
                Err(err) => {
                    tracing::error!(%review_id, error = %err, "a verdict given on another replica was not applied; trying again");
                }
            }
        }
        Ok(applied)
    }
}

/// The close a claim settled on.
pub(super) struct Claimed {
    pub(super) reviewer: Option<Reviewer>,
    pub(super) verdict: Option<ReviewVerdict>,
    pub(super) reason: Option<String>,
    /// Whether it is the close asked for (not another that came first).
    pub(super) came_first: bool,
}

impl ListFilter {
    /// Whether `item` is one this filter shows (`now` in Unix ms).
    fn matches(&self, item: &ReviewItem, now: u64) -> bool {
        let reason = self.reason.as_ref().map(|text| text.to_lowercase());
        self.pending
            .is_none_or(|wanted| wanted == (item.state == ReviewState::Pending))
            && self.model.as_ref().is_none_or(|m| *m == item.model)
            && self.kind.is_none_or(|k| k == item.kind)
            && self
                .older_than
                .is_none_or(|age| now.saturating_sub(item.opened_unix_ms) >= age.as_millis() as u64)
            && reason.is_none_or(|text| {
                item.reasons
                    .iter()
                    .any(|reason| reason.to_lowercase().contains(text.as_str()))
            })
    }
}
