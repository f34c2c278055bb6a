package oip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// flatValues decodes a raw data array and flattens it, numbers kept as
// their text.
func flatValues(t testing.TB, raw []byte) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding data %s: %v", raw, err)
	}
	var out []any
	var walk func(v any)
	walk = func(v any) {
		if a, ok := v.([]any); ok {
			for _, e := range a {
				walk(e)
			}
			return
		}
		out = append(out, v)
	}
	walk(v)
	return out
}

func mustParse(t testing.TB, body string) *Request {
	t.Helper()
	r := new(Request)
	if err := ParseRequest([]byte(body), r); err != nil {
		t.Fatalf("ParseRequest(%s) = %v", body, err)
	}
	return r
}

// callerBody is caller c's request with n rows, every value tagged with the
// caller and row: x[r] = [c*100+r*10, c*100+r*10+1], tag[r] = "c<c>r<r>".
func callerBody(c, n int, nested bool, id string) string {
	var x, tag []string
	for r := range n {
		a, b := fmt.Sprint(c*100+r*10), fmt.Sprint(c*100+r*10+1)
		if nested {
			x = append(x, "["+a+","+b+"]")
		} else {
			x = append(x, a, b)
		}
		tag = append(tag, fmt.Sprintf(`"c%dr%d"`, c, r))
	}
	idPart := ""
	if id != "" {
		idPart = `"id":` + id + `,`
	}
	return fmt.Sprintf(`{%s"inputs":[{"name":"x","shape":[%d,2],"datatype":"FP32","data":[%s]},`+
		`{"name":"tag","shape":[%d],"datatype":"BYTES","data":[%s]}],"outputs":[{"name":"y"},{"name":"tags"}]}`,
		idPart, n, strings.Join(x, ","), n, strings.Join(tag, ","))
}

