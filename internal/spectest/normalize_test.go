package spectest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func decode(tb testing.TB, s string) any {
	tb.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
	if err != nil {
		tb.Fatalf("decoding %s: %v", s, err)
	}
	return v
}

func TestNormalizeSchema(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain schema unchanged",
			`{"type":"string","enum":["a"]}`,
			`{"type":"string","enum":["a"]}`},
		{"nullable type",
			`{"type":"string","nullable":true,"description":"d"}`,
			`{"anyOf":[{"type":"string","description":"d"},{"type":"null"}]}`},
		{"nullable false dropped",
			`{"type":"string","nullable":false}`,
			`{"type":"string"}`},
		{"nullable enum keeps the enum inside",
			`{"type":"string","enum":["stop"],"nullable":true}`,
			`{"anyOf":[{"type":"string","enum":["stop"]},{"type":"null"}]}`},
		{"nullable beside $ref",
			`{"$ref":"#/components/schemas/U","nullable":true,"description":"d"}`,
			`{"anyOf":[{"$ref":"#/components/schemas/U","description":"d"},{"type":"null"}]}`},
		{"nullable nested in properties and items",
			`{"properties":{"a":{"type":"array","items":{"type":"integer","nullable":true}}}}`,
			`{"properties":{"a":{"type":"array","items":{"anyOf":[{"type":"integer"},{"type":"null"}]}}}}`},
		{"property names that look like data keywords are still schemas",
			`{"properties":{"default":{"type":"string","nullable":true},"x-y":{"type":"integer","nullable":true}}}`,
			`{"properties":{"default":{"anyOf":[{"type":"string"},{"type":"null"}]},"x-y":{"anyOf":[{"type":"integer"},{"type":"null"}]}}}`},
		{"allOf null marker makes the whole schema nullable",
			`{"allOf":[{"$ref":"#/components/schemas/T"},{"nullable":true,"description":"d"}]}`,
			`{"anyOf":[{"allOf":[{"$ref":"#/components/schemas/T"}]},{"type":"null"}]}`},
		{"allOf member with assertions is not a marker",
			`{"allOf":[{"$ref":"#/components/schemas/T"},{"type":"object","nullable":true}]}`,
			`{"allOf":[{"$ref":"#/components/schemas/T"},{"anyOf":[{"type":"object"},{"type":"null"}]}]}`},
		{"data keywords untouched",
			`{"default":{"nullable":true},"example":{"nullable":true},"x-oaiMeta":{"nullable":true},"enum":[{"nullable":true}]}`,
			`{"default":{"nullable":true},"example":{"nullable":true},"x-oaiMeta":{"nullable":true},"enum":[{"nullable":true}]}`},
		{"boolean exclusiveMinimum",
			`{"type":"number","minimum":0,"exclusiveMinimum":true,"maximum":1,"exclusiveMaximum":false}`,
			`{"type":"number","exclusiveMinimum":0,"maximum":1}`},
		{"numeric exclusiveMinimum kept",
			`{"type":"number","exclusiveMinimum":0}`,
			`{"type":"number","exclusiveMinimum":0}`},
		{"repeated required names",
			`{"required":["id","name","id"]}`,
			`{"required":["id","name"]}`},
		{"recursive reference to the component",
			`{"$recursiveAnchor":true,"properties":{"f":{"items":{"$recursiveRef":"#"}}}}`,
			`{"properties":{"f":{"items":{"$ref":"#/components/schemas/C~1x"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := normalizer{component: "C/x"}
			got := n.schema(decode(t, tt.in))
			if want := decode(t, tt.want); !reflect.DeepEqual(got, want) {
				gj, _ := json.Marshal(got)
				t.Errorf("normalize(%s)\n got  %s\n want %s", tt.in, gj, tt.want)
			}
		})
	}
}

// TestNormalizedSpecCompiles validates small bodies against a hand-made spec
// that uses each rewritten construct, so the rewrite is checked end to end
// without the real specification.
func TestNormalizedSpecCompiles(t *testing.T) {
	path := t.TempDir() + "/openapi.json"
	doc := `{"openapi":"3.1.0","paths":{"/x":{"get":{"nullable":true}}},"components":{"schemas":{
	  "Usage":{"type":"object","required":["n","n"],"properties":{"n":{"type":"integer","minimum":0,"exclusiveMinimum":true}}},
	  "Chunk":{"type":"object","required":["usage","reason"],"properties":{
	    "usage":{"$ref":"#/components/schemas/Usage","nullable":true},
	    "reason":{"type":"string","enum":["stop"],"nullable":true},
	    "tier":{"allOf":[{"$ref":"#/components/schemas/Usage"},{"nullable":true}]}}},
	  "Filter":{"$recursiveAnchor":true,"type":"object","additionalProperties":false,"required":["type"],"properties":{
	    "type":{"type":"string"},"filters":{"type":"array","items":{"$recursiveRef":"#"}}}}
	}}}`
	if err := writeFile(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	tests := []struct {
		schema string
		body   string
		ok     bool
	}{
		{"Chunk", `{"usage":null,"reason":null}`, true},
		{"Chunk", `{"usage":{"n":1},"reason":"stop","tier":null}`, true},
		{"Chunk", `{"usage":{"n":0},"reason":"stop"}`, false},
		{"Chunk", `{"usage":null,"reason":"done"}`, false},
		{"Chunk", `{"usage":null}`, false},
		{"Chunk", `{"usage":null,"reason":null,"extra":[1,2]}`, true},
		{"Filter", `{"type":"and","filters":[{"type":"or","filters":[{"type":"eq"}]}]}`, true},
		{"Filter", `{"type":"and","filters":[{"type":"or","filters":[{"typo":"eq"}]}]}`, false},
	}
	for _, tt := range tests {
		err := s.Validate(tt.schema, []byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("Validate(%s, %s) = %v, want ok=%v", tt.schema, tt.body, err, tt.ok)
		}
	}
}

// FuzzNormalize checks that normalizing any JSON document never panics, is
// idempotent and leaves no nullable keyword in a schema position.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		`{"type":"string","nullable":true}`,
		`{"allOf":[{"$ref":"#/a"},{"nullable":true}],"nullable":true}`,
		`{"properties":{"a":{"nullable":true,"required":["x","x"]}},"items":[{"nullable":false}]}`,
		`{"minimum":1,"exclusiveMinimum":true,"$recursiveRef":"#","$recursiveAnchor":true}`,
		`[{"nullable":true},1,"s",null]`,
		`{"allOf":[{"nullable":true}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := normalizer{component: "C"}
		once := n.schema(v)
		first, err := json.Marshal(once)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if hasNullable(once) {
			t.Fatalf("nullable left in %s", first)
		}
		second, _ := json.Marshal(n.schema(decode(t, string(first))))
		if !bytes.Equal(first, second) {
			t.Fatalf("not idempotent:\n%s\n%s", first, second)
		}
	})
}

// hasNullable reports whether a boolean nullable keyword remains in a schema
// position of v.
func hasNullable(v any) bool {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if hasNullable(e) {
				return true
			}
		}
	case map[string]any:
		if _, ok := t["nullable"].(bool); ok {
			return true
		}
		for k, e := range t {
			if isSchemaMapKeyword(k) {
				if named, ok := e.(map[string]any); ok {
					for _, s := range named {
						if hasNullable(s) {
							return true
						}
					}
				}
				continue
			}
			if !isDataKeyword(k) && hasNullable(e) {
				return true
			}
		}
	}
	return false
}
