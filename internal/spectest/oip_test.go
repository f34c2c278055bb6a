package spectest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	oipRequest = `{"id":"42","parameters":{"priority":1},"inputs":[
  {"name":"input0","shape":[2,2],"datatype":"UINT32","data":[[1,2],[3,4]]},
  {"name":"input1","shape":[3],"datatype":"BOOL","parameters":{"content_type":"bool"},"data":[true,false,true]}],
  "outputs":[{"name":"output0","parameters":{"classification":2}}]}`
	oipResponse = `{"model_name":"mymodel","model_version":"1","id":"42","parameters":{"sequence_end":true},"outputs":[
  {"name":"output0","shape":[3,2],"datatype":"FP32","data":[1.0,1.1,2.0,2.1,3.0,3.1]},
  {"name":"labels","shape":[1],"datatype":"BYTES","data":["cat"]}]}`
	oipServerMetadata = `{"name":"triton","version":"2.40.0","extensions":["classification","sequence"]}`
	oipModelMetadata  = `{"name":"resnet","versions":["1","2"],"platform":"onnx_onnxv1",
  "inputs":[{"name":"input__0","datatype":"FP32","shape":[-1,3,224,224]}],
  "outputs":[{"name":"output__0","datatype":"FP32","shape":[-1,1000]}]}`
	oipError = `{"error":"input \"x\": data has 5 elements, shape [2,3] needs 6"}`
)

