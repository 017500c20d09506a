# Flag a 5 % audit sample for post-hoc review.
#
# input.sample is derived from the decision id (see docs/policies.md), so
# an auditor can recompute which decisions were sampled. Flagged answers
# go out at once; a review item is queued. To change the rate, change both
# the bound and the reason.
package govgate

flag contains "audit sample (rate 0.05)" if {
	input.stage == "response"
	input.sample < 0.05
}
