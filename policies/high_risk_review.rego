# Require a review of every answer of a high-risk model version.
#
# Opt-in per model: only models listed in review_high_risk are held, so
# registering a version as high risk does not by itself hold all its
# traffic. Checked at the response stage so the reviewer sees the answer.
package govgate

# Models whose high-risk versions need a reviewer for every answer.
review_high_risk := {"credit-scoring"}

hold contains reason if {
	input.stage == "response"
	input.risk_class == "high"
	input.model in review_high_risk
	reason := concat("", [input.model, " version ", input.version, " is high risk: every answer is reviewed"])
}
