package switchyard.policies.secrets_test

import data.switchyard.policies.secrets

_req(text) := {"phase": "request", "prompt": text}

_resp(text) := {"phase": "response", "prompt": "q", "output": text}

_found(text) := x if {
	x := secrets.found with input as _req(text)
}

_denied(text) if count(secrets.deny) > 0 with input as _req(text)

test_openai_key if "OpenAI-style API key" in _found("use sk-9fJ2kLq8Xw3nB7vR1tY6uZ0aP4sD5gH and call the api")

test_openai_project_key if "OpenAI-style API key" in _found("OPENAI_API_KEY=sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z")

test_aws_key if "AWS access key id" in _found("aws_access_key_id = AKIAIOSFODNN7EXAMPLE")

test_github_classic if "GitHub token" in _found("token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R")

test_github_oauth if "GitHub token" in _found("gho_16C7e42F292c6912E7710c838347Ae178B4a")

test_github_pat if "GitHub fine-grained token" in _found("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz")

test_slack if "Slack token" in _found("SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")

test_stripe_live if "Stripe secret key" in _found("stripe key sk_live_51HxYzAbCdEfGhIjKlMnOpQr")

test_stripe_restricted if "Stripe secret key" in _found("rk_live_4eC39HqLyjWDarjtT1zdp7dc")

test_google if "Google API key" in _found("key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY")

test_jwt if "JSON web token" in _found("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")

test_pem if "PEM private key" in _found("-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----")

test_pem_openssh if "PEM private key" in _found("-----BEGIN OPENSSH PRIVATE KEY-----")

test_pem_plain if "PEM private key" in _found("-----BEGIN PRIVATE KEY-----")

test_high_entropy if "high-entropy token (possible credential)" in _found("secret: Q7vX9kLm2pR8sT4wY1zB6nC3dF5gH0jK")

test_deny_shape if {
	d := secrets.deny with input as _req("AKIAIOSFODNN7EXAMPLE")
	d == {{"policy": "secrets", "kind": "content", "reason": "request contains a credential: AWS access key id"}}
}

test_reason_never_quotes_secret if {
	d := secrets.deny with input as _req("sk-9fJ2kLq8Xw3nB7vR1tY6uZ0aP4sD5gH")
	every x in d {
		not contains(x.reason, "9fJ2")
	}
}

test_response_phase_denied if {
	d := secrets.deny with input as _resp("here you go: ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R")
	some x in d
	x.kind == "content"
	startswith(x.reason, "response contains")
}

test_tag if secrets.tags == {"secret"} with input as _req("AKIAIOSFODNN7EXAMPLE")

# ---------------------------------------------------------------- negatives
test_sklearn_not_secret if not _denied("pip install scikit-learn; import sklearn; sk-learn is old")

test_task_word_not_secret if not _denied("the task-force reviewed the risk-assessment-for-q3-planning doc")

test_short_sk_not_secret if not _denied("sk-1234 is a placeholder")

test_git_sha1_not_secret if not _denied("revert commit 9fceb02d0ae598e95dc970b74767f19372d61af8 please")

test_sha256_not_secret if not _denied("sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

test_md5_not_secret if not _denied("md5 d41d8cd98f00b204e9800998ecf8427e")

test_uuid_not_secret if not _denied("request id 550e8400-e29b-41d4-a716-446655440000 failed")

test_long_identifier_not_secret if not _denied("call getUserAccountSettingsForTenantById in the service")

test_snake_identifier_not_secret if not _denied("set MAX_CONCURRENT_REQUESTS_PER_UPSTREAM_PROVIDER=20")

test_path_not_secret if not _denied("see src/main/java/com/example/service/UserController2.java")

test_base64_text_not_secret if not _denied("decode SGVsbG8gV29ybGQsIHRoaXMgaXMgYSB0ZXN0IG1lc3NhZ2U=")

test_akia_word_not_secret if not _denied("AKIA is the prefix AWS uses for access key ids")

test_public_key_not_secret if not _denied("-----BEGIN PUBLIC KEY-----")

test_jwt_prose_not_secret if not _denied("a JWT starts with eyJ because of the JSON header")

# ---------------------------------------------------------------- entropy math
test_entropy_uniform if {
	abs(secrets.entropy("abcdefgh") - 3) < 0.00001
}

test_entropy_constant if secrets.entropy("aaaaaaaa") == 0

test_entropy_random_above_threshold if secrets.entropy("Q7vX9kLm2pR8sT4wY1zB6nC3dF5gH0jK") >= secrets.entropy_threshold

test_entropy_identifier_below_threshold if secrets.entropy("getUserAccountSettingsForTenant1") < secrets.entropy_threshold
