# Tests of audit_sample.rego: `govgate policies test policies`.
package govgate_test

import data.govgate

test_a_sampled_answer_is_flagged if {
	govgate.flag == {"audit sample (rate 0.05)"} with input as {"stage": "response", "sample": 0.01}
}

test_the_rate_is_an_open_bound if {
	count(govgate.flag) == 0 with input as {"stage": "response", "sample": 0.05}
}

test_requests_are_not_flagged if {
	count(govgate.flag) == 0 with input as {"stage": "request", "sample": 0.01}
}
