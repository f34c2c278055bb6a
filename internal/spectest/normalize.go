package spectest

import "strings"

// normalizeComponents rewrites, in place, the component schemas of the
// specification (components.schemas) from the OpenAPI 3.0 dialect they
// partly still use into JSON Schema 2020-12. See normalizer.schema for what
// is rewritten.
func normalizeComponents(schemas map[string]any) {
	for name, sch := range schemas {
		n := normalizer{component: name}
		schemas[name] = n.schema(sch)
	}
}

// normalizer rewrites the schemas of one component.
type normalizer struct {
	// component is the name of the component schema being rewritten; a
	// $recursiveRef "#" inside it means this component.
	component string
}

// schema rewrites v, a schema, and everything under it, and returns the new
// value for v:
//
//   - a schema with nullable: true becomes {"anyOf": [S, {"type": "null"}]},
//     where S is the schema without nullable. S keeps every sibling keyword,
//     $ref included: in 2020-12 a $ref beside other keywords is applied with
//     them, so moving it into the first branch keeps its meaning, whereas
//     leaving it beside the new anyOf would forbid null again;
//   - nullable: false is dropped;
//   - an allOf member that says nothing but nullable: true (the spec's way of
//     making a referenced schema nullable, e.g. allOf: [{$ref: X},
//     {nullable: true}]) is removed and makes the whole allOf schema nullable;
//   - the OpenAPI 3.0 boolean exclusiveMinimum / exclusiveMaximum become the
//     numeric 2020-12 keywords (taking the value of minimum / maximum);
//   - duplicate names in required are dropped (2020-12 wants them unique);
//   - $recursiveAnchor is dropped and $recursiveRef "#" becomes a $ref to the
//     enclosing component, which is what the spec means by it; "#" alone
//     would point at the root of the whole document.
//
// Values that hold data rather than schemas (enum, const, default, example,
// examples and x- extensions) are left alone.
func (n *normalizer) schema(v any) any {
	switch t := v.(type) {
	case []any:
		for i, e := range t {
			t[i] = n.schema(e)
		}
		return t
	case map[string]any:
		return n.object(t)
	default:
		return v
	}
}

func (n *normalizer) object(m map[string]any) any {
	for k, e := range m {
		switch {
		case isSchemaMapKeyword(k):
			if named, ok := e.(map[string]any); ok {
				for name, sch := range named {
					named[name] = n.schema(sch)
				}
			}
		case isDataKeyword(k):
		default:
			m[k] = n.schema(e)
		}
	}
	exclusiveBound(m, "exclusiveMinimum", "minimum")
	exclusiveBound(m, "exclusiveMaximum", "maximum")
	if req, ok := m["required"].([]any); ok {
		m["required"] = dedupe(req)
	}
	if _, ok := m["$recursiveAnchor"].(bool); ok {
		delete(m, "$recursiveAnchor")
	}
	if ref, ok := m["$recursiveRef"].(string); ok && ref == "#" && n.component != "" {
		delete(m, "$recursiveRef")
		m["$ref"] = "#/components/schemas/" + escapePointerToken(n.component)
	}

	nullable := false
	if b, ok := m["nullable"].(bool); ok {
		nullable = b
		delete(m, "nullable")
	}
	if all, ok := m["allOf"].([]any); ok {
		kept := all[:0]
		for _, e := range all {
			if isNullMarker(e) {
				nullable = true
				continue
			}
			kept = append(kept, e)
		}
		switch len(kept) {
		case len(all):
		case 0:
			delete(m, "allOf")
		default:
			m["allOf"] = kept
		}
	}
	if !nullable {
		return m
	}
	return map[string]any{"anyOf": []any{m, map[string]any{"type": "null"}}}
}

// exclusiveBound turns the OpenAPI 3.0 form {bound: x, excl: true} into the
// 2020-12 form {excl: x}, and drops excl: false.
func exclusiveBound(m map[string]any, excl, bound string) {
	b, ok := m[excl].(bool)
	if !ok {
		return
	}
	delete(m, excl)
	if !b {
		return
	}
	if x, ok := m[bound]; ok {
		m[excl] = x
		delete(m, bound)
	}
}

// dedupe returns vals without repeats, keeping the first of each.
func dedupe(vals []any) []any {
	seen := make(map[any]bool, len(vals))
	out := vals[:0]
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			out = append(out, v)
			continue
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, v)
	}
	return out
}

// escapePointerToken escapes s for use as one JSON pointer token.
func escapePointerToken(s string) string {
	s = strings.ReplaceAll(s, "~", "~0")
	return strings.ReplaceAll(s, "/", "~1")
}

// isNullMarker reports whether the (already rewritten) allOf member e only
// stood for nullable: true: after rewriting it is {"anyOf": [S, null]} where S
// holds annotations only.
func isNullMarker(e any) bool {
	m, ok := e.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	alts, ok := m["anyOf"].([]any)
	if !ok || len(alts) != 2 || !isNullType(alts[1]) {
		return false
	}
	inner, ok := alts[0].(map[string]any)
	if !ok {
		return false
	}
	for k := range inner {
		if !isAnnotation(k) {
			return false
		}
	}
	return true
}

func isNullType(e any) bool {
	m, ok := e.(map[string]any)
	return ok && len(m) == 1 && m["type"] == "null"
}

// isSchemaMapKeyword reports whether the value of keyword k maps names, which
// may be any string, to schemas.
func isSchemaMapKeyword(k string) bool {
	switch k {
	case "properties", "patternProperties", "$defs", "definitions", "dependentSchemas":
		return true
	}
	return false
}

// isDataKeyword reports whether the value of keyword k is data, not schemas.
func isDataKeyword(k string) bool {
	switch k {
	case "enum", "const", "default", "example", "examples":
		return true
	}
	return strings.HasPrefix(k, "x-")
}

// isAnnotation reports whether keyword k only annotates and never asserts.
func isAnnotation(k string) bool {
	switch k {
	case "title", "description", "default", "example", "examples", "deprecated", "readOnly", "writeOnly", "$comment":
		return true
	}
	return strings.HasPrefix(k, "x-")
}
