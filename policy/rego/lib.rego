# Shared helpers for the Switchyard guard policies.
#
# This package lives outside data.switchyard.policies on purpose: the
# aggregator (decision.rego) collects rules from every package under
# data.switchyard.policies, and helpers must not be mistaken for a policy.
package switchyard.lib

# --- phase and text under inspection -------------------------------------

default phase := "request"

phase := input.phase if input.phase == "response"

# is_request and is_response test input.phase themselves (as phase does):
# one rule each, which OPA's rule index selects on input.phase.
is_request if not input.phase == "response"

is_response if input.phase == "response"

# The text every content policy scans. Request phase: the joined prompt
# (falling back to the messages when the gateway did not send one).
# Response phase: the model output (for streams, the current window).
default text := ""

text := _request_text if not input.phase == "response"

text := input.output if {
	input.phase == "response"
	is_string(input.output)
}

_request_text := input.prompt if is_string(input.prompt)
else := concat("\n", [m.content | some m in input.messages; is_string(m.content)])

# Lower-cased copy, computed once per evaluation and shared by policies.
# switchyard.lower is lower computed in Go (the WebAssembly evaluator then
# hands it to switchyard.contains_any without reading it back).
lower_text := switchyard.lower(text)

# true when the text contains at least one ASCII digit. (The default
# policies' detectors run in Go, see switchyard.pii; this is for yours.)
has_digit if regex.match(`[0-9]`, text)

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
