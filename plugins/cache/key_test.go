package cache

import (
	"strings"
	"testing"
	"time"
)

func mustKey(t testing.TB, sc scope, body string) string {
	t.Helper()
	r, err := parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := keyOf(sc, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyNormalization(t *testing.T) {
	base := `{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}`
	sc := scope{Owner: "tenant:a", Route: "r", Pool: "p", Op: "chat"}
	cases := []struct {
		name string
		body string
		same bool
	}{
		{"key order", `{"messages":[{"content":"hi","role":"user"}],"temperature":0,"model":"m"}`, true},
		{"number spelling", `{"model":"m","temperature":0.0,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"exponent", `{"model":"m","temperature":0e0,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"stream", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"temperature":0,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"user and metadata", `{"model":"m","user":"u","metadata":{"x":"y"},"store":true,"temperature":0,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"model name (the pool is in the scope)", `{"model":"alias","temperature":0,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"one text part", `{"model":"m","temperature":0,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`, true},
		{"whitespace", "{ \"model\" : \"m\",\n \"temperature\": 0, \"messages\": [ {\"role\":\"user\", \"content\":\"hi\"} ] }", true},
		{"content", `{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi!"}]}`, false},
		{"content case", `{"model":"m","temperature":0,"messages":[{"role":"user","content":"Hi"}]}`, false},
		{"role", `{"model":"m","temperature":0,"messages":[{"role":"system","content":"hi"}]}`, false},
		{"two text parts", `{"model":"m","temperature":0,"messages":[{"role":"user","content":[{"type":"text","text":"h"},{"type":"text","text":"i"}]}]}`, false},
		{"temperature", `{"model":"m","temperature":0.5,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"seed", `{"model":"m","temperature":0,"seed":1,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"n", `{"model":"m","temperature":0,"n":2,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"top_p", `{"model":"m","temperature":0,"top_p":0.5,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"max_tokens", `{"model":"m","temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"tools", `{"model":"m","temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}`, false},
		{"tool_choice", `{"model":"m","temperature":0,"tool_choice":"none","messages":[{"role":"user","content":"hi"}]}`, false},
		{"response_format", `{"model":"m","temperature":0,"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}]}`, false},
		{"earlier turn", `{"model":"m","temperature":0,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"},{"role":"user","content":"hi"}]}`, false},
	}
	want := mustKey(t, sc, base)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mustKey(t, sc, c.body) == want; got != c.same {
				t.Errorf("same key = %v, want %v", got, c.same)
			}
		})
	}
	for _, other := range []scope{
		{Owner: "tenant:b", Route: "r", Pool: "p", Op: "chat"},
		{Owner: "tenant:a", Route: "r2", Pool: "p", Op: "chat"},
		{Owner: "tenant:a", Route: "r", Pool: "p2", Op: "chat"},
		{Owner: "tenant:a", Route: "r", Pool: "p", Op: "completions"},
		{Owner: "tenant:a", Route: "r", Pool: "p", Op: "chat", Epoch: 1},
		{Owner: "tenant:a:r", Route: "", Pool: "p", Op: "chat"}, // no ambiguity in the concatenation
	} {
		if mustKey(t, other, base) == want {
			t.Errorf("scope %+v shares the key of %+v", other, sc)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for body, want := range map[string]bool{
		`{"temperature":0}`:           true,
		`{"temperature":0.0}`:         true,
		`{"seed":42,"temperature":1}`: true,
		`{"temperature":0.2}`:         false,
		`{}`:                          false,
		`{"seed":null}`:               false,
		`{"temperature":"0"}`:         false,
	} {
		r, err := parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.deterministic(); got != want {
			t.Errorf("%s: %v, want %v", body, got, want)
		}
	}
}

func TestLastUserTurn(t *testing.T) {
	sc := scope{Owner: "o", Route: "r", Pool: "p", Op: "chat"}
	part := func(body string) ([32]byte, string, bool) {
		r, err := parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return partitionOf(sc, r, nil)
	}
	p1, text, ok := part(`{"temperature":0,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is go"}]}`)
	if !ok || text != "what is go" {
		t.Fatalf("text %q ok %v", text, ok)
	}
	p2, _, _ := part(`{"temperature":0,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"tell me about go"}]}`)
	p3, _, _ := part(`{"temperature":0,"messages":[{"role":"system","content":"be verbose"},{"role":"user","content":"what is go"}]}`)
	p4, _, _ := part(`{"temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is go"}]}`)
	if p1 != p2 {
		t.Error("the same context in two partitions")
	}
	if p1 == p3 || p1 == p4 {
		t.Error("another system prompt or tools share a partition")
	}
	for _, body := range []string{
		`{"messages":[]}`,
		`{"messages":[{"role":"assistant","content":"x"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`,
		`{"messages":[{"role":"user","content":""}]}`,
	} {
		if _, _, ok := part(body); ok {
			t.Errorf("%s: taken by the semantic cache", body)
		}
	}
}

func TestAssembler(t *testing.T) {
	a := &assembler{}
	for _, ev := range []string{
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":"{\"a\""}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`,
		`[DONE]`,
	} {
		a.add([]byte(ev))
	}
	b, err := a.answer(3, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"c1","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello","refusal":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"get","arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`
	if string(b) != want {
		t.Errorf("answer\n%s\nwant\n%s", b, want)
	}
	if err := storable(b, false); err != nil {
		t.Errorf("storable: %v", err)
	}

	bad := &assembler{}
	bad.add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`))
	if _, err := bad.answer(1, 1); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("unfinished: %v", err)
	}
	errStream := &assembler{}
	errStream.add([]byte(`{"error":{"message":"boom"}}`))
	if _, err := errStream.answer(0, 0); err == nil {
		t.Error("an error event was assembled")
	}
	legacy := &assembler{legacy: true}
	legacy.add([]byte(`{"id":"x","object":"text_completion","choices":[{"index":0,"text":"once","finish_reason":null}]}`))
	legacy.add([]byte(`{"id":"x","object":"text_completion","choices":[{"index":0,"text":" upon","finish_reason":"stop"}]}`))
	if b, err := legacy.answer(1, 2); err != nil || !strings.Contains(string(b), `"text":"once upon"`) || !strings.Contains(string(b), `"text_completion"`) {
		t.Errorf("legacy: %s %v", b, err)
	}
}

func TestStorable(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"choices":[{"finish_reason":"stop"}]}`:                        true,
		`{"choices":[{"finish_reason":"tool_calls"}]}`:                  true,
		`{"choices":[{"finish_reason":"length"}]}`:                      false,
		`{"choices":[{"finish_reason":"content_filter"}]}`:              false,
		`{"choices":[{"finish_reason":"stop"},{"finish_reason":null}]}`: false,
		`{"choices":[]}`: false,
		`{"object":"list","data":[{"embedding":[1]}]}`: true,
		`not json`: false,
	} {
		if err := storable([]byte(body), false); (err == nil) != ok {
			t.Errorf("%s: %v, want storable %v", body, err, ok)
		}
	}
	if storable([]byte(`{"choices":[{"finish_reason":"length"}]}`), true) != nil {
		t.Error("allow_truncated refused a truncated answer")
	}
}

func TestExactStoreBoundAndTTL(t *testing.T) {
	s, err := newExactStore(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := []byte(strings.Repeat(`{"choices":[{"finish_reason":"stop","message":{"content":"abcdefghij"}}]}`, 20))
	for i := 0; i < 2000; i++ {
		s.put(string(rune(i))+"k", append(body, byte(i)), time.Hour)
	}
	if b := s.bytes.Load(); b > 64<<10 || b <= 0 {
		t.Errorf("%d bytes held, bound 65536", b)
	}
	if !s.put("short", body, 30*time.Millisecond) {
		t.Skip("the admission policy refused the entry; TTL not checked")
	}
	if _, _, ok := s.get("short", nil); !ok {
		t.Fatal("not found right after put")
	}
	time.Sleep(80 * time.Millisecond)
	if _, _, ok := s.get("short", nil); ok {
		t.Error("found after its TTL")
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`, `[]`, `{"a":1e999}`, `{"a":{"b":[1,2,{"c":null}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parse(body)
		if err != nil {
			return
		}
		k1, c1, err := keyOf(scope{}, r, nil)
		if err != nil {
			return
		}
		// The canonical form is stable: keying it again gives the same key.
		r2, err := parse(c1[len(scope{}.append(nil)):])
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c1, err)
		}
		k2, _, _ := keyOf(scope{}, r2, nil)
		if k1 != k2 {
			t.Fatalf("canonical form not stable: %q", c1)
		}
		partitionOf(scope{}, r, nil)
		r.deterministic()
	})
}

func FuzzAssembler(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}`))
	f.Add([]byte(`{"choices":[{"index":3,"delta":{"tool_calls":[{"index":-1}]}}]}`))
	f.Fuzz(func(t *testing.T, ev []byte) {
		a := &assembler{}
		a.add(ev)
		a.add(ev)
		if b, err := a.answer(1, 1); err == nil {
			if err := storable(b, true); err != nil && !strings.Contains(err.Error(), "finish_reason") {
				t.Fatalf("assembled %s: %v", b, err)
			}
		}
	})
}

func BenchmarkKey(b *testing.B) {
	body := []byte(`{"model":"m","temperature":0,"max_tokens":64,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France, and why is it famous?"}]}`)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		r, _ := parse(body)
		_, buf, _ = keyOf(scope{Owner: "tenant:a", Route: "r", Pool: "p", Op: "chat"}, r, buf)
	}
}

func BenchmarkExactGet(b *testing.B) {
	s, _ := newExactStore(64 << 20)
	defer s.Close()
	body := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is the capital of France."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}`)
	s.put("k", body, time.Hour)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		dst, _, _ = s.get("k", dst)
	}
}
