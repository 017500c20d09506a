//! Reviews shared by a fleet's replicas (`[cluster]`, kept in PostgreSQL
//! by `crate::cluster::reviews`).
//!
//! Every review stays owned by the replica that opened it: its ledger
//! holds the decision, the `review_opened` and the closing entries, and
//! its timer is the review's only timeout. The fleet sees a copy of each
//! item (bodies included: held answers are bounded by
//! `review.max_held_bytes`), so any replica can list and show it, and
//! answer a client's poll once it is closed.
//!
//! A verdict, given on any replica, and a timeout, fired on the owner,
//! are first *claimed* in the fleet: the first claim of a review wins,
//! every later one learns it lost and what won. The owner applies the
//! winning claim, whichever replica made it, so a review closes exactly
//! once fleet-wide.

use super::item::{ReviewItem, StoredAnswer};
use super::{ReviewVerdict, Reviewer};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// A future the fleet's review store returns.
pub type MirrorFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, MirrorError>> + Send + 'a>>;

/// The fleet's review store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the fleet's review store is unavailable: {0}")]
pub struct MirrorError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A verdict, or a timeout (`verdict` `timeout`), as claimed in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// `approve`, `reject`, `override` or `timeout`.
    pub verdict: String,
    /// Who decided; none for a timeout.
    pub reviewer: Option<String>,
    /// The reviewer's JWT issuer, for a person who signed in with one.
    #[serde(default)]
    pub reviewer_issuer: Option<String>,
    /// The reviewer's JWT subject, when the token had one.
    #[serde(default)]
    pub reviewer_subject: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The overriding answer.
    #[serde(default)]
    pub override_answer: Option<StoredAnswer>,
}

impl Claim {
    /// The claim of `verdict` (`None`: a timeout) by `reviewer`.
    pub fn new(
        reviewer: Option<&Reviewer>,
        verdict: Option<&ReviewVerdict>,
        reason: Option<&String>,
    ) -> Self {
        Claim {
            verdict: verdict.map_or("timeout", ReviewVerdict::as_str).to_owned(),
            reviewer: reviewer.map(|r| r.principal.clone()),
            reviewer_issuer: reviewer.and_then(|r| r.issuer.clone()),
            reviewer_subject: reviewer.and_then(|r| r.subject.clone()),
            reason: reason.cloned(),
            override_answer: match verdict {
                Some(ReviewVerdict::Override(answer)) => Some(answer.clone()),
                _ => None,
            },
        }
    }

    /// The reviewer who made it.
    pub fn reviewer(&self) -> Option<Reviewer> {
        Some(Reviewer {
            principal: self.reviewer.clone()?,
            issuer: self.reviewer_issuer.clone(),
            subject: self.reviewer_subject.clone(),
        })
    }

    /// The verdict (`None`: a timeout, or a verdict this build does not know).
    pub fn verdict(&self) -> Option<ReviewVerdict> {
        match self.verdict.as_str() {
            "approve" => Some(ReviewVerdict::Approve),
            "reject" => Some(ReviewVerdict::Reject),
            "override" => self.override_answer.clone().map(ReviewVerdict::Override),
            _ => None,
        }
    }
}

/// What claiming a review's close came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This claim is the one that counts.
    Won,
    /// Another came first: this one.
    Taken(Claim),
}

/// A review as the fleet holds it, and the replica that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedItem {
    /// The item as its owner last published it.
    pub item: ReviewItem,
    /// The owner's replica id.
    pub owner: String,
}

/// Which review to look up.
#[derive(Debug, Clone, Copy)]
pub enum ItemKey<'a> {
    /// By its review id.
    Review(&'a str),
    /// By the decision under review.
    Decision(&'a str),
}

/// The fleet's review store.
pub trait ReviewMirror: Send + Sync {
    /// Publishes this replica's `item` as it now stands.
    fn publish<'a>(&'a self, item: &'a ReviewItem) -> MirrorFuture<'a, ()>;

    /// Removes a review this replica forgot after its retention.
    fn forget<'a>(&'a self, review_id: &'a str) -> MirrorFuture<'a, ()>;

    /// Claims the close of `review_id` (and wakes its owner).
    fn claim<'a>(&'a self, review_id: &'a str, claim: &'a Claim) -> MirrorFuture<'a, ClaimOutcome>;

    /// One review, with its bodies.
    fn item<'a>(&'a self, key: ItemKey<'a>) -> MirrorFuture<'a, Option<SharedItem>>;

    /// Other replicas' reviews, without bodies, oldest first: pending only
    /// (`Some(true)`), closed only, or all; at most `limit`.
    fn others(&self, pending: Option<bool>, limit: usize) -> MirrorFuture<'_, Vec<ReviewItem>>;

    /// Claims on this replica's pending reviews, which it has to apply.
    fn claims_to_apply(&self) -> MirrorFuture<'_, Vec<(String, Claim)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_carries_its_verdict_and_reviewer_through_json() {
        let reviewer = Reviewer {
            principal: "rita".into(),
            issuer: Some("https://idp.example".into()),
            subject: Some("u-1".into()),
        };
        let answer = StoredAnswer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"ok\":1}".to_vec(),
        };
        let verdict = ReviewVerdict::Override(answer);
        let reason = "corrected".to_owned();
        let claim = Claim::new(Some(&reviewer), Some(&verdict), Some(&reason));
        let back: Claim = serde_json::from_str(&serde_json::to_string(&claim).unwrap()).unwrap();
        assert_eq!(back, claim);
        assert_eq!(back.verdict(), Some(verdict));
        assert_eq!(back.reviewer(), Some(reviewer));
        let timeout = Claim::new(None, None, None);
        assert_eq!(timeout.verdict, "timeout");
        assert_eq!((timeout.verdict(), timeout.reviewer()), (None, None));
    }
}