func TestMergeSplitThreeCallers(t *testing.T) {
	sizes := []int64{1, 3, 2}
	ids := []string{`"a"`, ``, `"c\"q"`}
	var reqs []*Request
	for c, n := range sizes {
		reqs = append(reqs, mustParse(t, callerBody(c, int(n), c == 1, ids[c])))
	}
	merged, err := AppendMerged([]byte("keep:"), []byte(`"batch-1"`), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(merged, []byte("keep:")) {
		t.Fatalf("AppendMerged did not append to dst: %s", merged)
	}
	m := mustParse(t, string(merged[len("keep:"):]))
	if string(m.ID) != `"batch-1"` || string(m.Outputs) != `[{"name":"y"},{"name":"tags"}]` {
		t.Errorf("merged id %s outputs %s", m.ID, m.Outputs)
	}
	if bs, err := m.BatchSize(); err != nil || bs != 6 {
		t.Fatalf("merged batch size %d, %v; want 6", bs, err)
	}
	var wantX, wantTag []any
	for c, n := range sizes {
		for r := range int(n) {
			wantX = append(wantX, json.Number(fmt.Sprint(c*100+r*10)), json.Number(fmt.Sprint(c*100+r*10+1)))
			wantTag = append(wantTag, fmt.Sprintf("c%dr%d", c, r))
		}
	}
	if got := flatValues(t, m.Inputs[0].Data); !reflect.DeepEqual(got, wantX) {
		t.Errorf("merged x = %v, want %v", got, wantX)
	}
	if got := flatValues(t, m.Inputs[1].Data); !reflect.DeepEqual(got, wantTag) {
		t.Errorf("merged tag = %v, want %v", got, wantTag)
	}

	// The upstream echoes x as y (flat) and tag as tags nested in [6,1].
	var nestedTags []string
	for _, v := range wantTag {
		nestedTags = append(nestedTags, fmt.Sprintf(`[%q]`, v))
	}
	resp := fmt.Sprintf(`{"model_name":"echo","model_version":"3","id":"batch-1","parameters":{"p":1},"outputs":[`+
		`{"name":"y","shape":[6,2],"datatype":"FP32","data":%s},`+
		`{"name":"tags","shape":[6,1],"datatype":"BYTES","parameters":{"content_type":"str"},"data":[%s]}]}`,
		m.Inputs[0].Data, strings.Join(nestedTags, ","))
	var rs Response
	if err := ParseResponse([]byte(resp), &rs); err != nil {
		t.Fatal(err)
	}
	var s Splitter
	if err := s.Prepare(&rs, []byte(`"batch-1"`), sizes); err != nil {
		t.Fatal(err)
	}
	for c, n := range sizes {
		out, err := s.Append(nil, c, reqs[c].ID)
		if err != nil {
			t.Fatal(err)
		}
		var got Response
		if err := ParseResponse(out, &got); err != nil {
			t.Fatalf("caller %d: its body %s does not parse: %v", c, out, err)
		}
		if string(got.ID) != ids[c] || string(got.ModelName) != `"echo"` || string(got.ModelVersion) != `"3"` ||
			string(got.Parameters) != `{"p":1}` {
			t.Errorf("caller %d: id %s model %s version %s parameters %s", c, got.ID, got.ModelName, got.ModelVersion, got.Parameters)
		}
		own := reqs[c]
		y, tags := got.Outputs[0], got.Outputs[1]
		if !reflect.DeepEqual(y.Shape, []int64{n, 2}) || !reflect.DeepEqual(tags.Shape, []int64{n, 1}) {
			t.Errorf("caller %d: shapes %v %v, want [%d,2] [%d,1]", c, y.Shape, tags.Shape, n, n)
		}
		if a, b := flatValues(t, y.Data), flatValues(t, own.Inputs[0].Data); !reflect.DeepEqual(a, b) {
			t.Errorf("caller %d got y = %v, want its own rows %v", c, a, b)
		}
		if a, b := flatValues(t, tags.Data), flatValues(t, own.Inputs[1].Data); !reflect.DeepEqual(a, b) {
			t.Errorf("caller %d got tags = %v, want its own rows %v", c, a, b)
		}
		if !tags.Nested || string(tags.Parameters) != `{"content_type":"str"}` {
			t.Errorf("caller %d: tags nested %v parameters %s", c, tags.Nested, tags.Parameters)
		}
		// The one-shot form gives the same body.
		one, err := AppendSplit(nil, &rs, sizes, c, reqs[c].ID)
		if err != nil || !bytes.Equal(one, out) {
			t.Errorf("caller %d: AppendSplit = %s, %v; Splitter gave %s", c, one, err, out)
		}
	}
}

func TestSplitChecksBatchID(t *testing.T) {
	tests := []struct {
		name   string
		respID string // "" for none
		ok     bool
	}{
		{"same", `"batch-1"`, true},
		{"same, escaped otherwise", `"b\u0061tch-1"`, true},
		{"dropped by the upstream", ``, true},
		{"another batch", `"batch-2"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := ""
			if tc.respID != "" {
				id = `"id":` + tc.respID + `,`
			}
			var rs Response
			if err := ParseResponse([]byte(`{`+id+`"model_name":"m","outputs":[{"name":"o","shape":[2],"datatype":"FP32","data":[1,2]}]}`), &rs); err != nil {
				t.Fatal(err)
			}
			var s Splitter
			err := s.Prepare(&rs, []byte(`"batch-1"`), []int64{1, 1})
			if (err == nil) != tc.ok {
				t.Fatalf("Prepare = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), `the upstream answered with the id "batch-2" to the batch "batch-1"`) {
				t.Fatalf("Prepare = %v", err)
			}
		})
	}
}

func TestSplitEmptyCallers(t *testing.T) {
	resp := `{"model_name":"m","outputs":[{"name":"o","shape":[3,2],"datatype":"INT32","data":[[1,2],[3,4],[5,6]]},{"name":"f","shape":[3],"datatype":"INT32","data":[7,8,9]}]}`
	var rs Response
	if err := ParseResponse([]byte(resp), &rs); err != nil {
		t.Fatal(err)
	}
	counts := []int64{0, 2, 0, 1, 0}
	want := []string{
		`{"model_name":"m","outputs":[{"name":"o","datatype":"INT32","shape":[0,2],"data":[]},{"name":"f","datatype":"INT32","shape":[0],"data":[]}]}`,
		`{"model_name":"m","outputs":[{"name":"o","datatype":"INT32","shape":[2,2],"data":[[1,2],[3,4]]},{"name":"f","datatype":"INT32","shape":[2],"data":[7,8]}]}`,
		`{"model_name":"m","outputs":[{"name":"o","datatype":"INT32","shape":[0,2],"data":[]},{"name":"f","datatype":"INT32","shape":[0],"data":[]}]}`,
		`{"model_name":"m","outputs":[{"name":"o","datatype":"INT32","shape":[1,2],"data":[[5,6]]},{"name":"f","datatype":"INT32","shape":[1],"data":[9]}]}`,
		`{"model_name":"m","outputs":[{"name":"o","datatype":"INT32","shape":[0,2],"data":[]},{"name":"f","datatype":"INT32","shape":[0],"data":[]}]}`,
	}
	var s Splitter
	if err := s.Prepare(&rs, nil, counts); err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		got, err := s.Append(nil, i, nil)
		if err != nil || string(got) != want[i] {
			t.Errorf("caller %d: %s, %v\nwant %s", i, got, err, want[i])
		}
		var check Response
		if err := ParseResponse(got, &check); err != nil {
			t.Errorf("caller %d: body does not parse: %v", i, err)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		name   string
		resp   string
		counts []int64
		want   string
	}{
		{"first dimension too small", `{"model_name":"m","outputs":[{"name":"o","shape":[5,1],"datatype":"FP32","data":[1,2,3,4,5]}]}`,
			[]int64{2, 4}, `output "o" has first dimension 5, but the merged batch has 6 rows`},
		{"first dimension too large", `{"model_name":"m","outputs":[{"name":"o","shape":[7],"datatype":"FP32","data":[1,2,3,4,5,6,7]}]}`,
			[]int64{2, 4}, `has first dimension 7, but the merged batch has 6 rows`},
		{"one good output does not save a bad one", `{"model_name":"m","outputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,2]},{"name":"b","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`,
			[]int64{1, 1}, `output "b" has first dimension 1`},
		{"scalar output", `{"model_name":"m","outputs":[{"name":"s","shape":[],"datatype":"FP32","data":[1]}]}`,
			[]int64{1}, `output "s" has no dimensions (shape []), so it cannot be split`},
		{"no callers", `{"model_name":"m","outputs":[]}`, nil, "no callers"},
		{"negative count", `{"model_name":"m","outputs":[]}`, []int64{1, -1}, "invalid batch size -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rs Response
			if err := ParseResponse([]byte(tc.resp), &rs); err != nil {
				t.Fatal(err)
			}
			var s Splitter
			err := s.Prepare(&rs, nil, tc.counts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare = %v, want an error containing %q", err, tc.want)
			}
			for i := range tc.counts {
				if out, err := s.Append(nil, i, nil); err == nil {
					t.Fatalf("Append after a failed Prepare = %s", out)
				}
			}
		})
	}
}

// TestSplitInconsistentTensor checks that a hand-built response whose data
// does not hold the rows its shape claims is refused, not cut at a guess.
func TestSplitInconsistentTensor(t *testing.T) {
	tests := []struct {
		name string
		out  Tensor
		want string
	}{
		{"too few", Tensor{Name: []byte("o"), Datatype: FP32, Shape: []int64{3}, Data: []byte(`[1,2]`)}, "fewer than the batch's rows need"},
		{"too many", Tensor{Name: []byte("o"), Datatype: FP32, Shape: []int64{2}, Data: []byte(`[1,2,3]`)}, "more items than"},
		{"nested rows taken for elements", Tensor{Name: []byte("o"), Datatype: FP32, Shape: []int64{2, 2}, Data: []byte(`[[1,2],[3,4]]`)}, "fewer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := Response{ModelName: []byte(`"m"`), Outputs: []Tensor{tc.out}}
			var s Splitter
			if err := s.Prepare(&rs, nil, []int64{1, tc.out.Shape[0] - 1}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare = %v, want %q", err, tc.want)
			}
		})
	}
	// A consistent hand-built tensor works, its name quoted from Name.
	rs := Response{ModelName: []byte(`"m"`), Outputs: []Tensor{
		{Name: []byte(`q"`), Datatype: Int8, Shape: []int64{2}, Data: []byte(`[1, 2]`), Elems: 2},
	}}
	out, err := AppendSplit(nil, &rs, []int64{1, 1}, 1, []byte(`"id"`))
	if want := `{"model_name":"m","id":"id","outputs":[{"name":"q\"","datatype":"INT8","shape":[1],"data":[2]}]}`; err != nil || string(out) != want {
		t.Fatalf("AppendSplit = %s, %v; want %s", out, err, want)
	}
}

func TestAppendIDs(t *testing.T) {
	r := mustParse(t, input("[1]", "FP32", "[1]"))
	for _, id := range []string{`x`, `"x`, `"a" `, `1`, `null`} {
		if _, err := AppendMerged(nil, []byte(id), []*Request{r}); err == nil {
			t.Errorf("AppendMerged accepted the id %s", id)
		}
	}
	var rs Response
	if err := ParseResponse([]byte(`{"model_name":"m","outputs":[]}`), &rs); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendSplit(nil, &rs, []int64{1}, 0, []byte(`x`)); err == nil {
		t.Error("AppendSplit accepted a bare id")
	}
	if _, err := AppendSplit(nil, &rs, []int64{1}, 1, nil); err == nil {
		t.Error("AppendSplit accepted caller 1 of 1")
	}
	out, err := AppendMerged(nil, nil, []*Request{r})
	if err != nil || bytes.Contains(out, []byte(`"id"`)) {
		t.Errorf("AppendMerged without id = %s, %v", out, err)
	}
}

func TestBatchSize(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int64
		err  string
	}{
		{"one input", input("[4,2]", "FP32", "[1,2,3,4,5,6,7,8]"), 4, ""},
		{"two agreeing", `{"inputs":[{"name":"a","shape":[2],"datatype":"INT8","data":[1,2]},{"name":"b","shape":[2,1],"datatype":"BOOL","data":[[true],[false]]}]}`, 2, ""},
		{"disagreeing", `{"inputs":[{"name":"a","shape":[2],"datatype":"INT8","data":[1,2]},{"name":"b","shape":[1,2],"datatype":"BOOL","data":[true,false]}]}`, 0,
			`the inputs disagree on the batch size (the first dimension): input "a" has 2, input "b" has 1`},
		{"rank 0", input("[]", "FP32", "[1]"), 0, `input "x" has no dimensions (shape []), so it cannot be batched`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.body)
			n, err := r.BatchSize()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("BatchSize = %d, %v; want error %q", n, err, tc.err)
				}
				if _, merr := AppendMerged(nil, nil, []*Request{r}); merr == nil {
					t.Fatal("AppendMerged merged a request without a batch size")
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("BatchSize = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
}

func TestBatchKey(t *testing.T) {
	base := `{"id":"1","parameters":{"a":1},"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"p":"q"},"data":[1,2,3,4,5,6]},{"name":"y","shape":[2],"datatype":"INT32","data":[1,2]}],"outputs":[{"name":"o"}]}`
	tests := []struct {
		name string
		body string
		same bool
	}{
		{"itself", base, true},
		{"other id, batch size and data", `{"id":"2","parameters":{"a":1},"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"p":"q"},"data":[[9,9,9]]},{"name":"y","shape":[1],"datatype":"INT32","data":[7]}],"outputs":[{"name":"o"}]}`, true},
		{"no id, whitespace, key order at the top", `{ "outputs" : [ { "name" : "o" } ] , "inputs":[{"data":[1,2,3,4,5,6],"name":"x","shape":[2,3],"datatype":"FP32","parameters":{ "p" : "q" }},{"name":"y","shape":[2],"datatype":"INT32","data":[1,2]}], "parameters" : {"a" : 1}}`, true},
		{"escaped name", `{"parameters":{"a":1},"inputs":[{"name":"\u0078","shape":[2,3],"datatype":"FP32","parameters":{"p":"q"},"data":[1,2,3,4,5,6]},{"name":"y","shape":[2],"datatype":"INT32","data":[1,2]}],"outputs":[{"name":"o"}]}`, true},
		{"other shape[1:]", strings.Replace(strings.Replace(base, `[2,3]`, `[2,2]`, 1), `[1,2,3,4,5,6]`, `[1,2,3,4]`, 1), false},
		{"other rank", strings.Replace(base, `"shape":[2],"datatype":"INT32","data":[1,2]`, `"shape":[2,1],"datatype":"INT32","data":[1,2]`, 1), false},
		{"other datatype", strings.Replace(base, `"INT32"`, `"INT64"`, 1), false},
		{"other name", strings.Replace(base, `"name":"y"`, `"name":"z"`, 1), false},
		{"inputs swapped", `{"parameters":{"a":1},"inputs":[{"name":"y","shape":[2],"datatype":"INT32","data":[1,2]},{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"p":"q"},"data":[1,2,3,4,5,6]}],"outputs":[{"name":"o"}]}`, false},
		{"an input less", `{"parameters":{"a":1},"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"p":"q"},"data":[1,2,3,4,5,6]}],"outputs":[{"name":"o"}]}`, false},
		{"other input parameters", strings.Replace(base, `{"p":"q"}`, `{"p":"r"}`, 1), false},
		{"no input parameters", strings.Replace(base, `"parameters":{"p":"q"},`, ``, 1), false},
		{"empty input parameters", strings.Replace(base, `{"p":"q"}`, `{}`, 1), false},
		{"other request parameters", strings.Replace(base, `{"a":1}`, `{"a":2}`, 1), false},
		{"number spelled otherwise", strings.Replace(base, `{"a":1}`, `{"a":1.0}`, 1), false},
		{"no request parameters", strings.Replace(base, `"parameters":{"a":1},`, ``, 1), false},
		{"other outputs", strings.Replace(base, `[{"name":"o"}]`, `[{"name":"p"}]`, 1), false},
		{"no outputs", strings.Replace(base, `,"outputs":[{"name":"o"}]`, ``, 1), false},
		{"unknown top-level key", strings.Replace(base, `{"id":"1",`, `{"id":"1","priority":1,`, 1), false},
		{"unknown key inside an input", strings.Replace(base, `"name":"y",`, `"name":"y","x-note":1,`, 1), true},
	}
	ref := mustParse(t, base)
	refKey := AppendBatchKey(nil, ref)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.body)
			key := AppendBatchKey([]byte("p"), r)[1:]
			if got := bytes.Equal(key, refKey); got != tc.same {
				t.Fatalf("keys equal = %v, want %v\nbase %s\nbody %s", got, tc.same, base, tc.body)
			}
			// AppendMerged agrees with the key.
			_, err := AppendMerged(nil, nil, []*Request{ref, r})
			if (err == nil) != tc.same {
				t.Fatalf("AppendMerged error = %v, but keys equal = %v", err, tc.same)
			}
			if err != nil && !strings.Contains(err.Error(), "request 1 cannot share a batch with request 0: ") {
				t.Fatalf("AppendMerged error %q does not say why", err)
			}
		})
	}
}

