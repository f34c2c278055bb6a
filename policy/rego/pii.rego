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

_text := lib.text

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

# ---------------------------------------------------------------- email
_email_re := `[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`

findings contains {"type": "email", "text": m} if {
	contains(_text, "@")
	some m in regex.find_n(_email_re, _text, -1)
}

# ---------------------------------------------------------------- phone
# international (+CC ...), US (NXX) NXX-XXXX, EU national format (leading 0).
# Unseparated digit runs are not phones (order numbers, ids) unless "+"-prefixed.
_phone_res := [
	`\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}`,
	`\(?\b[2-9]\d{2}\)?[ .-]?\d{3}[ .-]\d{4}\b`,
	`\b0\d{1,4}(?:[ /-]\d{2,8}){1,4}\b`,
]

# each phone pattern with its literal gate
_phone_gate(0) if contains(_text, "+")

_phone_gate(1) if lib.has_digit

_phone_gate(2) if contains(_text, "0")

_phone_raw contains m if {
	some i, re in _phone_res
	_phone_gate(i)
	some m in regex.find_n(re, _text, -1)
	n := count(regex.replace(m, `\D`, ""))
	n >= 9
	n <= 15
	_phone_len_ok(m, n)
	not regex.match(`^\d{3}-\d{2}-\d{4}$`, m) # SSN shape, handled below
}

findings contains {"type": "phone", "text": m} if {
	some m in _phone_raw
	not _phone_covered(m)
	not _inside_strong(m)
}

# national (leading 0) numbers have at most 12 digits; "+" numbers and the
# "00" international access prefix (0044 ...) up to 15
_phone_len_ok(m, _) if not startswith(m, "0")

_phone_len_ok(m, _) if startswith(m, "00")

_phone_len_ok(m, n) if {
	startswith(m, "0")
	not startswith(m, "00")
	n <= 12
}

# a shorter match inside a longer phone match (e.g. US form inside +1 form)
_phone_covered(m) if {
	some o in _phone_raw
	o != m
	contains(o, m)
}

# digit groups that are part of a card / IBAN / national id are not phones
_inside_strong(m) if {
	some f in _strong
	contains(f.text, m)
}

# ... nor are digit groups inside IBAN-shaped strings that fail the checksum
_inside_strong(m) if {
	some s in _iban_shaped
	contains(s, m)
}

# high-risk findings (cards, IBANs, national ids)
findings contains f if some f in _strong

# ---------------------------------------------------------------- cards
_card_re := `\b(?:\d[ -]?){12,18}\d\b`

# Brand prefix AND length must fit (Visa 13/16/19, Mastercard 51-55 and
# 22-27 16, Amex 34/37 15, Diners 300-305/36/38 14-19, Discover
# 6011/644-649/65 16-19, JCB 35 16-19, UnionPay 62 16-19). This keeps digit
# runs inside IBANs, ids and order numbers from passing on Luhn alone.
_iin_re := `^(?:4(?:\d{12}|\d{15}|\d{18})|(?:5[1-5]|2[2-7])\d{14}|3[47]\d{13}|3(?:0[0-5]|[68]\d)\d{11,16}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35\d{14,17}|62\d{14,17})$`

_strong contains {"type": "card", "text": m} if {
	lib.has_digit
	some m in regex.find_n(_card_re, _text, -1)
	d := regex.replace(m, `[ -]`, "")
	regex.match(_iin_re, d)
	luhn_valid(d)
}

# Luhn: from the rightmost digit, double every second digit (subtract 9
# when the double exceeds 9); the sum must be a multiple of 10.
luhn_valid(digits) if {
	ds := [to_number(c) | some c in split(digits, "")]
	n := count(ds)
	total := sum([_luhn_term(d, (n - 1) - i) | some i, d in ds])
	total % 10 == 0
}

_luhn_term(d, pos) := d if pos % 2 == 0

_luhn_term(d, pos) := d * 2 if {
	pos % 2 == 1
	d < 5
}

_luhn_term(d, pos) := (d * 2) - 9 if {
	pos % 2 == 1
	d >= 5
}

# ---------------------------------------------------------------- IBAN
_iban_re := `\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`

_iban_length := {
	"AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28,
	"CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27,
	"GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
	"LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18,
	"NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19,
	"SK": 24, "SM": 27, "TR": 26,
}

default _iban_shaped := []

_iban_shaped := regex.find_n(_iban_re, _text, -1) if lib.has_digit

_strong contains {"type": "iban", "text": m} if {
	some m in _iban_shaped
	c := replace(m, " ", "")
	_iban_length_ok(c)
	iban_valid(c)
}

_iban_length_ok(c) if _iban_length[substring(c, 0, 2)] == count(c)

_iban_length_ok(c) if {
	not _iban_length[substring(c, 0, 2)]
	count(c) >= 15
	count(c) <= 34
}

# ISO 13616: move the first four characters to the end, map A..Z to 10..35,
# and the resulting integer mod 97 must be 1.
iban_valid(c) if mod97(_iban_numeric(c)) == 1

_alnum := "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_iban_numeric(c) := concat("", [format_int(indexof(_alnum, ch), 10) |
	some ch in split(concat("", [substring(c, 4, -1), substring(c, 0, 4)]), "")
])

_zeros := "0000000000000000000000000000000000000000000000000000000000000000000000"

