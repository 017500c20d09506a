# Tests of caller_groups.rego: `govgate policies test policies`.
package govgate_test

import data.govgate

test_service_caller_may_use_credit_scoring if {
	count(govgate.deny) == 0 with input as {"stage": "request", "model": "credit-scoring", "caller": "svc-loans"}
}

test_other_caller_is_denied_credit_scoring if {
	govgate.deny == {"caller alice is not allowed to use credit-scoring (callers must start with svc-)"} with input as {"stage": "request", "model": "credit-scoring", "caller": "alice"}
}

test_other_models_are_open_to_everyone if {
	count(govgate.deny) == 0 with input as {"stage": "request", "model": "fraud", "caller": "alice"}
}

test_not_checked_at_the_response_stage if {
	count(govgate.deny) == 0 with input as {"stage": "response", "model": "credit-scoring", "caller": "alice"}
}
