package switchyard.policies.size_test

import data.switchyard.policies.size

_in(n) := {"phase": "request", "prompt": "x", "token_estimate": n}

test_over_limit if {
	d := size.deny with input as _in(5000) with data.switchyard.config as {"max_prompt_tokens": 4096}
	count(d) == 1
	some x in d
	x.kind == "content"
	x.policy == "size"
}

test_at_limit if count(size.deny) == 0 with input as _in(4096) with data.switchyard.config as {"max_prompt_tokens": 4096}

test_under_limit if count(size.deny) == 0 with input as _in(10) with data.switchyard.config as {"max_prompt_tokens": 4096}

test_no_limit_by_default if count(size.deny) == 0 with input as _in(10000000)

test_zero_limit_means_none if count(size.deny) == 0 with input as _in(10) with data.switchyard.config as {"max_prompt_tokens": 0}

test_non_numeric_limit_ignored if count(size.deny) == 0 with input as _in(10) with data.switchyard.config as {"max_prompt_tokens": "5"}

test_missing_estimate if count(size.deny) == 0 with input as {"phase": "request"} with data.switchyard.config as {"max_prompt_tokens": 1}

test_response_phase_ignored if {
	count(size.deny) == 0 with input as {"phase": "response", "output": "x", "token_estimate": 5000}
		with data.switchyard.config as {"max_prompt_tokens": 1}
}
