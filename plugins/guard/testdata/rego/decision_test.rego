package switchyard_test

import data.switchyard

test_secret_denied if {
	not switchyard.decision.allow with input as {"phase": "request", "prompt": "key sk-abcdefghijklmnop"}
}

test_clean_allowed if {
	switchyard.decision.allow with input as {"phase": "request", "prompt": "hello"}
}

test_email_redacted if {
	r := switchyard.decision.redact with input as {"phase": "request", "prompt": "mail a.b@example.org"}
	some e in r
	e.text == "a.b@example.org"
}
