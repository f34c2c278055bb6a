# A small policy set for the guard stage's tests (the default library is
# policy/rego).
package switchyard

decision := object.union({
	"allow": count(deny) == 0,
	"deny": deny,
	"redact": redact,
	"review": review,
	"tags": tags,
	"cap": {"max_tokens": 20},
}, _route)

# "route": force a model pool
_route := {"route": "m-small"} if contains(input.prompt, "small model")
else := {"route": "m-closed"} if contains(input.prompt, "closed model")
else := {"route": "no-such-pool"} if contains(input.prompt, "missing model")
else := {}

text := input.prompt if input.phase == "request"

text := input.output if input.phase == "response"

deny contains {"policy": "secrets", "kind": "content", "reason": "the text holds an API key"} if regex.match(`sk-[A-Za-z0-9]{12,}`, text)

deny contains {"policy": "access", "kind": "access", "reason": "tenant blocked may not use this route"} if input.principal.tenant == "blocked"

redact contains {"policy": "pii", "text": m, "replacement": "[EMAIL]"} if {
	input.phase == "request"
	some m in regex.find_n(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`, input.prompt, -1)
}

review contains {"policy": "legal", "reason": "legal advice is reviewed"} if {
	input.phase == "request"
	contains(lower(input.prompt), "legal advice")
}

tags contains "pii" if count(redact) > 0

tags contains "checked"
