# Shared helpers for the Switchyard guard policies.
#
# This package lives outside data.switchyard.policies on purpose: the
# aggregator (decision.rego) collects rules from every package under
# data.switchyard.policies, and helpers must not be mistaken for a policy.
package switchyard.lib

# --- phase and text under inspection -------------------------------------

default phase := "request"

phase := input.phase if input.phase == "response"

is_request if phase == "request"

is_response if phase == "response"

# The text every content policy scans. Request phase: the joined prompt
# (falling back to the messages when the gateway did not send one).
# Response phase: the model output (for streams, the current window).
default text := ""

text := _request_text if is_request

text := input.output if {
	is_response
	is_string(input.output)
}

_request_text := input.prompt if is_string(input.prompt)
else := concat("\n", [m.content | some m in input.messages; is_string(m.content)])

# Lower-cased copy, computed once per evaluation and shared by policies.
lower_text := lower(text)

# Cost note: Go's regexp engine scans ~1 KB in 15-40 µs for any pattern
# without a literal prefix, so every regex is gated by cheap literal checks
# (contains / indexof), which run at memory speed.
_digits := ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

# true when the text contains at least one ASCII digit (early exit).
has_digit if {
	some d in _digits
	contains(text, d)
}

# Long runs of base64/hex/url-safe characters; shared by the secrets
# (entropy) and injection (encoded instructions) policies so the regex
# runs once per evaluation. Gated on has_digit: the entropy check requires
# a digit anyway, and base64 of 18+ bytes of text virtually always has one.
default long_tokens := []

long_tokens := regex.find_n(`[A-Za-z0-9+/=_-]{24,}`, text, -1) if has_digit

# --- configuration with defaults ------------------------------------------
# data.switchyard.config may be absent entirely; every setting has a default.

default pii_mode := "redact"

pii_mode := m if {
	m := data.switchyard.config.pii
	m in {"redact", "deny", "flag"}
}

default injection_mode := "flag"

injection_mode := m if {
	m := data.switchyard.config.injection
	m in {"flag", "deny"}
}

# null means "no limit".
default max_prompt_tokens := null

max_prompt_tokens := n if {
	n := data.switchyard.config.max_prompt_tokens
	is_number(n)
	n > 0
}

default topics_deny := []

topics_deny := [w |
	some w in data.switchyard.config.topics.deny
	is_string(w)
	trim_space(w) != ""
]

default models := {}

models := m if {
	m := data.switchyard.config.models
	is_object(m)
}
