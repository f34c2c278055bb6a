//go:build !race

package oip

import "testing"

func TestZeroAllocs(t *testing.T) {
	body := fp32Body(64, 16, "42")
	escaped := []byte(`{"in\u0070uts":[{"n\u0061me":"in\u0070ut","shape":[2,2],"d\u0061tatype":"F\u005032","data":[[1,2],[3,4]],"parameters":{"a":1}},` +
		`{"data":["a","b"],"name":"late","datatype":"BYTES","shape":[2]}],"outputs":[{"name":"o"}],"extra":{"k":[1]}}`)
	respBody := fp32Response(64, 16)
	var r, re Request
	var resp, parsed Response
	if err := ParseRequest(escaped, &re); err != nil {
		t.Fatal(err)
	}
	if err := ParseRequest(body, &r); err != nil {
		t.Fatal(err)
	}
	if err := ParseResponse(respBody, &resp); err != nil {
		t.Fatal(err)
	}
	reqs := []*Request{&r, &r, &r}
	counts := []int64{64, 0, 0}
	var s Splitter
	_ = s.Prepare(&resp, []byte(`"batch"`), counts)
	dst := make([]byte, 0, 64<<10)
	cases := []struct {
		name string
		fn   func()
	}{
		{"ParseRequest", func() { _ = ParseRequest(body, &r) }},
		{"ParseRequest escaped and out of order", func() { _ = ParseRequest(escaped, &re) }},
		{"ParseResponse", func() { _ = ParseResponse(respBody, &parsed) }},
		{"AppendBatchKey", func() { dst = AppendBatchKey(dst[:0], &re) }},
		{"AppendMerged", func() { dst, _ = AppendMerged(dst[:0], []byte(`"id"`), reqs) }},
		{"Splitter", func() {
			_ = s.Prepare(&resp, []byte(`"batch"`), counts)
			for i := range counts {
				dst, _ = s.Append(dst[:0], i, r.ID)
			}
		}},
		{"AppendError", func() { dst = AppendError(dst[:0], `input "x": bad`) }},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(100, c.fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", c.name, n)
		}
	}
}
