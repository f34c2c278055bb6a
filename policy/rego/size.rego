# size: deny prompts whose token estimate exceeds max_prompt_tokens.
# Default (no max_prompt_tokens configured): no limit. Request phase only.
package switchyard.policies.size

import data.switchyard.lib

deny contains {
	"policy": "size",
	"kind": "content",
	"reason": sprintf("prompt is too large: estimated %v tokens, limit is %v", [input.token_estimate, lib.max_prompt_tokens]),
} if {
	lib.is_request
	lib.max_prompt_tokens != null
	is_number(input.token_estimate)
	input.token_estimate > lib.max_prompt_tokens
}
