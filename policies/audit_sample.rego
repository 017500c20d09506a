# Flag a 5 % audit sample for post-hoc review.
#
# input.sample is derived from the decision id (see docs/policies.md), so
# an auditor can recompute which decisions were sampled. Flagged answers
# go out at once; a review item is queued.
package govgate

audit_rate := 0.05

flag contains reason if {
	input.stage == "response"
	input.sample < audit_rate
	reason := sprintf("audit sample (rate %v)", [audit_rate])
}
