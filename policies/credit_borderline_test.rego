# Tests of credit_borderline.rego: `govgate policies test policies`.
package govgate_test

import data.govgate

scores(values) := {
	"stage": "response",
	"model": "credit-scoring",
	"risk_class": "limited",
	"response": {"outputs": [{"name": "score", "datatype": "FP32", "data": values}]},
}

test_a_score_in_the_band_is_held if {
	govgate.hold == {"borderline credit score in output score: within [0.45, 0.55]"} with input as scores([0.51])
}

test_both_ends_of_the_band_are_held if {
	count(govgate.hold) == 1 with input as scores([0.45])
	count(govgate.hold) == 1 with input as scores([0.55])
}

test_clear_scores_are_released if {
	count(govgate.hold) == 0 with input as scores([0.1, 0.9, 0.449])
}

test_an_answer_that_is_not_kserve_is_not_held if {
	count(govgate.hold) == 0 with input as {"stage": "response", "model": "credit-scoring", "response": null}
}
