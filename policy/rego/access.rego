# access: which principals may use which models.
#
# data.switchyard.config.models maps a model glob to an access entry:
#   {"gpt-4*": {"tenants": ["acme"], "groups": ["eng"], "keys": ["k1"]}}
#
# Semantics (documented choices):
# - Globs are matched with glob.match and NO delimiters, so "*" matches any
#   run of characters including "." and "/" ("gpt-4*" matches "gpt-4.1").
# - A model matching no entry is allowed.
# - Within an entry, each non-empty list is a condition; all present
#   conditions must hold (tenant AND group AND key). Within a list any
#   value matches (OR). An entry with no non-empty list allows everyone.
# - When several entries match the model, every one of them must allow
#   the principal (most restrictive wins; order-independent).
# - A null principal (no keys configured) fails any non-empty condition.
package switchyard.policies.access

import data.switchyard.lib

_matching contains pattern if {
	some pattern, _ in lib.models
	glob.match(pattern, null, input.model)
}

_list(entry, field) := [v | some v in object.get(entry, field, []); is_string(v)]

_principal := input.principal if is_object(input.principal)

# _violation(pattern) yields a reason when the entry for pattern rejects.
_violation contains {"pattern": pattern, "reason": "an authenticated principal is required"} if {
	some pattern in _matching
	entry := lib.models[pattern]
	some field in ["tenants", "groups", "keys"]
	count(_list(entry, field)) > 0
	not _principal
}

_violation contains {"pattern": pattern, "reason": "tenant is not permitted"} if {
	some pattern in _matching
	allowed := _list(lib.models[pattern], "tenants")
	count(allowed) > 0
	not object.get(_principal, "tenant", null) in allowed
}

_violation contains {"pattern": pattern, "reason": "none of the principal's groups is permitted"} if {
	some pattern in _matching
	allowed := _list(lib.models[pattern], "groups")
	count(allowed) > 0
	groups := object.get(_principal, "groups", [])
	count({g | some g in groups; g in allowed}) == 0
}

_violation contains {"pattern": pattern, "reason": "API key is not permitted"} if {
	some pattern in _matching
	allowed := _list(lib.models[pattern], "keys")
	count(allowed) > 0
	not object.get(_principal, "key_id", null) in allowed
}

deny contains {
	"policy": "access",
	"kind": "access",
	"reason": sprintf("model %q is not available to this principal: %s (rule %q)", [input.model, v.reason, v.pattern]),
} if {
	some v in _violation
}
