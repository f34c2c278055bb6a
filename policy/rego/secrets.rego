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

# switchyard.secrets (Go, policy/detect) applies the three checks above in
# one call. Known formats and their triggers:
#   OpenAI-style API key   sk-, sk-proj-, sk-ant-, sk-svcacct- + 20 or more
#   AWS access key id      AKIA / ASIA / AGPA / AIDA / AROA + 16
#   GitHub token           ghp_ gho_ ghu_ ghs_ ghr_ + 36 or more
#   GitHub fine-grained    github_pat_ + 22 or more
#   Slack token            xoxa- xoxb- xoxp- xoxr- xoxs-
#   Stripe secret key      sk_live_ / rk_live_
#   Google API key         AIza + 35
#   JSON web token         eyJ....eyJ....signature
#   PEM private key        -----BEGIN ... PRIVATE KEY-----
found contains name if some name in switchyard.secrets(lib.text)

entropy_threshold := 4.2

# Shannon entropy in bits per character, for policies of your own.
entropy(s) := switchyard.entropy(s)

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
