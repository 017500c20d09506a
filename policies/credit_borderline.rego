# Hold borderline credit scores for a human decision.
#
# A KServe V2 response carries its results in outputs[_].data. A score in
# the band [0.45, 0.55] is too close to the cut-off to release unreviewed,
# so the answer is held until a reviewer releases or overrides it.
package govgate

# Models whose outputs are credit scores.
score_models := {"credit-scoring"}

borderline_low := 0.45

borderline_high := 0.55

hold contains reason if {
	input.stage == "response"
	input.model in score_models
	some output in input.response.outputs
	some score in output.data
	is_number(score)
	score >= borderline_low
	score <= borderline_high
	reason := sprintf("borderline credit score in output %s: within [%v, %v]", [output.name, borderline_low, borderline_high])
}
