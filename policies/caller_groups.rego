# Deny a model to callers outside its allowed group.
#
# The credit-scoring model serves the lending services only: every caller
# must be a service account, whose name starts with "svc-". Checked at the
# request stage, so a refused request never reaches the model.
package govgate

# Model name -> the caller-name prefix its callers must have.
caller_prefix := {"credit-scoring": "svc-"}

deny contains reason if {
	input.stage == "request"
	prefix := caller_prefix[input.model]
	not startswith(input.caller, prefix)
	reason := concat("", ["caller ", input.caller, " is not allowed to use ", input.model, " (callers must start with ", prefix, ")"])
}
