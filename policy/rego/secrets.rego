# secrets: credentials in prompts (request) and answers (response).
# Deny kind "content" in both phases; reasons name the credential type only,
# never the value.
#
# 1. Known formats, each guarded by a cheap literal trigger (contains) so a
#    clean text costs a handful of substring scans, not a dozen regexes.
# 2. PEM private key headers.
# 3. High-entropy tokens: a run of >= 32 base64/url-safe characters with
#    Shannon entropy >= entropy_threshold bits/char (computed in Rego).
#    Documented choices for the entropy check:
#    - Hex-only tokens (optionally with dashes) are skipped entirely: git
#      SHAs, content hashes (md5/sha1/sha256) and UUIDs are everyday,
#      non-secret content, and hex caps entropy at 4 bits/char anyway.
#      Hex-encoded credentials with a known prefix are still caught by (1).
#    - Tokens must mix upper case, lower case and digits (random base64
#      virtually always does; identifiers, words and paths rarely do).
#    - Tokens that base64-decode to printable text are encoded text, not key
#      material; the injection policy inspects those.
package switchyard.policies.secrets

import data.switchyard.lib

_text := lib.text

_known := {
	"OpenAI-style API key": {"triggers": ["sk-"], "re": `\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}`},
	"AWS access key id": {"triggers": ["AKIA", "ASIA", "AGPA", "AIDA", "AROA"], "re": `\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b`},
	"GitHub token": {"triggers": ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], "re": `\bgh[pousr]_[A-Za-z0-9]{36,}\b`},
	"GitHub fine-grained token": {"triggers": ["github_pat_"], "re": `\bgithub_pat_[A-Za-z0-9_]{22,}`},
	"Slack token": {"triggers": ["xox"], "re": `\bxox[abprs]-[A-Za-z0-9-]{10,}`},
	"Stripe secret key": {"triggers": ["_live_"], "re": `\b(?:sk|rk)_live_[A-Za-z0-9]{16,}`},
	"Google API key": {"triggers": ["AIza"], "re": `\bAIza[0-9A-Za-z_-]{35}`},
	"JSON web token": {"triggers": ["eyJ"], "re": `\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}`},
	"PEM private key": {"triggers": ["PRIVATE KEY"], "re": `-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----`},
}

_trigger_ok(triggers) if {
	some t in triggers
	contains(_text, t)
}

found contains name if {
	some name, p in _known
	_trigger_ok(p.triggers)
	regex.match(p.re, _text)
}

# ---------------------------------------------------------------- entropy
entropy_threshold := 4.2

found contains "high-entropy token (possible credential)" if {
	some tok in lib.long_tokens
	high_entropy(tok)
}

high_entropy(tok) if {
	count(tok) >= 32
	not regex.match(`^[0-9a-fA-F-]+$`, tok)
	regex.match(`[a-z]`, tok)
	regex.match(`[A-Z]`, tok)
	regex.match(`[0-9]`, tok)
	not _decodes_to_text(tok)
	entropy(tok) >= entropy_threshold
}

_decodes_to_text(tok) if {
	s := base64.decode(tok)
	regex.match(`^[\x20-\x7E\t\r\n]+$`, s)
}

# Shannon entropy in bits per character:
#   H = log2(n) - (1/n) * sum_c count_c * log2(count_c)
entropy(s) := h if {
	n := count(s)
	chars := {c | some c in split(s, "")}
	weighted := sum([v | some c in chars; k := count(indexof_n(s, c)); v := k * log2(k)])
	h := log2(n) - (weighted / n)
}

# log2 for x >= 1 without a log builtin: x = 2^e * m with m in [1, 2), and
# ln(m) = 2 * atanh((m-1)/(m+1)) by its series (|y| <= 1/3, six terms give
# ~1e-7 accuracy, plenty for a threshold).
log2(x) := e + (_ln_unit(m) / 0.6931471805599453) if {
	x >= 1
	e := count([k | some k in numbers.range(1, 30); bits.lsh(1, k) <= x])
	m := x / bits.lsh(1, e)
}

_ln_unit(m) := 2 * y * (((((1 + (y2 / 3)) + ((y2 * y2) / 5)) + (((y2 * y2) * y2) / 7)) + (((y2 * y2) * (y2 * y2)) / 9)) + ((((y2 * y2) * (y2 * y2)) * y2) / 11)) if {
	y := (m - 1) / (m + 1)
	y2 := y * y
}

# ---------------------------------------------------------------- actions
_where := "response" if lib.is_response
else := "request"

deny contains {
	"policy": "secrets",
	"kind": "content",
	"reason": sprintf("%s contains a credential: %s", [_where, name]),
} if {
	some name in found
}

tags contains "secret" if count(found) > 0
