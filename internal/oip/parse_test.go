package oip

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// input returns a request body with the single input x.
func input(shape, datatype, data string) string {
	return `{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"` + datatype + `","data":` + data + `}]}`
}

func TestParseDatatype(t *testing.T) {
	for d := Bool; d < numDatatypes; d++ {
		got, ok := ParseDatatype([]byte(d.String()))
		if !ok || got != d {
			t.Errorf("ParseDatatype(%q) = %v, %v; want %v", d.String(), got, ok, d)
		}
	}
	for _, s := range []string{"", "fp32", "BF16", "FP8", "STRING", "BOOL "} {
		if d, ok := ParseDatatype([]byte(s)); ok {
			t.Errorf("ParseDatatype(%q) = %v, want not ok", s, d)
		}
	}
	if s := Datatype(200).String(); s != "Datatype(200)" {
		t.Errorf("String of an invalid datatype = %q", s)
	}
	if FP32.Size() != 4 || Bytes.Size() != 0 || Uint64.Size() != 8 || Bool.Size() != 1 {
		t.Error("Size does not follow the specification's table")
	}
}

// TestDatatypeElements checks, for every datatype, elements at the edges of
// its range and of the wrong JSON type.
func TestDatatypeElements(t *testing.T) {
	tests := []struct {
		datatype string
		valid    []string
		invalid  []string
	}{
		{"BOOL", []string{"true", "false"}, []string{"1", "0", `"true"`, "null", "{}"}},
		{"UINT8", []string{"0", "255", "-0"}, []string{"256", "-1", "1.0", "1e2", `"1"`, "true", "null"}},
		{"UINT16", []string{"0", "65535"}, []string{"65536", "-1"}},
		{"UINT32", []string{"0", "4294967295"}, []string{"4294967296", "-1"}},
		{"UINT64", []string{"0", "18446744073709551615"}, []string{"18446744073709551616", "-1", "99999999999999999999999", "1.5"}},
		{"INT8", []string{"-128", "127", "0"}, []string{"-129", "128", "0.5", `"1"`}},
		{"INT16", []string{"-32768", "32767"}, []string{"-32769", "32768"}},
		{"INT32", []string{"-2147483648", "2147483647"}, []string{"-2147483649", "2147483648", "2E3"}},
		{"INT64", []string{"-9223372036854775808", "9223372036854775807"}, []string{"-9223372036854775809", "9223372036854775808", "false"}},
		{"FP16", []string{"1.5", "-0", "65504"}, []string{`"1.5"`, "true", "null"}},
		{"FP32", []string{"0", "-1.25e-3", "1E+400", "3.4028235e38"}, []string{`"NaN"`, "false", "[]"}},
		{"FP64", []string{"1", "-2.5E-308"}, []string{`"1"`, "null", `{"v":1}`}},
		{"BYTES", []string{`"abc"`, `""`, `"\u00e9\n"`}, []string{"1", "true", "null"}},
	}
	for _, tc := range tests {
		for _, v := range tc.valid {
			t.Run(tc.datatype+"/valid/"+v, func(t *testing.T) {
				var r Request
				body := input("[2]", tc.datatype, "["+v+","+v+"]")
				if err := ParseRequest([]byte(body), &r); err != nil {
					t.Fatalf("ParseRequest(%s) = %v", body, err)
				}
				if got := r.Inputs[0].Datatype.String(); got != tc.datatype || r.Inputs[0].Elems != 2 {
					t.Fatalf("ParseRequest(%s): datatype %s, %d elements", body, got, r.Inputs[0].Elems)
				}
			})
		}
		for _, v := range tc.invalid {
			t.Run(tc.datatype+"/invalid/"+v, func(t *testing.T) {
				var r Request
				body := input("[2]", tc.datatype, "[1,"+v+"]")
				if tc.datatype == "BOOL" || tc.datatype == "BYTES" {
					body = input("[2]", tc.datatype, "["+tc.valid[0]+","+v+"]")
				}
				err := ParseRequest([]byte(body), &r)
				if err == nil {
					t.Fatalf("ParseRequest(%s) accepted %s for %s", body, v, tc.datatype)
				}
				want := `input "x": data element 1 is ` + v + ", "
				if v == "[]" {
					want = `input "x": data element 1 is [], expected a number`
				}
				if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.datatype) {
					t.Fatalf("ParseRequest(%s) = %q; want it to start with %q and name %s", body, err, want, tc.datatype)
				}
			})
		}
	}
}

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		shapes [][]int64
		elems  []int64
		nested []bool
	}{
		{"flat", input("[2,3]", "FP32", "[1,2,3,4,5,6]"), [][]int64{{2, 3}}, []int64{6}, []bool{false}},
		{"nested", input("[2,3]", "FP32", "[[1,2,3],[4,5,6]]"), [][]int64{{2, 3}}, []int64{6}, []bool{true}},
		{"nested rank 3", input("[2,1,2]", "INT8", "[[[1,2]],[[3,4]]]"), [][]int64{{2, 1, 2}}, []int64{4}, []bool{true}},
		{"flat rank 3", input("[2,1,2]", "INT8", "[1,2,3,4]"), [][]int64{{2, 1, 2}}, []int64{4}, []bool{false}},
		{"scalar", input("[]", "INT64", "[7]"), [][]int64{{}}, []int64{1}, []bool{false}},
		{"empty batch", input("[0,3]", "FP32", "[]"), [][]int64{{0, 3}}, []int64{0}, []bool{false}},
		{"empty rows nested", input("[2,0]", "FP32", "[[],[]]"), [][]int64{{2, 0}}, []int64{0}, []bool{true}},
		{"empty rows flat", input("[2,0]", "FP32", "[]"), [][]int64{{2, 0}}, []int64{0}, []bool{false}},
		{"zero dimension with a huge one", input("[0,2147483648,2147483648]", "FP32", "[]"), [][]int64{{0, 1 << 31, 1 << 31}}, []int64{0}, []bool{false}},
		{"data before shape and datatype", `{"inputs":[{"data":[[1,2],[3,4]],"name":"x","shape":[2,2],"datatype":"UINT32"}]}`,
			[][]int64{{2, 2}}, []int64{4}, []bool{true}},
		{"whitespace everywhere", " \n{ \"inputs\" : [ { \"name\" : \"x\" , \"shape\" : [ 1 , 2 ] , \"datatype\" : \"BOOL\" , \"data\" : [ [ true , false ] ] } ] } \t",
			[][]int64{{1, 2}}, []int64{2}, []bool{true}},
		{"spec example, corrected", `{"id":"42","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]},{"name":"input1","shape":[3],"datatype":"BOOL","data":[true,false,true]}],"outputs":[{"name":"output0"}]}`,
			[][]int64{{2, 2}, {3}}, []int64{4, 3}, []bool{false, false}},
		{"unknown keys and parameters", `{"x-trace":{"a":[1]},"parameters":{"priority":1,"binary_data_output":false},"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"],"parameters":{"content_type":"str"},"extra":null}],"outputs":[{"name":"o","parameters":{"binary_data":false},"k":1}]}`,
			[][]int64{{1}}, []int64{1}, []bool{false}},
		{"escaped keys", `{"in\u0070uts":[{"n\u0061me":"x","sh\u0061pe":[1],"d\u0061tatype":"F\u005032","d\u0061ta":[1]}]}`,
			[][]int64{{1}}, []int64{1}, []bool{false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.body), &r); err != nil {
				t.Fatalf("ParseRequest(%s) = %v", tc.body, err)
			}
			if len(r.Inputs) != len(tc.shapes) {
				t.Fatalf("ParseRequest(%s): %d inputs, want %d", tc.body, len(r.Inputs), len(tc.shapes))
			}
			for i, in := range r.Inputs {
				if !slices.Equal(in.Shape, tc.shapes[i]) || in.Elems != tc.elems[i] || in.Nested != tc.nested[i] {
					t.Errorf("input %d: shape %v, %d elements, nested %v; want %v, %d, %v",
						i, in.Shape, in.Elems, in.Nested, tc.shapes[i], tc.elems[i], tc.nested[i])
				}
				if !json.Valid(in.Data) || in.Data[0] != '[' {
					t.Errorf("input %d: Data %q is not the raw array", i, in.Data)
				}
			}
		})
	}
}

