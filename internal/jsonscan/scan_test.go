package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Fields // only exported fields are compared
	}{
		{"empty object", `{}`, Fields{}},
		{"chat", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":100,"temperature":0.7,"user":"u1","metadata":{"team":"a"}}`,
			Fields{Model: []byte("gpt-4o"), HasModel: true, Stream: true, IncludeUsage: true, MaxTokens: 100, HasMaxTokens: true,
				Temperature: []byte("0.7"), HasTemperature: true, User: []byte("u1"), Metadata: []byte(`{"team":"a"}`)}},
		{"whitespace", " \n{ \"model\" : \"m\" , \"stream\" : false }\r\n\t", Fields{Model: []byte("m"), HasModel: true}},
		{"escaped model", `{"model":"a\"b\\c\u00e9\ud83d\ude00"}`, Fields{Model: []byte("a\"b\\cé😀"), HasModel: true, ModelEscaped: true}},
		{"escaped key", `{"mod\u0065l":"m","stre\u0061m":true}`, Fields{Model: []byte("m"), HasModel: true, Stream: true}},
		{"nulls", `{"stream":null,"stream_options":null,"max_tokens":null,"temperature":null,"user":null,"metadata":null,"encoding_format":null}`, Fields{}},
		{"max completion tokens", `{"max_completion_tokens":-5}`, Fields{MaxCompletionTokens: -5, HasMaxCompletionTokens: true}},
		{"embeddings", `{"model":"e","input":["a","b"],"encoding_format":"base64"}`, Fields{Model: []byte("e"), HasModel: true, EncodingFormat: []byte("base64")}},
		{"nested keys ignored", `{"x":{"model":"no","stream":1},"y":["model"]}`, Fields{}},
		{"include usage false", `{"stream_options":{"include_usage":false,"other":[1]}}`, Fields{}},
		{"empty model", `{"model":""}`, Fields{Model: []byte{}, HasModel: true}},
		{"escaped user and format", `{"user":"\u0041","encoding_format":"flo\u0061t","model":"x\ty"}`,
			Fields{User: []byte("A"), EncodingFormat: []byte("float"), Model: []byte("x\ty"), HasModel: true, ModelEscaped: true}},
		{"big int", `{"max_tokens":9223372036854775807}`, Fields{MaxTokens: 9223372036854775807, HasMaxTokens: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Fields
			if err := Scan([]byte(tc.body), &f); err != nil {
				t.Fatalf("Scan(%s): %v", tc.body, err)
			}
			f.scratch, f.spans = nil, [3]span{}
			if !equalFields(&f, &tc.want) {
				t.Errorf("Scan(%s)\n got %+v\nwant %+v", tc.body, f, tc.want)
			}
		})
	}
}

