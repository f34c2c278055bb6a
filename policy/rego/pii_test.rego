package switchyard.policies.pii_test

import data.switchyard.policies.pii

_req(text) := {"phase": "request", "prompt": text, "messages": [{"role": "user", "content": text}]}

_resp(text) := {"phase": "response", "prompt": "q", "output": text}

_types(text) := x if {
	x := {f.type | some f in pii.findings} with input as _req(text)
}

_texts(text) := x if {
	x := {f.text | some f in pii.findings} with input as _req(text)
}

# ---------------------------------------------------------------- email
test_email_redacted if {
	r := pii.redact with input as _req("mail me at jane.doe+work@example.co.uk please")
	r == {{"policy": "pii", "text": "jane.doe+work@example.co.uk", "replacement": "[EMAIL]"}}
}

test_email_tags if {
	t := pii.tags with input as _req("contact bob@corp.io")
	t == {"pii", "pii:email"}
}

test_email_trailing_dot_excluded if {
	_texts("Write to ops@acme.com.") == {"ops@acme.com"}
}

test_email_obfuscated_not_detected if count(_types("jane at example dot com")) == 0

test_email_localhost_not_detected if count(_types("ssh root@localhost and run it")) == 0

test_email_decorator_not_detected if count(_types("use @pytest.fixture and @Override")) == 0

test_email_npm_scope_not_detected if count(_types("install @types/node and @babel/core")) == 0

# ---------------------------------------------------------------- phone
test_phone_international if _types("call +44 20 7946 0958 tomorrow") == {"phone"}

test_phone_international_parens if _texts("ring +1 (415) 555-0134 now") == {"+1 (415) 555-0134"}

test_phone_us_dashes if _texts("my cell is 415-555-0134") == {"415-555-0134"}

test_phone_us_parens if _texts("office: (212) 555-0199.") == {"(212) 555-0199"}

test_phone_us_dots if _types("fax 312.555.0172") == {"phone"}

test_phone_fr if _types("appelez le 06 12 34 56 78") == {"phone"}

test_phone_de if _types("Telefon 030 1234567 bitte") == {"phone"}

test_phone_uk_national if _types("ring 020 7946 0958") == {"phone"}

test_phone_replacement if {
	r := pii.redact with input as _req("415-555-0134")
	r == {{"policy": "pii", "text": "415-555-0134", "replacement": "[PHONE]"}}
}

test_phone_date_not_detected if count(_types("on 01-02-2024 we met")) == 0

test_phone_iso_date_not_detected if count(_types("released 2024-01-15")) == 0

test_phone_plain_digits_not_detected if count(_types("order 4155550134 shipped")) == 0

test_phone_short_not_detected if count(_types("room 555-0134")) == 0

test_phone_version_not_detected if count(_types("version 2.10.3 and 0.9.12")) == 0

test_phone_ssn_shape_is_ssn_not_phone if _types("SSN 078-05-1121") == {"ssn"}

test_phone_plus_points_not_detected if count(_types("a +15 point gain")) == 0

# ---------------------------------------------------------------- cards
test_card_visa if _types("card 4111 1111 1111 1111 exp 12/27") == {"card"}

test_card_visa_dashes if _texts("4111-1111-1111-1111") == {"4111-1111-1111-1111"}

test_card_mastercard_compact if _types("5555555555554444") == {"card"}

test_card_amex if _types("amex 3782 822463 10005") == {"card"}

test_card_replacement if {
	r := pii.redact with input as _req("pay with 4242424242424242")
	r == {{"policy": "pii", "text": "4242424242424242", "replacement": "[CARD]"}}
}

test_card_luhn_fail_not_detected if count(_types("card 4111 1111 1111 1112")) == 0

test_card_bad_prefix_not_detected if count(_types("tracking 9999999999999995")) == 0

test_card_order_number_not_detected if count(_types("order #100023456789")) == 0

test_luhn_valid if pii.luhn_valid("79927398713")

test_luhn_invalid if not pii.luhn_valid("79927398710")

# ---------------------------------------------------------------- IBAN
test_iban_de_spaced if _types("IBAN DE89 3704 0044 0532 0130 00 thanks") == {"iban"}

test_iban_gb_compact if _texts("GB82WEST12345698765432") == {"GB82WEST12345698765432"}

test_iban_fr if _types("FR14 2004 1010 0505 0001 3M02 606") == {"iban"}

test_iban_nl if _types("NL91ABNA0417164300") == {"iban"}

test_iban_replacement if {
	r := pii.redact with input as _req("NL91ABNA0417164300")
	r == {{"policy": "pii", "text": "NL91ABNA0417164300", "replacement": "[IBAN]"}}
}

test_iban_bad_checksum if count(_types("DE89 3704 0044 0532 0130 01")) == 0

test_iban_bad_length if count(_types("DE89 3704 0044 0532 0130")) == 0

test_iban_product_code if count(_types("SKU AB12 CDEF GHIJ KLMN")) == 0

test_mod97_small if pii.mod97("194") == 0

test_mod97_big if pii.mod97("370400440532013000131489") == 1

test_iban_valid_direct if pii.iban_valid("GB82WEST12345698765432")

# ---------------------------------------------------------------- SSN
test_ssn if _texts("my SSN is 536-22-8174.") == {"536-22-8174"}

test_ssn_cue_unseparated if _texts("social security number: 536228174") == {"536228174"}

test_ssn_replacement if {
	r := pii.redact with input as _req("536-22-8174")
	r == {{"policy": "pii", "text": "536-22-8174", "replacement": "[SSN]"}}
}

test_ssn_area_000 if count(_types("000-12-3456")) == 0

