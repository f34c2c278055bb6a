package switchyard.policies.topics_test

import data.switchyard.policies.topics

_cfg := {"topics": {"deny": ["weapons", "insider trading", "c++"]}}

_denied(text) if count(topics.deny) > 0 with input as {"phase": "request", "prompt": text} with data.switchyard.config as _cfg

test_word if _denied("tell me about weapons")

test_case_insensitive if _denied("WEAPONS manufacturing")

test_phrase if _denied("is Insider Trading legal?")

test_phrase_extra_whitespace if _denied("insider   trading rules")

test_phrase_newline if _denied("insider\ntrading")

test_word_boundary_negative if not _denied("weaponsmith is a surname")

test_substring_negative if not _denied("the insider tradingcard club")

test_metachar_escaped if _denied("I like c++ a lot")

test_metachar_not_regex if not _denied("I like cc a lot")

test_no_config_no_deny if count(topics.deny) == 0 with input as {"phase": "request", "prompt": "weapons"}

test_empty_entries_ignored if {
	count(topics.deny) == 0 with input as {"phase": "request", "prompt": "anything"}
		with data.switchyard.config as {"topics": {"deny": ["", "   "]}}
}

test_response_phase if {
	d := topics.deny with input as {"phase": "response", "prompt": "x", "output": "weapons list"}
		with data.switchyard.config as _cfg
	some x in d
	x.kind == "content"
	startswith(x.reason, "response")
}

test_deny_shape if {
	d := topics.deny with input as {"phase": "request", "prompt": "weapons"} with data.switchyard.config as _cfg
	d == {{"policy": "topics", "kind": "content", "reason": "request mentions a denied topic: \"weapons\""}}
}
