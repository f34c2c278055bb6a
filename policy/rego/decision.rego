# Aggregator: the gateway queries data.switchyard.decision.
#
# Every package under data.switchyard.policies may contribute to the sets
# deny / redact / review / tags and may set route / cap. Test packages
# (switchyard.policies.<name>_test) define none of those rules, so they
# contribute nothing.
package switchyard

_deny contains d if {
	some name
	some d in data.switchyard.policies[name].deny
}

_redact contains r if {
	some name
	some r in data.switchyard.policies[name].redact
}

_review contains r if {
	some name
	some r in data.switchyard.policies[name].review
}

_tags contains t if {
	some name
	some t in data.switchyard.policies[name].tags
}

# route / cap: first policy in lexical policy-name order wins (deterministic).
_routes := {name: r |
	some name
	r := data.switchyard.policies[name].route
}

_caps := {name: c |
	some name
	c := data.switchyard.policies[name].cap
}

_extras["route"] := _routes[min(object.keys(_routes))] if count(_routes) > 0

_extras["cap"] := _caps[min(object.keys(_caps))] if count(_caps) > 0

decision := object.union(
	{
		"allow": count(_deny) == 0,
		"deny": _deny,
		"redact": _redact,
		"review": _review,
		"tags": _tags,
	},
	_extras,
)
