package oip

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

var requestSeeds = []string{
	input("[2,3]", "FP32", "[1,2,3,4,5,6]"),
	input("[2,3]", "FP32", "[[1,2,3],[4,5,6]]"),
	input("[2,1,2]", "INT8", "[[[1,-2]],[[3,127]]]"),
	input("[]", "INT64", "[-9223372036854775808]"),
	input("[0,3]", "BYTES", "[]"),
	input("[2,0]", "UINT64", "[[],[]]"),
	input("[3]", "BYTES", `["a","\u00e9","\ud83d\ude00"]`),
	input("[2]", "BOOL", "[true,false]"),
	input("[2]", "FP16", "[1e-3,-0.5E+2]"),
	`{"id":"42","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]},{"name":"input1","shape":[2],"datatype":"BOOL","data":[true,false]}],"outputs":[{"name":"output0"}]}`,
	`{"x":[1,{"y":null}],"parameters":{"a":"b"},"inputs":[{"n\u0061me":"\u0078","shape":[1],"datatype":"UINT16","parameters":{"c":1},"data":[65535],"z":0}]}`,
	`{"inputs":[{"data":[[1,2],[3,4]],"datatype":"INT32","shape":[2,2],"name":"late"}]}`,
	`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`,
	`{"inputs":[{"name":"x","shape":[2147483648,0],"datatype":"FP32","data":[]}]}`,
	`{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}`,
	`{"inputs":[]}`, `{}`, `[]`, ``,
}

// FuzzParseRequest checks that ParseRequest never accepts invalid JSON, that
// what it accepts holds together, and that a request it accepts can be
// merged with itself, the merged body parses with the same batch key, and an
// echo of the merged request splits back into the request's own data for
// each copy.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := ParseRequest(body, &r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("ParseRequest(%q) = %#v, want an *Error with a message", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("ParseRequest accepted invalid JSON %q", body)
		}
		checkTensors(t, r.Inputs)
		// Parsing again into the used Request gives the same result.
		key := AppendBatchKey(nil, &r)
		if err := ParseRequest(body, &r); err != nil || !bytes.Equal(AppendBatchKey(nil, &r), key) {
			t.Fatalf("reparse into a used Request: %v", err)
		}

		n, berr := r.BatchSize()
		merged, merr := AppendMerged(nil, []byte(`"m"`), []*Request{&r, &r})
		if berr != nil {
			if merr == nil {
				t.Fatalf("AppendMerged merged %q, which has no batch size: %v", body, berr)
			}
			return
		}
		if merr != nil {
			if 2*n > MaxElements || bytes.Contains([]byte(merr.Error()), []byte("more than")) {
				return // the doubled batch is over the limits
			}
			t.Fatalf("AppendMerged(%q twice) = %v", body, merr)
		}
		var m Request
		if err := ParseRequest(merged, &m); err != nil {
			t.Fatalf("merged body %s of %q does not parse: %v", merged, body, err)
		}
		if !bytes.Equal(AppendBatchKey(nil, &m), key) {
			t.Fatalf("merged body %s has another batch key than %q", merged, body)
		}
		if mn, err := m.BatchSize(); err != nil || mn != 2*n {
			t.Fatalf("merged batch size %d, %v; want %d", mn, err, 2*n)
		}

		// The echo: every merged input comes back as an output.
		echo := []byte(`{"model_name":"echo","outputs":[`)
		for k := range m.Inputs {
			in := &m.Inputs[k]
			if k > 0 {
				echo = append(echo, ',')
			}
			echo = append(echo, `{"name":`...)
			echo = append(echo, in.rawName...)
			echo = append(echo, `,"datatype":"`+in.Datatype.String()+`","shape":`...)
			echo = appendShape(echo, in.Shape[0], in.Shape[1:])
			echo = append(echo, `,"data":`...)
			echo = append(echo, in.Data...)
			echo = append(echo, '}')
		}
		echo = append(echo, "]}"...)
		var resp Response
		if err := ParseResponse(echo, &resp); err != nil {
			t.Fatalf("echo %s does not parse: %v", echo, err)
		}
		var s Splitter
		if err := s.Prepare(&resp, nil, []int64{n, n}); err != nil {
			t.Fatalf("splitting the echo %s: %v", echo, err)
		}
		for c := range 2 {
			out, err := s.Append(nil, c, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got Response
			if err := ParseResponse(out, &got); err != nil {
				t.Fatalf("caller %d: body %s does not parse: %v", c, out, err)
			}
			if !bytes.Equal(got.ID, r.ID) || len(got.Outputs) != len(r.Inputs) {
				t.Fatalf("caller %d: id %s, %d outputs; want %s, %d", c, got.ID, len(got.Outputs), r.ID, len(r.Inputs))
			}
			for k := range got.Outputs {
				o, in := &got.Outputs[k], &r.Inputs[k]
				if !bytes.Equal(o.Name, in.Name) || o.Datatype != in.Datatype || !reflect.DeepEqual(o.Shape, in.Shape) {
					t.Fatalf("caller %d output %d: %s %v %v; want %s %v %v", c, k, o.Name, o.Datatype, o.Shape, in.Name, in.Datatype, in.Shape)
				}
				if a, b := flatValues(t, o.Data), flatValues(t, in.Data); !reflect.DeepEqual(a, b) {
					t.Fatalf("caller %d output %q = %v, want its own data %v", c, o.Name, a, b)
				}
			}
		}
	})
}

