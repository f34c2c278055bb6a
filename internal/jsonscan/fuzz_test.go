package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	`{}`, `{"model":"gpt-4o","stream":true}`, `{"model":"a\u00e9\ud83d\ude00","stream":null}`,
	`{"model":"x","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":5,"temperature":0.2e1}`,
	`{"mod\u0065l":"m","model":"n"}`, `{"stream_options":{"include_usage":true},"metadata":{"a":"b"}}`,
	`{"model":1}`, `{"a":[1,{"b":null}],"c":-0.5E+3}`, `[]`, `{"a":"\ud800"}`, ` { } `, `{"a":01}`,
}

// refMember is one top-level member as encoding/json's tokenizer sees it.
type refMember struct {
	key string
	raw json.RawMessage
}

func refMembers(t *testing.T, body []byte) []refMember {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("reference: valid object did not start with '{': %v %v", tok, err)
	}
	var out []refMember
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("reference key: %v", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("reference value: %v", err)
		}
		out = append(out, refMember{k.(string), raw})
	}
	return out
}

func FuzzScan(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fs Fields
		err := Scan(body, &fs)
		valid := json.Valid(body)
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		isObject := valid && len(trimmed) > 0 && trimmed[0] == '{'
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Scan returned %T, want *Error", err)
		}
		if !isObject {
			if err == nil {
				t.Fatalf("Scan accepted %q, which encoding/json rejects as an object", body)
			}
			if e.Field != "" || e.Duplicate() {
				t.Fatalf("Scan gave a type error %v for invalid JSON %q", err, body)
			}
			return
		}
		if err != nil && e.Field == "" && !e.Duplicate() {
			t.Fatalf("Scan rejected valid JSON %q: %v", body, err)
		}
		// A duplicated top-level key is rejected, naming the first one.
		members := refMembers(t, body)
		seen, dup, hasDup := map[string]bool{}, "", false
		for _, m := range members {
			if seen[m.key] && !hasDup {
				dup, hasDup = m.key, true
			}
			seen[m.key] = true
		}
		if hasDup {
			if err == nil || !e.Duplicate() {
				t.Fatalf("Scan(%q) = %v; want the duplicate key %q rejected", body, err, dup)
			}
			if utf8.ValidString(dup) && e.Field != dup {
				t.Fatalf("Scan(%q) names duplicate %q; want %q", body, e.Field, dup)
			}
			return
		}
		if err != nil && e.Duplicate() {
			t.Fatalf("Scan(%q) = %v, but no key repeats", body, err)
		}
		// Replay the reference: every occurrence typed.
		var wantModel *string
		wantStream, typeBad := false, ""
		for _, m := range members {
			var v any
			if err := json.Unmarshal(m.raw, &v); err != nil {
				t.Fatal(err)
			}
			switch m.key {
			case "model":
				s, ok := v.(string)
				if !ok && typeBad == "" {
					typeBad = "model"
				}
				wantModel = &s
			case "stream":
				b, ok := v.(bool)
				if !ok && v != nil && typeBad == "" {
					typeBad = "stream"
				}
				wantStream = b
			}
		}
		if err != nil {
			if e.Field != "model" && e.Field != "stream" {
				return // other typed fields: not checked against the reference
			}
			if typeBad != e.Field {
				t.Fatalf("Scan(%q): %v; reference finds first bad field %q", body, err, typeBad)
			}
			return
		}
		if typeBad != "" {
			t.Fatalf("Scan(%q) accepted %s of the wrong type", body, typeBad)
		}
		if fs.Stream != wantStream {
			t.Fatalf("Scan(%q) stream = %v; want %v", body, fs.Stream, wantStream)
		}
		if fs.HasModel != (wantModel != nil) {
			t.Fatalf("Scan(%q) HasModel = %v", body, fs.HasModel)
		}
		if wantModel != nil && utf8.Valid(fs.Model) && string(fs.Model) != *wantModel {
			t.Fatalf("Scan(%q) model = %q; want %q", body, fs.Model, *wantModel)
		}
	})
}

func FuzzSet(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "model", []byte(`"new"`))
	}
	f.Add([]byte(`{"a":1,"b":2,"a":3}`), "a", []byte(`[1,{"x":null}]`))
	f.Add([]byte(`{ }`), "k", []byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte, key string, value []byte) {
		if !validObject(body) || !json.Valid(value) || !utf8.ValidString(key) {
			return
		}
		var before map[string]json.RawMessage
		if err := json.Unmarshal(body, &before); err != nil {
			return // e.g. invalid UTF-8 in keys: encoding/json remaps them
		}
		check := func(name string, out []byte, wantKey bool) {
			if !json.Valid(out) {
				t.Fatalf("%s(%s, %q, %s) = invalid JSON %s", name, body, key, value, out)
			}
			var after map[string]json.RawMessage
			if err := json.Unmarshal(out, &after); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, ok := after[key]
			if ok != wantKey {
				t.Fatalf("%s(%s, %q) key present = %v in %s", name, body, key, ok, out)
			}
			if wantKey && !jsonEqual(t, got, value) {
				t.Fatalf("%s(%s, %q, %s): key = %s in %s", name, body, key, value, got, out)
			}
			for k, v := range before {
				if k == key {
					continue
				}
				if !bytes.Equal(after[k], v) {
					t.Fatalf("%s(%s, %q): other key %q changed from %s to %s", name, body, key, k, v, after[k])
				}
			}
			if len(after) != len(before)+btoi(wantKey)-btoi(before[key] != nil) {
				t.Fatalf("%s(%s, %q): %d keys, had %d", name, body, key, len(after), len(before))
			}
			var fs Fields
			if err := Scan(out, &fs); err != nil {
				var e *Error
				if errors.As(err, &e) && e.Field == "" {
					t.Fatalf("%s output rejected by Scan: %v", name, err)
				}
			}
		}
		check("Set", Set(nil, body, key, value), true)
		check("Delete", Delete(nil, body, key), false)
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	dx := json.NewDecoder(bytes.NewReader(a))
	dx.UseNumber()
	dy := json.NewDecoder(bytes.NewReader(b))
	dy.UseNumber()
	if err := dx.Decode(&x); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if err := dy.Decode(&y); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func FuzzAppendString(f *testing.F) {
	for _, seed := range []string{"", "plain", "quote\" back\\ nl\n tab\t ctl\x01", "日本\u2028", "\xff\xfe"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %s for %q: %v", b, s, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("round trip %q -> %s -> %q", s, b, got)
		}
	})
}