func TestMergeKeepsExtrasAndNames(t *testing.T) {
	a := mustParse(t, `{"zz":{"k":[1, 2]},"inputs":[{"name":"\u00e9","shape":[1,1],"datatype":"BOOL","data":[true],"junk":1}],"parameters":{"p":true}}`)
	b := mustParse(t, `{"zz":{"k":[1,2]},"inputs":[{"name":"é","shape":[2,1],"datatype":"BOOL","data":[[false],[true]]}],"parameters":{"p":true}}`)
	got, err := AppendMerged(nil, nil, []*Request{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"inputs":[{"name":"\u00e9","datatype":"BOOL","shape":[3,1],"data":[true,false,true]}],"parameters":{"p":true},"zz":{"k":[1, 2]}}`
	if string(got) != want {
		t.Fatalf("AppendMerged = %s\nwant %s", got, want)
	}
}

func TestMergeLimits(t *testing.T) {
	// Each request is within bounds, the merge is not.
	r := mustParse(t, input("[2147483648,0]", "FP32", "[]"))
	if _, err := AppendMerged(nil, nil, []*Request{r, r}); err == nil || !strings.Contains(err.Error(), "more than 2147483648 rows") {
		t.Fatalf("AppendMerged = %v, want the row limit", err)
	}
	if _, err := AppendMerged(nil, nil, nil); err == nil {
		t.Fatal("AppendMerged of no requests succeeded")
	}
}