// checkTensors checks what the parser promises about each tensor.
func checkTensors(t *testing.T, ts []Tensor) {
	t.Helper()
	for k := range ts {
		in := &ts[k]
		want, ok := elemCount(in.Shape)
		if !ok || in.Elems != want {
			t.Fatalf("tensor %q: %d elements, shape %v", in.Name, in.Elems, in.Shape)
		}
		if got := int64(len(flatValues(t, in.Data))); got != in.Elems {
			t.Fatalf("tensor %q: data %s has %d elements, Elems says %d", in.Name, in.Data, got, in.Elems)
		}
		if in.Datatype == InvalidDatatype || len(in.Shape) > MaxRank {
			t.Fatalf("tensor %q: datatype %v, shape %v", in.Name, in.Datatype, in.Shape)
		}
	}
}

var responseSeeds = []string{
	`{"model_name":"m","id":"42","outputs":[{"name":"output0","shape":[3,2],"datatype":"FP32","data":[1.0,1.1,2.0,2.1,3.0,3.1]}]}`,
	`{"model_name":"m","model_version":"1","parameters":{"a":true},"outputs":[{"name":"o","shape":[2,2],"datatype":"BYTES","data":[["a","b"],["c","d"]]},{"name":"p","shape":[2],"datatype":"INT16","data":[-1,1]}]}`,
	`{"model_name":"m","outputs":[{"name":"s","shape":[],"datatype":"BOOL","data":[true]}]}`,
	`{"model_name":"m","outputs":[{"name":"z","shape":[4,0],"datatype":"UINT8","data":[[],[],[],[]]}]}`,
	`{"model_name":"m","outputs":[]}`,
	`{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`,
}

// FuzzParseResponse checks that ParseResponse never accepts invalid JSON and
// that a response it accepts, whose outputs share a first dimension, splits
// into two callers whose bodies parse and whose rows, put back together, are
// the original data.
func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, cut uint8) {
		var r Response
		err := ParseResponse(body, &r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("ParseResponse(%q) = %#v, want an *Error with a message", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("ParseResponse accepted invalid JSON %q", body)
		}
		checkTensors(t, r.Outputs)
		if len(r.Outputs) == 0 {
			return
		}
		for k := range r.Outputs {
			if o := &r.Outputs[k]; len(o.Shape) == 0 || len(r.Outputs[0].Shape) == 0 || o.Shape[0] != r.Outputs[0].Shape[0] {
				// Not every output has the same batch dimension: no split may succeed.
				var s Splitter
				for _, counts := range [][]int64{{1}, {int64(cut)}, {0, int64(cut)}} {
					if err := s.Prepare(&r, nil, counts); err == nil {
						t.Fatalf("Prepare(%s, %v) split outputs of different first dimensions", body, counts)
					}
				}
				return
			}
		}
		n := r.Outputs[0].Shape[0]
		first := int64(cut) % (n + 1)
		counts := []int64{first, n - first}
		var s Splitter
		if err := s.Prepare(&r, nil, counts); err != nil {
			t.Fatalf("Prepare(%s, %v) = %v", body, counts, err)
		}
		if err := s.Prepare(&r, nil, []int64{n + 1}); err == nil {
			t.Fatalf("Prepare(%s) split %d rows as %d", body, n, n+1)
		}
		if err := s.Prepare(&r, nil, counts); err != nil {
			t.Fatal(err)
		}
		whole := make([][]any, len(r.Outputs))
		for c := range counts {
			id := []byte(`"caller` + strconv.Itoa(c) + `"`)
			out, err := s.Append(nil, c, id)
			if err != nil {
				t.Fatal(err)
			}
			var got Response
			if err := ParseResponse(out, &got); err != nil {
				t.Fatalf("caller %d: body %s does not parse: %v", c, out, err)
			}
			if !bytes.Equal(got.ID, id) || !bytes.Equal(got.ModelName, r.ModelName) || len(got.Outputs) != len(r.Outputs) {
				t.Fatalf("caller %d: %s", c, out)
			}
			for k := range got.Outputs {
				if got.Outputs[k].Shape[0] != counts[c] {
					t.Fatalf("caller %d output %d: shape %v, want %d rows", c, k, got.Outputs[k].Shape, counts[c])
				}
				whole[k] = append(whole[k], flatValues(t, got.Outputs[k].Data)...)
			}
		}
		for k := range r.Outputs {
			if want := flatValues(t, r.Outputs[k].Data); !reflect.DeepEqual(whole[k], want) && len(want)+len(whole[k]) > 0 {
				t.Fatalf("output %d: the callers' rows put together are %v, want %v", k, whole[k], want)
			}
		}
	})
}

// FuzzBatchKey checks that two requests have equal batch keys exactly when
// AppendMerged merges them.
func FuzzBatchKey(f *testing.F) {
	for i, s := range requestSeeds {
		f.Add([]byte(s), []byte(requestSeeds[(i+1)%len(requestSeeds)]))
		f.Add([]byte(s), []byte(s))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var ra, rb Request
		if ParseRequest(a, &ra) != nil || ParseRequest(b, &rb) != nil {
			return
		}
		na, ea := ra.BatchSize()
		nb, eb := rb.BatchSize()
		if ea != nil || eb != nil || na+nb > MaxElements {
			return
		}
		for k := range ra.Inputs {
			if ra.Inputs[k].rowElems()*(na+nb) > MaxElements {
				return
			}
		}
		same := bytes.Equal(AppendBatchKey(nil, &ra), AppendBatchKey(nil, &rb))
		_, err := AppendMerged(nil, nil, []*Request{&ra, &rb})
		if same != (err == nil) {
			t.Fatalf("keys equal %v, AppendMerged: %v\na %s\nb %s", same, err, a, b)
		}
	})
}