test_ssn_area_666 if count(_types("666-12-3456")) == 0

test_ssn_area_9xx if count(_types("912-34-5678")) == 0

test_ssn_group_00 if count(_types("123-00-4567")) == 0

test_ssn_serial_0000 if count(_types("123-45-0000")) == 0

test_ssn_woolworth if count(_types("078-05-1120")) == 0

test_ssn_unseparated_without_cue if count(_types("ticket 536228174")) == 0

# ---------------------------------------------------------------- UK NI
test_ni if _types("NI number QQ... no: AB 12 34 56 C") == {"ni"}

test_ni_compact if _texts("JG103759A") == {"JG103759A"}

test_ni_bad_prefix if count(_types("GB 12 34 56 A")) == 0

test_ni_bad_letter if count(_types("DA 12 34 56 A")) == 0

test_ni_bad_suffix if count(_types("AB 12 34 56 E")) == 0

# ---------------------------------------------------------------- ES DNI
test_dni if _types("DNI 12345678Z") == {"dni"}

test_dni_bad_letter if count(_types("DNI 12345678A")) == 0

# ---------------------------------------------------------------- IPv4
test_ipv4 if _texts("server at 10.20.30.40 is down") == {"10.20.30.40"}

test_ipv4_end_of_sentence if _texts("ping 192.168.1.1.") == {"192.168.1.1"}

test_ipv4_replacement if {
	r := pii.redact with input as _req("from 203.0.113.7")
	r == {{"policy": "pii", "text": "203.0.113.7", "replacement": "[IP]"}}
}

test_ipv4_bad_octet if count(_types("999.1.1.1")) == 0

test_ipv4_octet_256 if count(_types("host 10.0.0.256")) == 0

test_ipv4_version_word if count(_types("upgrade to version 1.2.3.4 today")) == 0

test_ipv4_version_v if count(_types("tag v1.2.3.4 released")) == 0

test_ipv4_five_parts if count(_types("build 1.2.3.4.5")) == 0

test_ipv4_pip_pin if count(_types("pin foo==1.2.3.4")) == 0

test_ipv4_loopback_skipped if count(_types("curl 127.0.0.1:8080")) == 0

test_ipv4_netmask_skipped if count(_types("mask 255.255.255.0")) == 0

test_ipv4_leading_zero if count(_types("id 01.02.03.04")) == 0

# ---------------------------------------------------------------- IPv6
test_ipv6_full if _types("addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334") == {"ipv6"}

test_ipv6_compressed if _texts("gateway 2001:db8::8a2e:370:7334 ok") == {"2001:db8::8a2e:370:7334"}

test_ipv6_link_local if _types("iface fe80::1ff:fe23:4567:890a") == {"ipv6"}

test_ipv6_time_not_detected if count(_types("at 12:30:45 sharp")) == 0

test_ipv6_mac_not_detected if count(_types("mac 00:1a:2b:3c:4d:5e")) == 0

test_ipv6_cpp_not_detected if count(_types("use std::vector and a::b")) == 0

test_ipv6_loopback_not_detected if count(_types("bind ::1 only")) == 0

# ---------------------------------------------------------------- modes
test_mode_deny if {
	d := pii.deny with input as _req("jane@example.com") with data.switchyard.config as {"pii": "deny"}
	d == {{"policy": "pii", "kind": "content", "reason": "request contains an email address"}}
}

test_mode_deny_no_redact if {
	r := pii.redact with input as _req("jane@example.com") with data.switchyard.config as {"pii": "deny"}
	count(r) == 0
}

test_mode_flag_tags_only if {
	inp := _req("jane@example.com")
	count(pii.redact) == 0 with input as inp with data.switchyard.config as {"pii": "flag"}
	count(pii.deny) == 0 with input as inp with data.switchyard.config as {"pii": "flag"}
	pii.tags == {"pii", "pii:email"} with input as inp with data.switchyard.config as {"pii": "flag"}
}

test_mode_unknown_falls_back_to_redact if {
	r := pii.redact with input as _req("jane@example.com") with data.switchyard.config as {"pii": "bogus"}
	count(r) == 1
}

test_reason_does_not_quote_value if {
	d := pii.deny with input as _req("card 4111111111111111") with data.switchyard.config as {"pii": "deny"}
	some x in d
	not contains(x.reason, "4111")
}

test_multiple_types if {
	_types("jane@example.com, 415-555-0134, 4111111111111111") == {"email", "phone", "card"}
}

test_clean_prompt_nothing if {
	count(pii.findings) == 0 with input as _req("Summarise the meeting notes from Tuesday in three bullet points.")
}

# ---------------------------------------------------------------- response
test_response_card_denied if {
	d := pii.deny with input as _resp("Sure, the card is 4111 1111 1111 1111.")
	d == {{"policy": "pii", "kind": "content", "reason": "response contains a payment card number"}}
}

test_response_iban_denied if count(pii.deny) == 1 with input as _resp("IBAN: GB82 WEST 1234 5698 7654 32")

test_response_ssn_denied if count(pii.deny) == 1 with input as _resp("SSN 536-22-8174")

test_response_email_not_denied if {
	count(pii.deny) == 0 with input as _resp("Contact support@example.com or 415-555-0134")
	pii.tags["pii:email"] with input as _resp("Contact support@example.com or 415-555-0134")
}

test_response_never_redacts if count(pii.redact) == 0 with input as _resp("card 4111111111111111")

test_response_scans_output_not_prompt if {
	count(pii.findings) == 0 with input as {"phase": "response", "prompt": "jane@example.com", "output": "ok"}
}
