package retrieve

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Filter
		err  string // substring of the error; "" for success
	}{
		{"eq string", `{"type":"eq","key":"lang","value":"en"}`, &Filter{Type: Eq, Key: "lang", Value: "en"}, ""},
		{"gte number", `{"key":"n","value":2.5,"type":"gte"}`, &Filter{Type: Gte, Key: "n", Value: 2.5}, ""},
		{"ne bool", `{"type":"ne","key":"draft","value":true}`, &Filter{Type: Ne, Key: "draft", Value: true}, ""},
		{"in list", `{"type":"in","key":"n","value":[1,"x",false]}`, &Filter{Type: In, Key: "n", Value: []any{1.0, "x", false}}, ""},
		{"nin empty list", `{"type":"nin","key":"n","value":[]}`, &Filter{Type: Nin, Key: "n", Value: []any{}}, ""},
		{"compound", `{"type":"and","filters":[{"type":"eq","key":"a","value":"x"},{"type":"or","filters":[{"type":"lt","key":"b","value":3}]}]}`,
			&Filter{Type: And, Filters: []Filter{{Type: Eq, Key: "a", Value: "x"}, {Type: Or, Filters: []Filter{{Type: Lt, Key: "b", Value: 3.0}}}}}, ""},
		{"white space", " {\n\"type\" : \"eq\", \"key\": \"a\", \"value\": 0 }\n", &Filter{Type: Eq, Key: "a", Value: 0.0}, ""},

		{"not an object", `[1]`, nil, "filter: must be an object, got an array"},
		{"null", `null`, nil, "filter: must be an object, got null"},
		{"empty", ``, nil, "unexpected end of input"},
		{"invalid JSON", `{"type":"eq",}`, nil, "invalid JSON"},
		{"truncated", `{"type":"eq","key":"a"`, nil, "unexpected end of input"},
		{"trailing data", `{"type":"eq","key":"a","value":1} {}`, nil, "trailing data"},
		{"missing type", `{"key":"a","value":1}`, nil, "filter: type: missing"},
		{"unknown type", `{"type":"like","key":"a","value":"x"}`, nil, `type: unknown type "like"`},
		{"type not a string", `{"type":1}`, nil, "type: must be a string, got a number"},
		{"unknown field", `{"type":"eq","key":"a","value":1,"op":"x"}`, nil, "op: unknown field"},
		{"repeated field", `{"type":"eq","key":"a","key":"b","value":1}`, nil, "key: repeated field"},
		{"missing key", `{"type":"eq","value":1}`, nil, `key: a "eq" comparison needs a non-empty key`},
		{"empty key", `{"type":"eq","key":"","value":1}`, nil, "non-empty key"},
		{"missing value", `{"type":"eq","key":"a"}`, nil, `value: a "eq" comparison needs a value`},
		{"null value", `{"type":"eq","key":"a","value":null}`, nil, "value: must be a string, number, boolean or array, got null"},
		{"object value", `{"type":"eq","key":"a","value":{}}`, nil, "got an object"},
		{"list for eq", `{"type":"eq","key":"a","value":[1]}`, nil, `value: for "eq" must be a string, number or boolean, not an array`},
		{"scalar for in", `{"type":"in","key":"a","value":1}`, nil, `value: for "in" must be an array`},
		{"bool for gt", `{"type":"gt","key":"a","value":true}`, nil, `value: for "gt" must be a number or a string`},
		{"nested list", `{"type":"in","key":"a","value":[[1]]}`, nil, "value[0]: must be a string, number or boolean, got an array"},
		{"null in list", `{"type":"in","key":"a","value":[1,null]}`, nil, "value[1]: must be a string, number or boolean, got null"},
		{"filters on comparison", `{"type":"eq","key":"a","value":1,"filters":[]}`, nil, `filters: not allowed in a "eq" comparison`},
		{"key on compound", `{"type":"and","key":"a","filters":[{"type":"eq","key":"a","value":1}]}`, nil, `key: not allowed in an "and" filter`},
		{"empty compound", `{"type":"or","filters":[]}`, nil, `filters: an "or" filter needs at least one filter`},
		{"compound without filters", `{"type":"and"}`, nil, "needs at least one filter"},
		{"filters not an array", `{"type":"and","filters":{}}`, nil, "filters: must be an array of filters, got an object"},
		{"bad nested", `{"type":"and","filters":[{"type":"eq","key":"a","value":1},{"type":"eq","key":"b"}]}`, nil, "filters[1].value: a \"eq\" comparison needs a value"},
		{"too deep", strings.Repeat(`{"type":"and","filters":[`, 17) + `{"type":"eq","key":"a","value":1}` + strings.Repeat(`]}`, 17), nil, "nested deeper than 16 levels"},
		{"number out of range", `{"type":"eq","key":"a","value":1e400}`, nil, "invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFilter([]byte(tc.in))
			if tc.err != "" {
				var fe *FilterError
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &fe) {
					t.Fatalf("ParseFilter(%s) = %+v, %v; want a *FilterError containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFilter(%s): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseFilter(%s) = %#v, want %#v", tc.in, got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
	// Too many nodes.
	var b strings.Builder
	b.WriteString(`{"type":"or","filters":[`)
	for i := range 300 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"type":"eq","key":"a","value":1}`)
	}
	b.WriteString(`]}`)
	if _, err := ParseFilter([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 256 filter nodes") {
		t.Errorf("300 nodes: %v", err)
	}
	// In a request body, through UnmarshalJSON.
	var req struct {
		Filter *Filter `json:"filters"`
	}
	if err := json.Unmarshal([]byte(`{"filters":{"type":"eq","key":"a","value":"x","extra":1}}`), &req); err == nil || !strings.Contains(err.Error(), "extra: unknown field") {
		t.Errorf("UnmarshalJSON: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		f   Filter
		err string
	}{
		{Filter{Type: Eq, Key: "a", Value: "x"}, ""},
		{Filter{Type: Eq, Key: "a", Value: 1}, "value: must be a string, finite float64, bool or []any, got int"},
		{Filter{Type: In, Key: "a", Value: []any{1}}, "value[0]: must be a string, finite float64 or bool, got int"},
		{Filter{Type: Eq, Key: "a"}, "needs a value"},
		{Filter{Type: And}, "needs at least one filter"},
		{Filter{Type: And, Filters: []Filter{{Type: "x"}}}, `filters[0].type: unknown type "x"`},
		{Filter{}, `type: unknown type ""`},
	} {
		err := tc.f.Validate()
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.f, err, tc.err)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	attrs := map[string]any{"lang": "en", "n": 3.0, "draft": false}
	tests := []struct {
		f    string
		want bool
	}{
		{`{"type":"eq","key":"lang","value":"en"}`, true},
		{`{"type":"eq","key":"lang","value":"fr"}`, false},
		{`{"type":"eq","key":"n","value":3}`, true},
		{`{"type":"eq","key":"n","value":"3"}`, false}, // kinds differ
		{`{"type":"ne","key":"n","value":"3"}`, true},
		{`{"type":"eq","key":"missing","value":1}`, false},
		{`{"type":"ne","key":"missing","value":1}`, true},
		{`{"type":"gt","key":"n","value":2}`, true},
		{`{"type":"gt","key":"n","value":3}`, false},
		{`{"type":"gte","key":"n","value":3}`, true},
		{`{"type":"lt","key":"n","value":3}`, false},
		{`{"type":"lte","key":"n","value":3}`, true},
		{`{"type":"gt","key":"lang","value":"de"}`, true}, // strings byte-wise
		{`{"type":"lt","key":"lang","value":3}`, false},
		{`{"type":"gt","key":"missing","value":3}`, false},
		{`{"type":"eq","key":"draft","value":false}`, true},
		{`{"type":"ne","key":"draft","value":true}`, true},
		{`{"type":"in","key":"lang","value":["fr","en"]}`, true},
		{`{"type":"in","key":"n","value":["3",4]}`, false},
		{`{"type":"in","key":"n","value":[]}`, false},
		{`{"type":"nin","key":"lang","value":["fr"]}`, true},
		{`{"type":"nin","key":"missing","value":["fr"]}`, true},
		{`{"type":"and","filters":[{"type":"eq","key":"lang","value":"en"},{"type":"gt","key":"n","value":5}]}`, false},
		{`{"type":"or","filters":[{"type":"eq","key":"lang","value":"fr"},{"type":"gt","key":"n","value":1}]}`, true},
		{`{"type":"and","filters":[{"type":"or","filters":[{"type":"eq","key":"draft","value":true}]},{"type":"eq","key":"n","value":3}]}`, false},
	}
	for _, tc := range tests {
		f, err := ParseFilter([]byte(tc.f))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(attrs); got != tc.want {
			t.Errorf("%s on %v = %v, want %v", tc.f, attrs, got, tc.want)
		}
	}
}

// FuzzParseFilter: the parser never panics; what it accepts validates,
// survives a JSON round trip unchanged, and can be matched.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`{"type":"eq","key":"lang","value":"en"}`,
		`{"type":"in","key":"n","value":[1,"x",false]}`,
		`{"type":"and","filters":[{"type":"eq","key":"a","value":"x"},{"type":"or","filters":[{"type":"lt","key":"b","value":3}]}]}`,
		`{"type":"nin","key":"n","value":[]}`,
		`{"type":"eq","key":"a","key":"b"}`,
		`[{"type":"eq"}]`, `null`, `{"type":"gt","key":"k","value":-1.5e-3}`,
	} {
		f.Add([]byte(s))
	}
	attrs := map[string]any{"a": "x", "b": 2.0, "n": 1.0, "lang": "en", "k": true}
	f.Fuzz(func(t *testing.T, data []byte) {
		flt, err := ParseFilter(data)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FilterError", err)
			}
			return
		}
		if err := flt.Validate(); err != nil {
			t.Fatalf("parsed %s but Validate: %v", data, err)
		}
		js, err := json.Marshal(flt)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := ParseFilter(js)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", js, err)
		}
		if !reflect.DeepEqual(flt, again) {
			t.Fatalf("round trip %s: %#v, then %#v", js, flt, again)
		}
		_ = flt.Match(attrs)
	})
}