# mod97(s): s is a decimal string of up to 70 digits (an IBAN expands to at
# most 68). Rego has no loops, and numbers this large lose precision, so the
# classic chunked remainder is unrolled: left-pad to 70 digits, cut into ten
# 7-digit chunks and carry the remainder (r*10^7 + chunk stays < 1e9).
mod97(s) := r9 if {
	count(s) <= 70
	p := concat("", [substring(_zeros, 0, 70 - count(s)), s])
	c := [to_number(substring(p, i * 7, 7)) | some i in numbers.range(0, 9)]
	r0 := c[0] % 97
	r1 := ((r0 * 10000000) + c[1]) % 97
	r2 := ((r1 * 10000000) + c[2]) % 97
	r3 := ((r2 * 10000000) + c[3]) % 97
	r4 := ((r3 * 10000000) + c[4]) % 97
	r5 := ((r4 * 10000000) + c[5]) % 97
	r6 := ((r5 * 10000000) + c[6]) % 97
	r7 := ((r6 * 10000000) + c[7]) % 97
	r8 := ((r7 * 10000000) + c[8]) % 97
	r9 := ((r8 * 10000000) + c[9]) % 97
}

# ---------------------------------------------------------------- US SSN
# AAA-GG-SSSS (dashes). Never issued: area 000, 666, 900-999; group 00;
# serial 0000; plus the famous published samples 078-05-1120 and 219-09-9999.
# Unseparated 9-digit runs only count after an "SSN"/"social security" cue.
_ssn_re := `\b(\d{3})-(\d{2})-(\d{4})\b`

_ssn_cue_re := `(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:is|:|#)?\s*(\d{9})\b`

_strong contains {"type": "ssn", "text": g[0]} if {
	contains(_text, "-")
	lib.has_digit
	some g in regex.find_all_string_submatch_n(_ssn_re, _text, -1)
	ssn_valid(g[1], g[2], g[3])
}

_strong contains {"type": "ssn", "text": g[1]} if {
	_ssn_cue
	some g in regex.find_all_string_submatch_n(_ssn_cue_re, _text, -1)
	ssn_valid(substring(g[1], 0, 3), substring(g[1], 3, 2), substring(g[1], 5, 4))
}

ssn_valid(area, group, serial) if {
	area != "000"
	area != "666"
	not startswith(area, "9")
	group != "00"
	serial != "0000"
	not concat("-", [area, group, serial]) in {"078-05-1120", "219-09-9999"}
}

# ---------------------------------------------------------------- UK NI
# Two prefix letters (D F I Q U V never used, O not second), six digits,
# suffix A-D. Prefixes BG GB NK KN TN NT ZZ are not allocated.
_ni_re := `\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b`

_ssn_cue if contains(lib.lower_text, "ssn")

_ssn_cue if contains(lib.lower_text, "social security")

_strong contains {"type": "ni", "text": g[0]} if {
	lib.has_digit
	some g in regex.find_all_string_submatch_n(_ni_re, _text, -1)
	not g[1] in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}
}

# ---------------------------------------------------------------- ES DNI
# 8 digits + check letter = "TRWAGMYFPDXBNJZSQVHLCKE"[n mod 23].
_dni_re := `\b(\d{8})-?([A-Z])\b`

_strong contains {"type": "dni", "text": g[0]} if {
	lib.has_digit
	some g in regex.find_all_string_submatch_n(_dni_re, _text, -1)
	substring("TRWAGMYFPDXBNJZSQVHLCKE", to_number(g[1]) % 23, 1) == g[2]
}

# ---------------------------------------------------------------- IPv4
# Context groups reject longer dotted runs and glued words (1.2.3.4.5,
# v1.2.3.4, x.1.2.3.4, 10.0.0.1a); a version cue right before
# it (version / ver / release / build / firmware / rev / == / @) marks a
# version string, not an address. Octets must be 0-255 without leading
# zeros. Not personal data, hence skipped: 0.x.x.x, loopback 127.x.x.x and
# netmask-like 255.x.x.x.
_ipv4_re := `(?i)(\b(?:version|ver|release|build|firmware|rev)\.?:?\s+|==|~=|>=|<=|@|[\w.])?\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(\.?\w)?`

findings contains {"type": "ipv4", "text": ip} if {
	contains(_text, ".")
	lib.has_digit
	some g in regex.find_all_string_submatch_n(_ipv4_re, _text, -1)
	g[1] == ""
	g[3] == ""
	ip := g[2]
	regex.match(`^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$`, ip)
	not regex.match(`^(?:0|127|255)\.`, ip)
}

# ---------------------------------------------------------------- IPv6
# Full 8-group form, or a compressed form with exactly one "::" and at least
# two non-empty groups (so "std::", "a::b"-free prose, "::1" and times like
# 12:30:45 or MAC addresses 00:1a:2b:3c:4d:5e do not match).
_ipv6_re := `(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}`

_ipv6_gate if contains(_text, "::")

_ipv6_gate if count(indexof_n(_text, ":")) >= 7

findings contains {"type": "ipv6", "text": m} if {
	_ipv6_gate
	some m in regex.find_n(_ipv6_re, _text, -1)
	ipv6_valid(m)
}

ipv6_valid(s) if regex.match(`(?i)^(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$`, s)

ipv6_valid(s) if {
	count(indexof_n(s, "::")) == 1
	not contains(s, ":::")
	not endswith(trim_suffix(s, "::"), ":")
	parts := [p | some p in split(s, ":"); p != ""]
	count(parts) >= 2
	count(parts) <= 7
	count(concat("", parts)) >= 4
}

# ---------------------------------------------------------------- actions
found_types contains f.type if some f in findings

tags contains "pii" if count(findings) > 0

tags contains sprintf("pii:%s", [t]) if some t in found_types

redact contains {"policy": "pii", "text": f.text, "replacement": replacement[f.type]} if {
	lib.is_request
	lib.pii_mode == "redact"
	some f in findings
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
