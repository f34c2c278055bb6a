# topics: deny-list of words / phrases from data.switchyard.config.topics.deny.
# Case-insensitive, whole-word match (a phrase's words may be separated by
# any whitespace). Applies to the prompt (request) and the output (response).
package switchyard.policies.topics

import data.switchyard.lib

# Regex for one deny-list entry: metacharacters escaped, whitespace runs
# generalised, anchored on word boundaries.
# \b is only added on a side that starts/ends with a word character, so
# entries such as "c++" still match.
_pattern(w) := concat("", [_edge(substring(t, 0, 1)), body, _edge(substring(t, count(t) - 1, 1))]) if {
	t := lower(trim_space(w))
	escaped := regex.replace(t, `[.*+?^${}()|\[\]\\]`, `\$0`)
	body := regex.replace(escaped, `\s+`, `\s+`)
}

_edge(c) := `\b` if regex.match(`^\w$`, c)
else := ""

_hits contains w if {
	count(lib.topics_deny) > 0
	some w in lib.topics_deny
	contains(lib.lower_text, split(lower(trim_space(w)), " ")[0]) # cheap prefilter
	regex.match(_pattern(w), lib.lower_text)
}

_where := "response" if lib.is_response
else := "request"

deny contains {
	"policy": "topics",
	"kind": "content",
	"reason": sprintf("%s mentions a denied topic: %q", [_where, w]),
} if {
	some w in _hits
}

tags contains "topic_denied" if count(_hits) > 0
