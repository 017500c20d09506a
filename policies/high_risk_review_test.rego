# Tests of high_risk_review.rego: `govgate policies test policies`.
package govgate_test

import data.govgate

test_every_answer_of_a_listed_high_risk_model_is_held if {
	govgate.hold == {"credit-scoring version v3 is high risk: every answer is reviewed"} with input as {
		"stage": "response", "model": "credit-scoring", "version": "v3", "risk_class": "high", "response": null,
	}
}

test_an_unlisted_model_is_not_held if {
	count(govgate.hold) == 0 with input as {"stage": "response", "model": "fraud", "version": "v1", "risk_class": "high", "response": null}
}

test_a_limited_risk_version_is_not_held if {
	count(govgate.hold) == 0 with input as {"stage": "response", "model": "credit-scoring", "version": "v2", "risk_class": "limited", "response": null}
}
