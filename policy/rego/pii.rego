# pii: personal data in prompts and outputs.
#
# Detected types (finding "type" -> replacement):
#   email [EMAIL], phone [PHONE], card [CARD] (Luhn-validated + IIN prefix),
#   iban [IBAN] (length + mod-97 validated), ssn [SSN] (US, invalid ranges
#   excluded), ni [NI] (UK National Insurance number), dni [DNI] (Spanish
#   DNI, mod-23 check letter validated), ipv4 / ipv6 [IP].
#
# Request phase, by data.switchyard.config.pii:
#   "redact" (default): a redact entry per distinct match, plus tags;
#   "deny": deny (kind content), plus tags;  "flag": tags only.
#
# Response phase (redaction cannot apply to output): deny kind "content"
# only for HIGH-RISK types - cards, IBANs and national ids (SSN, NI, DNI).
# Emails, phone numbers and IP addresses in answers are routinely legitimate
# (contact pages, docs, examples a user asked for), so they are only tagged.
#
# Obfuscated forms ("jane at example dot com") are deliberately NOT detected:
# they are the user's own way of not sharing a machine-readable address and
# the false-positive cost of matching " at " / " dot " in prose is high.
package switchyard.policies.pii

import data.switchyard.lib

replacement := {
	"email": "[EMAIL]",
	"phone": "[PHONE]",
	"card": "[CARD]",
	"iban": "[IBAN]",
	"ssn": "[SSN]",
	"ni": "[NI]",
	"dni": "[DNI]",
	"ipv4": "[IP]",
	"ipv6": "[IP]",
}

_label := {
	"email": "an email address",
	"phone": "a phone number",
	"card": "a payment card number",
	"iban": "an IBAN",
	"ssn": "a US social security number",
	"ni": "a UK national insurance number",
	"dni": "a Spanish national id (DNI)",
	"ipv4": "an IP address",
	"ipv6": "an IP address",
}

high_risk := {"card", "iban", "ssn", "ni", "dni"}

# ---------------------------------------------------------------- detection
# switchyard.pii (Go, policy/detect) finds every type in one call; the rules
# it applies, type by type:
#   email  local@domain.tld (not localhost, @decorators, @npm/scopes).
#   phone  international (+CC ...), US (NXX) NXX-XXXX, EU national format
#          (leading 0); 9-15 digits (national numbers at most 12); not a
#          run inside a longer phone match, a card, IBAN or national id,
#          nor the SSN shape NNN-NN-NNNN. Unseparated digit runs are not
#          phones (order numbers, ids) unless "+"-prefixed.
#   card   13-19 digits (spaces or dashes allowed) whose brand prefix AND
#          length fit (Visa, Mastercard, Amex, Diners, Discover, JCB,
#          UnionPay) and that pass the Luhn check.
#   iban   country code, check digits, 15-34 characters in all (the country's
#          length where it is fixed), ISO 13616 mod-97 check equal to 1.
#   ssn    AAA-GG-SSSS, never-issued ranges excluded (area 000, 666,
#          900-999, group 00, serial 0000, the published samples);
#          unseparated 9-digit runs only after an "SSN"/"social security" cue.
#   ni     UK National Insurance: two allowed prefix letters, six digits,
#          suffix A-D; unallocated prefixes BG GB NK KN TN NT ZZ excluded.
#   dni    Spanish DNI: 8 digits and the mod-23 check letter.
#   ipv4   dotted quads 0-255 without leading zeros, not glued to words or
#          longer dotted runs, not after a version cue (version, ver,
#          release, build, firmware, rev, ==, @); 0.x, 127.x, 255.x skipped.
#   ipv6   the full 8-group form, or one "::" with 2-7 groups and at least
#          4 hex digits (not "std::", times or MAC addresses).
findings contains f if some f in switchyard.pii(lib.text)

# Luhn and IBAN checks, for policies of your own.
luhn_valid(digits) if switchyard.luhn(digits)

iban_valid(c) if switchyard.mod97(concat("", [substring(c, 4, -1), substring(c, 0, 4)])) == 1

mod97(s) := switchyard.mod97(s)

# ---------------------------------------------------------------- actions
found_types contains f.type if some f in findings

# "pii" and "pii:<type>" for each type found. (One rule, not two: each rule
# costs an evaluation, also when it finds nothing.)
tags contains tag if {
	some f in findings
	some tag in ["pii", sprintf("pii:%s", [f.type])]
}

redact contains {"policy": "pii", "text": f.text, "replacement": replacement[f.type]} if {
	some f in findings
	lib.is_request
	lib.pii_mode == "redact"
}

deny contains {
	"policy": "pii",
	"kind": "content",
	"reason": sprintf("request contains %s", [_label[t]]),
} if {
	lib.is_request
	lib.pii_mode == "deny"
	some t in found_types
}

deny contains {
	"policy": "pii",
	"kind": "content",
	"reason": sprintf("response contains %s", [_label[t]]),
} if {
	lib.is_response
	some t in found_types
	t in high_risk
}