func equalFields(a, b *Fields) bool {
	return bytes.Equal(a.Model, b.Model) && (a.Model == nil) == (b.Model == nil) && a.HasModel == b.HasModel &&
		a.ModelEscaped == b.ModelEscaped && a.Stream == b.Stream && a.IncludeUsage == b.IncludeUsage &&
		a.MaxTokens == b.MaxTokens && a.HasMaxTokens == b.HasMaxTokens &&
		a.MaxCompletionTokens == b.MaxCompletionTokens && a.HasMaxCompletionTokens == b.HasMaxCompletionTokens &&
		bytes.Equal(a.Temperature, b.Temperature) && a.HasTemperature == b.HasTemperature &&
		bytes.Equal(a.User, b.User) && bytes.Equal(a.Metadata, b.Metadata) && bytes.Equal(a.EncodingFormat, b.EncodingFormat)
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		body   string
		field  string // "" for a syntax error
		offset int
		msg    string // substring of Error()
	}{
		{``, "", 0, "empty body"},
		{`  `, "", 2, "empty body"},
		{`[]`, "", 0, "must be a JSON object"},
		{`"x"`, "", 0, "must be a JSON object"},
		{`{`, "", 1, "expected object key"},
		{`{"a"}`, "", 4, "expected ':'"},
		{`{"a":}`, "", 5, "expected value"},
		{`{"a":1,}`, "", 7, "expected object key"},
		{`{"a":1 "b":2}`, "", 7, "expected ',' or '}'"},
		{`{"a":01}`, "", 6, "expected ',' or '}'"},
		{`{"a":1.}`, "", 7, "digit after decimal point"},
		{`{"a":1e}`, "", 7, "digit in exponent"},
		{`{"a":-}`, "", 6, "expected digit"},
		{`{"a":tru}`, "", 5, "expected true"},
		{`{"a":"x` + "\n" + `"}`, "", 7, "control character"},
		{`{"a":"\x"}`, "", 6, "invalid escape"},
		{`{"a":"\u12G4"}`, "", 10, "invalid hex digit"},
		{`{"a":"abc`, "", 9, "unterminated string"},
		{`{"a":[1,2}`, "", 9, "expected ',' or ']'"},
		{`{"a":1}x`, "", 7, "after the top-level object"},
		{`{"a":1}{}`, "", 7, "after the top-level object"},
		{`{"model":1}`, "model", 9, "model must be a string"},
		{`{"model":null}`, "model", 9, "model must be a string"},
		{`{"model":"a","model":2}`, "model", 13, `"model" appears more than once`},
		{`{"model":"secret-m","model":"allowed-m"}`, "model", 20, `"model" appears more than once`},
		{`{"max_tokens":99999,"max_tokens":5}`, "max_tokens", 20, "appears more than once"},
		{`{"mod\u0065l":"a","model":"b"}`, "model", 18, "appears more than once"},
		{`{"x":1,"y":{"x":2},"x":3}`, "x", 19, "appears more than once"},
		{`{"model":1,"a":1,"a":2}`, "a", 17, "appears more than once"},
		{manyKeys(40) + `,"k3":0}`, "k3", len(manyKeys(40)) + 1, "appears more than once"},
		{`{"stream":"yes"}`, "stream", 10, "stream must be a boolean"},
		{`{"stream_options":[]}`, "stream_options", 18, "must be an object"},
		{`{"stream_options":{"include_usage":1}}`, "stream_options.include_usage", 35, "must be a boolean"},
		{`{"max_tokens":1.5}`, "max_tokens", 14, "max_tokens must be an integer"},
		{`{"max_tokens":"5"}`, "max_tokens", 14, "must be an integer"},
		{`{"max_tokens":9223372036854775808}`, "max_tokens", 14, "must be an integer"},
		{`{"max_completion_tokens":1e3}`, "max_completion_tokens", 25, "must be an integer"},
		{`{"temperature":"hot"}`, "temperature", 15, "must be a number"},
		{`{"user":5}`, "user", 8, "must be a string"},
		{`{"metadata":[]}`, "metadata", 12, "must be an object"},
		{`{"encoding_format":true}`, "encoding_format", 19, "must be a string"},
		{`{"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, "", 5 + MaxDepth - 1, "nesting too deep"},
	}
	for _, tc := range tests {
		var f Fields
		err := Scan([]byte(tc.body), &f)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Scan(%.40q) = %v, want *Error", tc.body, err)
			continue
		}
		if e.Field != tc.field || e.Offset != tc.offset || !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("Scan(%.40q) = field %q offset %d %q; want field %q offset %d containing %q",
				tc.body, e.Field, e.Offset, e.Error(), tc.field, tc.offset, tc.msg)
		}
	}
}

// manyKeys opens an object with n distinct keys k0..k(n-1), past keySet's
// inline capacity.
func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%d", "k"+strconv.Itoa(i), i)
	}
	return b.String()
}

func TestScanDeepButAllowed(t *testing.T) {
	body := `{"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`
	var f Fields
	if err := Scan([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(body)) {
		t.Fatal("encoding/json disagrees on the depth limit")
	}
}

func TestScanReuse(t *testing.T) {
	var f Fields
	if err := Scan([]byte(`{"model":"\u0061b","user":"\u0063"}`), &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Model) != "ab" || string(f.User) != "c" {
		t.Fatalf("got model %q user %q", f.Model, f.User)
	}
	if err := Scan([]byte(`{"model":"plain"}`), &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Model) != "plain" || f.ModelEscaped || f.User != nil {
		t.Fatalf("after reuse got %+v", f)
	}
}

func TestLookupAndMetadataValue(t *testing.T) {
	meta := []byte(`{"team":"a","n":1,"esc":"x\u0079","team2":null,"dup":"1","dup":"2"}`)
	tests := []struct {
		key  string
		want string
		ok   bool
	}{
		{"team", "a", true},
		{"n", "", false},
		{"esc", "xy", true},
		{"team2", "", false},
		{"dup", "2", true},
		{"missing", "", false},
	}
	for _, tc := range tests {
		got, ok := MetadataValue(meta, tc.key)
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("MetadataValue(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	mv := &MetadataView{Raw: meta}
	if v, ok := mv.Metadata("team"); !ok || string(v) != "a" {
		t.Errorf("MetadataView.Metadata(team) = %q, %v", v, ok)
	}
	var none *MetadataView
	if _, ok := none.Metadata("team"); ok {
		t.Error("nil MetadataView found a key")
	}
	if _, ok := (&MetadataView{}).Metadata("team"); ok {
		t.Error("empty MetadataView found a key")
	}
	if _, ok := MetadataValue([]byte(`{"a":`), "a"); ok {
		t.Error("MetadataValue on invalid JSON: ok")
	}
	if raw, ok := Lookup([]byte(` {"usage": {"a":1} } `), "usage"); !ok || string(raw) != `{"a":1}` {
		t.Errorf("Lookup = %q, %v", raw, ok)
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"42", 42, true}, {"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775807", 9223372036854775807, true}, {"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false}, {"99999999999999999999", 0, false},
		{"1.0", 0, false}, {"1e2", 0, false}, {"", 0, false}, {"-", 0, false},
	}
	for _, tc := range tests {
		got, ok := ParseInt([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSetDelete(t *testing.T) {
	tests := []struct {
		name, body, key, value string
		want                   string
	}{
		{"insert into empty", `{}`, "model", `"m"`, `{"model":"m"}`},
		{"insert into empty ws", "{ \n}", "model", `"m"`, "{\"model\":\"m\" \n}"},
		{"insert", `{"a":1}`, "model", `"m"`, `{"a":1,"model":"m"}`},
		{"insert keeps ws", `{ "a" : 1 } `, "b", `2`, `{ "a" : 1,"b":2 } `},
		{"replace", `{"model":"x","a":[1,2]}`, "model", `"y"`, `{"model":"y","a":[1,2]}`},
		{"replace keeps ws", `{ "a":1, "model" :  "x" }`, "model", `"y"`, `{ "a":1, "model" :  "y" }`},
		{"replace escaped key", `{"mod\u0065l":"x"}`, "model", `"y"`, `{"mod\u0065l":"y"}`},
		{"replace first drops duplicates", `{"k":1,"a":2,"k":3,"b":4,"k":5}`, "k", `0`, `{"k":0,"a":2,"b":4}`},
		{"nested untouched", `{"x":{"k":1}}`, "k", `2`, `{"x":{"k":1},"k":2}`},
		{"quoted key", `{}`, "a\"b", `1`, `{"a\"b":1}`},
	}
	for _, tc := range tests {
		got := Set([]byte("prefix:"), []byte(tc.body), tc.key, []byte(tc.value))
		if string(got) != "prefix:"+tc.want {
			t.Errorf("%s: Set(%s, %q, %s) = %s; want %s", tc.name, tc.body, tc.key, tc.value, got, tc.want)
		}
	}
	dtests := []struct{ body, key, want string }{
		{`{}`, "a", `{}`},
		{`{"a":1}`, "a", `{}`},
		{`{ "a" : 1 }`, "a", `{ }`},
		{`{"a":1,"b":2}`, "a", `{"b":2}`},
		{`{"a":1, "b":2}`, "b", `{"a":1}`},
		{`{"a":1,"b":2,"c":3}`, "b", `{"a":1,"c":3}`},
		{`{"b":0,"a":1,"b":2,"c":3,"b":4}`, "b", `{"a":1,"c":3}`},
		{`{"x":{"a":1}}`, "a", `{"x":{"a":1}}`},
		{"{\n  \"a\": 1,\n  \"b\": 2\n}", "a", "{\n  \"b\": 2\n}"},
	}
	for _, tc := range dtests {
		got := Delete(nil, []byte(tc.body), tc.key)
		if string(got) != tc.want {
			t.Errorf("Delete(%s, %q) = %s; want %s", tc.body, tc.key, got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("Delete(%s, %q) is not valid JSON: %s", tc.body, tc.key, got)
		}
	}
	if got := Set(nil, []byte(`{"a":`), "a", []byte("1")); string(got) != `{"a":` {
		t.Errorf("Set on invalid body = %s; want the body unchanged", got)
	}
}

func TestAppendString(t *testing.T) {
	tests := []string{"", "plain", `q"b\s`, "\n\r\t\x00\x1f", "é😀", "bad\xffutf8\xe2\x82", "\u2028<>&"}
	for _, s := range tests {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("AppendString(%q) = %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		// encoding/json replaces each invalid byte; ToValidUTF8 replaces runs.
		var std string
		enc, _ := json.Marshal(s)
		_ = json.Unmarshal(enc, &std)
		if back != std {
			t.Errorf("AppendString(%q) round-trips to %q; encoding/json gives %q (want ~%q)", s, back, std, want)
		}
	}
}