func TestParseRequestFields(t *testing.T) {
	body := `{"id":"a\"b","parameters":{"p":1},"inputs":[{"name":"\u0078y","shape":[1],"datatype":"FP32","parameters":{"q":"r"},"data":[0.5]}],"outputs":[{"name":"o"}],"zz":[true]}`
	var r Request
	if err := ParseRequest([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	in := r.Inputs[0]
	checks := []struct{ what, got, want string }{
		{"ID", string(r.ID), `"a\"b"`},
		{"Parameters", string(r.Parameters), `{"p":1}`},
		{"Outputs", string(r.Outputs), `[{"name":"o"}]`},
		{"Name", string(in.Name), "xy"},
		{"input Parameters", string(in.Parameters), `{"q":"r"}`},
		{"Data", string(in.Data), `[0.5]`},
		{"Datatype", in.Datatype.String(), "FP32"},
		{"extra", string(r.extra[0]), `"zz":[true]`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
		}
	}
	// Reuse: the next parse forgets everything of the last one.
	if err := ParseRequest([]byte(input("[1]", "BOOL", "[true]")), &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != nil || r.Parameters != nil || r.Outputs != nil || len(r.extra) != 0 || len(r.Inputs) != 1 ||
		r.Inputs[0].Parameters != nil || string(r.Inputs[0].Name) != "x" {
		t.Errorf("reused Request kept old fields: %+v", r)
	}
}

func TestParseRequestErrors(t *testing.T) {
	deep := `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"k":` +
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`
	manyDims := "[" + strings.Repeat("1,", MaxRank) + "1]"
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", ``, "empty body"},
		{"not an object", `[]`, "must be a JSON object"},
		{"trailing data", input("[1]", "FP32", "[1]") + ` {}`, "unexpected data after the top-level object"},
		{"invalid JSON", `{"inputs":[{"name":"x",}]}`, "invalid JSON at byte 23"},
		{"invalid JSON in data", input("[2]", "FP32", "[1,2"), "invalid JSON"},
		{"bad literal", input("[1]", "BOOL", "[tru]"), "invalid JSON"},
		{"missing inputs", `{"id":"1"}`, `missing "inputs"`},
		{"empty inputs", `{"inputs":[]}`, `"inputs" must not be empty`},
		{"inputs not an array", `{"inputs":{}}`, `"inputs" must be an array`},
		{"input not an object", `{"inputs":[1]}`, `inputs[0] must be an object`},
		{"missing name", `{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}`, `inputs[0]: missing "name"`},
		{"missing shape", `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, `input "x": missing "shape"`},
		{"missing datatype", `{"inputs":[{"name":"x","shape":[1],"data":[1]}]}`, `input "x": missing "datatype"`},
		{"missing data", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}`, `input "x": missing "data"`},
		{"name not a string", `{"inputs":[{"name":1,"shape":[1],"datatype":"FP32","data":[1]}]}`, `inputs[0]: "name" must be a string`},
		{"negative dimension", input("[-1,2]", "FP32", "[]"), `input "x": "shape" must be an array of non-negative integers, got -1`},
		{"fractional dimension", input("[1.5]", "FP32", "[]"), `got 1.5`},
		{"string dimension", input(`["2"]`, "FP32", "[1,2]"), `"shape" must be an array of non-negative integers`},
		{"shape not an array", input(`2`, "FP32", "[1,2]"), `"shape" must be an array`},
		{"too many dimensions", input(manyDims, "FP32", "[1]"), "more than 64 dimensions"},
		{"huge dimension", input("[2147483649]", "FP32", "[]"), "shape dimension 2147483649 is larger than 2147483648"},
		{"huge dimension overflowing", input("[99999999999999999999999]", "FP32", "[]"), "is larger than"},
		{"huge product", input("[65536,65536]", "FP32", "[]"), "shape [65536,65536] has more than 2147483648 elements"},
		{"huge product, many small dimensions", input("[16,16,16,16,16,16,16,16,16,16,16]", "FP32", "[]"), "has more than 2147483648 elements"},
		{"unknown datatype", input("[1]", "fp32", "[1]"), `input "x": unknown datatype "fp32", want one of BOOL, UINT8`},
		{"datatype not a string", `{"inputs":[{"name":"x","shape":[1],"datatype":4,"data":[1]}]}`, `"datatype" must be a string`},
		{"data not an array", input("[1]", "FP32", "1"), `input "x": "data" must be an array`},
		{"too few elements", input("[2,3]", "FP32", "[1,2,3,4,5]"), `input "x": data has 5 elements, shape [2,3] needs 6`},
		{"too many elements", input("[2]", "FP32", "[1,2,3]"), `data has 3 elements, shape [2] needs 2`},
		{"scalar without element", input("[]", "FP32", "[]"), `data has 0 elements, shape [] needs 1`},
		{"nested row too short", input("[2,3]", "FP32", "[[1,2,3],[4,5]]"), `nested data does not match shape [2,3]: an array at depth 2 has 2 elements, want 3`},
		{"nested too many rows", input("[2,3]", "FP32", "[[1,2,3],[4,5,6],[7,8,9]]"), `an array at depth 1 has more than 2 elements`},
		{"nested too deep", input("[2,2]", "FP32", "[[[1],[2]],[[3],[4]]]"), `data is nested deeper than shape [2,2]`},
		{"nested too shallow", input("[1,2,2]", "FP32", "[[1,2,3,4]]"), `expected an array at depth 3, found 1`},
		{"nested mixed", input("[2,2]", "FP32", "[[1,2],3,4]"), `expected an array at depth 2, found 3`},
		{"flat mixed", input("[2,2]", "FP32", "[1,2,[3,4]]"), `data element 2 is [3,4], expected a number`},
		{"nested scalar", input("[]", "FP32", "[[1]]"), `data is nested, but shape [] has no dimensions`},
		{"nested deferred", `{"inputs":[{"data":[[1,2],[3]],"shape":[2,2],"datatype":"INT32","name":"late"}]}`, `input "late": nested data does not match shape [2,2]`},
		{"element deferred", `{"inputs":[{"datatype":"INT8","data":[1,999],"name":"late","shape":[2]}]}`, `input "late": data element 1 is 999, out of range for INT8 (-128..127)`},
		{"parameters not an object", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":[]}]}`, `input "x": "parameters" must be an object`},
		{"request parameters not an object", `{"parameters":1,"inputs":[]}`, `"parameters" must be an object`},
		{"duplicate tensor key", `{"inputs":[{"name":"x","shape":[1],"shape":[1],"datatype":"FP32","data":[1]}]}`, `input "x": the key "shape" appears more than once`},
		{"duplicate escaped tensor key", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"d\u0061ta":[2]}]}`, `the key "data" appears more than once`},
		{"duplicate top-level key", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"inputs":[]}`, `the key "inputs" appears more than once`},
		{"duplicate escaped top-level key", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"\u0069nputs":[]}`, `the key "inputs" appears more than once`},
		{"duplicate names", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, `two inputs are named "x"`},
		{"duplicate escaped names", `{"inputs":[{"name":"ab","shape":[1],"datatype":"FP32","data":[1]},{"name":"\u0061b","shape":[1],"datatype":"FP32","data":[1]}]}`, `two inputs are named "ab"`},
		{"id not a string", `{"id":42,"inputs":[]}`, `"id" must be a string`},
		{"outputs not an array", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":{}}`, `"outputs" must be an array of objects`},
		{"output not an object", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":["o"]}`, `outputs[0] must be an object`},
		{"output without name", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"o"},{"parameters":{}}]}`, `outputs[1]: missing "name"`},
		{"output name not a string", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":null}]}`, `outputs[0]: "name" must be a string`},
		{"binary input", `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`,
			`input "x": the binary tensor data extension is not supported here (parameter "binary_data_size"): send the tensor's data as JSON in "data"`},
		{"binary input with data", `{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2],"parameters":{"binary_data_size":8}}]}`, `binary tensor data extension is not supported`},
		{"binary output requested", `{"parameters":{"binary_data_output":true},"inputs":[]}`, `binary tensor data extension is not supported here (request parameter "binary_data_output")`},
		{"binary output of one output", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"o","parameters":{"binary_data":true}}]}`, `outputs[0]: the binary tensor data extension is not supported here`},
		{"too deep", deep, "nesting too deep"},
		{"control character", "{\"inputs\":[{\"name\":\"a\x01\"}]}", "control character in string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := ParseRequest([]byte(tc.body), &r)
			if err == nil {
				t.Fatalf("ParseRequest(%.200s) = nil, want an error containing %q", tc.body, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRequest(%.200s) = %q, want it to contain %q", tc.body, err, tc.want)
			}
		})
	}
}

func TestParseRequestManyInputs(t *testing.T) {
	// Above 32 inputs names are checked with a map.
	var sb strings.Builder
	sb.WriteString(`{"inputs":[`)
	for i := range 40 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"name":"in` + strconv.Itoa(i) + `","shape":[1],"datatype":"FP32","data":[1]}`)
	}
	ok := sb.String() + `]}`
	dup := sb.String() + `,{"name":"in7","shape":[1],"datatype":"FP32","data":[1]}]}`
	var r Request
	if err := ParseRequest([]byte(ok), &r); err != nil || len(r.Inputs) != 40 {
		t.Fatalf("40 inputs: %v, %d inputs", err, len(r.Inputs))
	}
	if err := ParseRequest([]byte(dup), &r); err == nil || !strings.Contains(err.Error(), `two inputs are named "in7"`) {
		t.Fatalf("41 inputs with a duplicate: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	valid := []struct {
		name string
		body string
	}{
		{"spec example", `{"model_name":"m","id":"42","outputs":[{"name":"output0","shape":[3,2],"datatype":"FP32","data":[1.0,1.1,2.0,2.1,3.0,3.1]}]}`},
		{"version, parameters, nested, unknown keys", `{"model_name":"m","model_version":"1","parameters":{"a":true},"outputs":[{"name":"o","shape":[1,2],"datatype":"BYTES","data":[["a","b"]],"parameters":{"content_type":"str"}}],"x":1}`},
		{"no outputs", `{"model_name":"m","outputs":[]}`},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			if err := ParseResponse([]byte(tc.body), &r); err != nil {
				t.Fatalf("ParseResponse(%s) = %v", tc.body, err)
			}
			if string(r.ModelName) != `"m"` {
				t.Fatalf("ModelName = %s", r.ModelName)
			}
		})
	}
	invalid := []struct {
		name string
		body string
		want string
	}{
		{"not an object", `"x"`, "the response body must be a JSON object"},
		{"missing model_name", `{"outputs":[]}`, `missing "model_name"`},
		{"missing outputs", `{"model_name":"m"}`, `missing "outputs"`},
		{"model_name not a string", `{"model_name":1,"outputs":[]}`, `"model_name" must be a string`},
		{"id not a string", `{"model_name":"m","id":null,"outputs":[]}`, `"id" must be a string`},
		{"shape mismatch", `{"model_name":"m","outputs":[{"name":"o","shape":[3,2],"datatype":"FP32","data":[1,2,3,4,5]}]}`, `output "o": data has 5 elements, shape [3,2] needs 6`},
		{"nested mismatch", `{"model_name":"m","outputs":[{"name":"o","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4,5]]}]}`, `output "o": nested data does not match shape [2,2]`},
		{"wrong element", `{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"BOOL","data":[1]}]}`, `output "o": data element 0 is 1, expected true or false for BOOL`},
		{"duplicate outputs", `{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"BOOL","data":[true]},{"name":"o","shape":[1],"datatype":"BOOL","data":[true]}]}`, `two outputs are named "o"`},
		{"duplicate key", `{"model_name":"m","model_name":"n","outputs":[]}`, `the key "model_name" appears more than once`},
		{"binary output", `{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, `output "o": the binary tensor data extension is not supported here (parameter "binary_data_size"): the upstream must answer with JSON tensor data`},
		{"missing data", `{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"FP32"}]}`, `output "o": missing "data"`},
		{"outputs not an array", `{"model_name":"m","outputs":null}`, `"outputs" must be an array`},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			err := ParseResponse([]byte(tc.body), &r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseResponse(%s) = %v, want an error containing %q", tc.body, err, tc.want)
			}
		})
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct{ msg, want string }{
		{`input "x": data has 5 elements`, `{"error":"input \"x\": data has 5 elements"}`},
		{"a\nb\\c\x01", `{"error":"a\nb\\c\u0001"}`},
		{"bad \xff utf-8", `{"error":"bad \ufffd utf-8"}`},
	}
	for _, tc := range tests {
		got := AppendError([]byte("prefix:"), tc.msg)
		if string(got) != "prefix:"+tc.want {
			t.Errorf("AppendError(%q) = %s, want %s", tc.msg, got, tc.want)
		}
		var v struct{ Error string }
		if err := json.Unmarshal(got[len("prefix:"):], &v); err != nil {
			t.Errorf("AppendError(%q) is not valid JSON: %v", tc.msg, err)
		}
	}
}
