# injection: prompt-injection / jailbreak heuristics (request phase only).
#
# data.switchyard.config.injection:
#   "flag" (default): tags only ("prompt_injection", "injection:<family>");
#   "deny": deny kind "content" as well.
#
# Cost: the text is lower-cased once (lib.lower_text) and a short list of
# trigger substrings is checked with contains(); the family regexes only run
# when a trigger is present. Phrases are specific on purpose: "ignore the
# previous error" or "act as a reviewer" must pass.
package switchyard.policies.injection

import data.switchyard.lib

_triggers := [
	"ignore", "disregard", "forget", "system prompt", "dan", "act as", "pretend",
	"jailbreak", "developer mode", "override", "instructions", "no restrictions",
	"unrestricted", "unfiltered", "uncensored", "system message", "system>", "[system",
	"system override",
]

_families := {
	"ignore_instructions": `\b(?:ignore|disregard|forget|skip|bypass|override)\s+(?:all\s+|any\s+|each\s+|every\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?(?:previous|prior|above|preceding|earlier|original|initial|system|safety)\s+(?:instructions?|prompts?|rules|directions|guidelines|directives|messages?|context)`,
	"system_prompt_override": `\b(?:disregard|ignore|forget|override|bypass)\s+(?:the\s+|your\s+)?(?:system\s+prompt|system\s+message|guardrails|safety\s+(?:rules|filters|guidelines))`,
	"persona_jailbreak": `\byou\s+are\s+(?:now\s+)?(?:dan\b|a\s+dan\b|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)\b|in\s+(?:developer|god|dan)\s+mode|free\s+from\s+(?:all\s+)?(?:restrictions|rules))|\bdo\s+anything\s+now\b|\b(?:dan|developer|god)\s+mode\s+(?:is\s+(?:now\s+)?)?(?:enabled|activated)\b|\bjailbreak(?:ed)?\s+mode\b`,
	"prompt_exfiltration": `\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|give\s+me|what\s+(?:is|are))\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|exact\s+|original\s+|hidden\s+|secret\s+|initial\s+)?(?:system\s+prompt|system\s+message|hidden\s+instructions|initial\s+instructions|original\s+instructions|developer\s+message)`,
	"unrestricted_roleplay": `\b(?:act|behave|respond|answer)\s+as\b[^.\n]{0,60}?\b(?:without\s+(?:any\s+)?(?:restrictions|limitations|filters|rules|guidelines|censorship|safety)|with\s+no\s+(?:restrictions|limitations|filters|rules))|\bpretend\s+(?:that\s+)?(?:you\s+are|to\s+be|you\s+have)\b[^.\n]{0,60}?\b(?:no|without)\s+(?:restrictions|rules|filters|limitations|guidelines)`,
	"fake_authority": `(?:^|\n)\s*(?:new|updated|revised)\s+(?:system\s+)?instructions\s*:|\[\s*system\s*\]|<\s*/?\s*system\s*>|\bsystem\s+override\b`,
}

_family_hits(t) := {name |
	some name, re in _families
	regex.match(re, t)
}

# The trigger check is a builtin call in the rule itself rather than a
# function of ours: a function call is cached on its argument, which here
# is the whole text.
families contains name if {
	lib.is_request
	switchyard.contains_any(lib.lower_text, _triggers)
	some name in _family_hits(lib.lower_text)
}

# Base64-looking blobs that decode to text containing an injection phrase.
# (switchyard.decoded_tokens only looks when the text contains a digit.)
families contains "encoded_instructions" if {
	lib.is_request
	some tok in switchyard.decoded_tokens(lib.text)
	decoded := lower(tok)
	switchyard.contains_any(decoded, _triggers)
	count(_family_hits(decoded)) > 0
}

# "prompt_injection" and "injection:<family>" for each family found.
tags contains tag if {
	some f in families
	some tag in ["prompt_injection", sprintf("injection:%s", [f])]
}

deny contains {
	"policy": "injection",
	"kind": "content",
	"reason": sprintf("request looks like a prompt-injection attempt (%s)", [concat(", ", sort(families))]),
} if {
	lib.injection_mode == "deny"
	count(families) > 0
}
