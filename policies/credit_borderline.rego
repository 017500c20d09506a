# Hold borderline credit scores for a human decision.
#
# A KServe V2 response carries its results in outputs[_].data. A score in
# the band [0.45, 0.55] (both ends included) is too close to the cut-off
# to release unreviewed, so the answer is held until a reviewer releases
# or overrides it.
#
# The band is written inline rather than as named constants: each rule
# referenced costs a few microseconds per decision in the interpreter.
package govgate

# Models whose outputs are credit scores.
score_models := {"credit-scoring"}

hold contains reason if {
	input.stage == "response"
	input.model in score_models
	some output in input.response.outputs
	some score in output.data
	is_number(score)
	score >= 0.45
	score <= 0.55
	reason := concat("", ["borderline credit score in output ", output.name, ": within [0.45, 0.55]"])
}
