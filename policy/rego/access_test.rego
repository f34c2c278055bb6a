package switchyard.policies.access_test

import data.switchyard.policies.access

_cfg := {"models": {
	"gpt-4*": {"tenants": ["acme"], "groups": ["eng", "research"]},
	"claude-*": {"keys": ["k1", "k2"]},
	"internal/*": {"tenants": ["acme"]},
	"open-*": {},
	"*-secret": {"groups": ["admins"]},
}}

_in(model, principal) := {"phase": "request", "model": model, "principal": principal}

_p(key, tenant, groups) := {"key_id": key, "tenant": tenant, "groups": groups, "metadata": {}}

_denied(model, principal) if {
	count(access.deny) > 0 with input as _in(model, principal) with data.switchyard.config as _cfg
}

test_allowed_tenant_and_group if not _denied("gpt-4o", _p("k9", "acme", ["eng"]))

test_glob_crosses_dots if not _denied("gpt-4.1-mini", _p("k9", "acme", ["research"]))

test_wrong_tenant if _denied("gpt-4o", _p("k9", "globex", ["eng"]))

test_right_tenant_wrong_group if _denied("gpt-4o", _p("k9", "acme", ["sales"]))

test_no_groups if _denied("gpt-4o", _p("k9", "acme", []))

test_groups_missing_field if _denied("gpt-4o", {"key_id": "k9", "tenant": "acme"})

test_key_allowed if not _denied("claude-3", _p("k2", "anyone", []))

test_key_denied if _denied("claude-3", _p("k3", "acme", ["eng"]))

test_slash_glob if not _denied("internal/llama", _p("k1", "acme", []))

test_slash_glob_denied if _denied("internal/llama", _p("k1", "globex", []))

test_empty_entry_allows_all if not _denied("open-mistral", null)

test_unmatched_model_allowed if not _denied("sim-chat", _p("k3", "globex", []))

test_unmatched_model_allowed_null_principal if not _denied("sim-chat", null)

test_null_principal_denied if _denied("gpt-4o", null)

test_all_matching_entries_must_allow if {
	# "gpt-4-secret" matches "gpt-4*" and "*-secret"
	_denied("gpt-4-secret", _p("k1", "acme", ["eng"]))
	not _denied("gpt-4-secret", _p("k1", "acme", ["eng", "admins"]))
}

test_no_config_allows_everything if {
	count(access.deny) == 0 with input as _in("gpt-4o", null)
}

test_deny_shape if {
	d := access.deny with input as _in("claude-3", _p("k3", "acme", [])) with data.switchyard.config as _cfg
	count(d) == 1
	some x in d
	x.policy == "access"
	x.kind == "access"
	contains(x.reason, "claude-3")
}

test_multiple_violations_reported if {
	d := access.deny with input as _in("gpt-4o", _p("k3", "globex", ["sales"])) with data.switchyard.config as _cfg
	count(d) == 2
}

test_response_phase_same if {
	count(access.deny) > 0 with input as {"phase": "response", "model": "gpt-4o", "principal": null, "output": "x"}
		with data.switchyard.config as _cfg
}