func TestOIPValidateConforming(t *testing.T) {
	s := NeedOIP(t)
	tests := []struct {
		name   string
		schema string
		body   string
	}{
		{"request", "inference_request", oipRequest},
		{"minimal request", "inference_request", `{"inputs":[]}`},
		{"response", "inference_response", oipResponse},
		{"response without id and version", "inference_response", `{"model_name":"m","outputs":[]}`},
		{"server metadata", "metadata_server_response", oipServerMetadata},
		{"server metadata error", "metadata_server_error_response", `{"error":"not ready"}`},
		{"model metadata", "metadata_model_response", oipModelMetadata},
		{"model metadata, no tensors", "metadata_model_response", `{"name":"m","platform":"pytorch_torchscript"}`},
		{"model metadata error", "metadata_model_error_response", `{"error":"unknown model"}`},
		{"error", "inference_error_response", oipError},
		{"error without message (the schema does not require it)", "inference_error_response", `{}`},
		{"nested tensor data", "tensor_data", `[[["a",1],[true,2.5]]]`},
		{"request input", "request_input", `{"name":"x","shape":[1],"datatype":"INT8","data":[1]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Validate(tt.schema, []byte(tt.body)); err != nil {
				t.Errorf("Validate(%s): %v", tt.schema, err)
			}
		})
	}
}

func TestOIPValidateMismatch(t *testing.T) {
	s := NeedOIP(t)
	tests := []struct {
		name     string
		schema   string
		body     string
		wantPath string
	}{
		{"request without inputs", "inference_request", `{"id":"1"}`, "(root)"},
		{"request id not a string", "inference_request", `{"id":42,"inputs":[]}`, "/id"},
		{"input without data", "inference_request", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}`, "/inputs/0"},
		{"input shape of strings", "inference_request", `{"inputs":[{"name":"x","shape":["1"],"datatype":"FP32","data":[1]}]}`, "/inputs/0/shape/0"},
		{"data not an array", "inference_request", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":1}]}`, "/inputs/0/data"},
		{"data with an object", "inference_request", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[{"v":1}]}]}`, "/inputs/0/data/0"},
		{"output without name", "inference_request", `{"inputs":[],"outputs":[{}]}`, "/outputs/0"},
		{"parameters not an object", "inference_request", `{"inputs":[],"parameters":[]}`, "/parameters"},
		{"response without model_name", "inference_response", `{"outputs":[]}`, "(root)"},
		{"response output without shape", "inference_response", `{"model_name":"m","outputs":[{"name":"o","datatype":"FP32","data":[1]}]}`, "/outputs/0"},
		{"server metadata without extensions", "metadata_server_response", `{"name":"triton","version":"2"}`, "(root)"},
		{"server metadata extensions not strings", "metadata_server_response", `{"name":"t","version":"2","extensions":[1]}`, "/extensions/0"},
		{"model metadata without platform", "metadata_model_response", `{"name":"m"}`, "(root)"},
		{"model metadata tensor without shape", "metadata_model_response", `{"name":"m","platform":"p","inputs":[{"name":"x","datatype":"FP32"}]}`, "/inputs/0"},
		{"model metadata error without error", "metadata_model_error_response", `{}`, "(root)"},
		{"error not a string", "inference_error_response", `{"error":{"message":"x"}}`, "/error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(tt.schema, []byte(tt.body))
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Validate(%s, %s) = %v, want a *MismatchError", tt.schema, tt.body, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.schema) || !strings.Contains(msg, "at "+tt.wantPath+":") {
				t.Errorf("error does not name schema %s and path %s:\n%s", tt.schema, tt.wantPath, msg)
			}
		})
	}
}

func TestOIPValidateBadInput(t *testing.T) {
	s := NeedOIP(t)
	for _, name := range []string{"CreateChatCompletionResponse", "InferenceRequest", ""} {
		if err := s.Validate(name, []byte(`{}`)); err == nil || errors.As(err, new(*MismatchError)) {
			t.Errorf("Validate(%q) = %v, want an error about the schema name", name, err)
		}
	}
}

func TestOIPAllComponentsCompile(t *testing.T) {
	s := NeedOIP(t)
	want := []string{"inference_request", "inference_response", "inference_error_response",
		"metadata_server_response", "metadata_server_error_response", "metadata_model_response",
		"metadata_model_error_response", "metadata_tensor", "request_input", "request_output",
		"response_output", "tensor_data", "parameters"}
	for _, name := range want {
		if !s.names[name] {
			t.Errorf("the specification has no component %s", name)
		}
	}
	for name := range s.names {
		if _, err := s.schema(name); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestOIPLoadIsCachedAndSeparate(t *testing.T) {
	a, errA := LoadOIP()
	b, errB := LoadOIP()
	if a != b || errA != errB {
		t.Fatalf("LoadOIP returned different results: (%p, %v) then (%p, %v)", a, errA, b, errB)
	}
	if o, _ := Load(); a != nil && o == a {
		t.Fatal("LoadOIP returned the OpenAI specification")
	}
}

func TestOIPLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOIPFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrNoOIPSpec) {
		t.Fatalf("LoadOIPFile(missing) = %v, want ErrNoOIPSpec", err)
	}
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"not YAML", "components: [", "decoding specification"},
		{"no schemas", "openapi: 3.0.0\ncomponents: {}\n", "has no components.schemas"},
		{"key that is no string", "components:\n  schemas:\n    a:\n      enum: {1: x}\n", "converting specification"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := writeFile(p, tc.yaml); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOIPFile(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadOIPFile = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A small document of its own, with a nullable field, loads and checks.
	p := filepath.Join(dir, "small.yaml")
	small := "components:\n  schemas:\n    thing:\n      type: object\n      required: [v]\n      properties:\n        v:\n          type: string\n          nullable: true\n"
	if err := writeFile(p, small); err != nil {
		t.Fatal(err)
	}
	s, err := LoadOIPFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != p {
		t.Errorf("Path = %s, want %s", s.Path(), p)
	}
	for body, ok := range map[string]bool{`{"v":"x"}`: true, `{"v":null}`: true, `{"v":1}`: false, `{}`: false} {
		if err := s.Validate("thing", []byte(body)); (err == nil) != ok {
			t.Errorf("Validate(thing, %s) = %v, want ok %v", body, err, ok)
		}
	}
}

func TestCheckOIP(t *testing.T) {
	NeedOIP(t)
	CheckOIP(t, "inference_response", []byte(oipResponse))
	rec := &recordingTB{TB: t}
	CheckOIP(rec, "inference_response", []byte(`{"outputs":[]}`))
	if !strings.Contains(rec.errors, `body: {"outputs":[]}`) || !strings.Contains(rec.errors, "inference_response") {
		t.Errorf("CheckOIP on a mismatch reported %q, want the schema and the body", rec.errors)
	}
}

// TestOIPMissingSpec runs TestHelperOIPMissingSpec in a child test binary
// with the specification pointed at a file that does not exist, with and
// without EnvRequireSpec, and checks how the tests end.
func TestOIPMissingSpec(t *testing.T) {
	if os.Getenv("SPECTEST_OIP_HELPER") != "" {
		t.Skip("in the child process")
	}
	missing := filepath.Join(t.TempDir(), "open_inference_rest.yaml")
	tests := []struct {
		name    string
		helper  string
		require string
		fail    bool
		want    []string
		notWant []string
	}{
		{"CheckOIP skips at the end", "Check", "", false,
			[]string{"--- SKIP: TestHelperOIPMissingSpec", "the rest of the test ran", "the Open Inference Protocol conformance checks were skipped", missing, EnvOIPSpecPath}, nil},
		{"CheckOIP fails when required", "Check", "1", true,
			[]string{"--- FAIL: TestHelperOIPMissingSpec", "SWITCHYARD_REQUIRE_SPEC is set", missing}, []string{"the rest of the test ran"}},
		{"CheckOIP still fails a failing test", "CheckThenFail", "", true,
			[]string{"--- FAIL: TestHelperOIPMissingSpec", "the test failed on its own"}, []string{"conformance checks were skipped"}},
		{"NeedOIP skips", "Need", "", false,
			[]string{"--- SKIP: TestHelperOIPMissingSpec", "skipping: " + ErrNoOIPSpec.Error()}, []string{"the rest of the test ran"}},
		{"NeedOIP fails when required", "Need", "true", true,
			[]string{"--- FAIL: TestHelperOIPMissingSpec", "SWITCHYARD_REQUIRE_SPEC is set"}, []string{"the rest of the test ran"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOIPMissingSpec$", "-test.v")
			cmd.Env = append(os.Environ(), "SPECTEST_OIP_HELPER="+tc.helper, EnvOIPSpecPath+"="+missing, EnvRequireSpec+"="+tc.require)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.fail {
				t.Errorf("child failed = %v (%v), want %v", failed, err, tc.fail)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("child output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(string(out), w) {
					t.Errorf("child output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestHelperOIPMissingSpec is run by TestOIPMissingSpec in a child process;
// on its own it does nothing.
func TestHelperOIPMissingSpec(t *testing.T) {
	switch os.Getenv("SPECTEST_OIP_HELPER") {
	case "Check":
		CheckOIP(t, "inference_error_response", []byte(`{}`))
		CheckOIP(t, "inference_error_response", []byte(`{}`))
		t.Log("the rest of the test ran")
	case "CheckThenFail":
		CheckOIP(t, "inference_error_response", []byte(`{}`))
		t.Error("the test failed on its own")
	case "Need":
		NeedOIP(t)
		t.Log("the rest of the test ran")
	}
}
