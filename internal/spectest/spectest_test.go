package spectest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// spec loads the specification, or skips (fails when Required) the test
// when it is absent.
func spec(tb testing.TB) *Spec {
	tb.Helper()
	return Need(tb)
}

const chatResponse = `{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "The image shows a wooden boardwalk path.",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035",
  "x_switchyard_extra": {"anything": true}
}`

const streamChunk = `{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}`

const streamFinishChunk = `{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`

const streamUsageChunk = `{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`

const errorBody = `{"error":{"message":"x","type":"invalid_request_error","param":null,"code":null}}`

const modelsList = `{"object":"list","data":[
  {"id":"gpt-4o-mini","object":"model","created":1686935002,"owned_by":"openai"},
  {"id":"llama-3.1-8b","object":"model","created":1721172741,"owned_by":"switchyard"}
]}`

const embeddingsResponse = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`

const completionResponse = `{"id":"cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7","object":"text_completion","created":1589478378,"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_44709d6fcb","choices":[{"text":"\n\nThis is indeed a test","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`

func TestValidateConforming(t *testing.T) {
	s := spec(t)
	tests := []struct {
		name   string
		schema string
		body   string
	}{
		{"chat response", "CreateChatCompletionResponse", chatResponse},
		{"stream chunk with null finish_reason and usage", "CreateChatCompletionStreamResponse", streamChunk},
		{"stream finish chunk", "CreateChatCompletionStreamResponse", streamFinishChunk},
		{"stream usage chunk with no choices", "CreateChatCompletionStreamResponse", streamUsageChunk},
		{"error body", "ErrorResponse", errorBody},
		{"models list", "ListModelsResponse", modelsList},
		{"empty models list", "ListModelsResponse", `{"object":"list","data":[]}`},
		{"embeddings float", "CreateEmbeddingResponse", embeddingsResponse},
		{"completion response", "CreateCompletionResponse", completionResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Validate(tt.schema, []byte(tt.body)); err != nil {
				t.Errorf("Validate(%s): %v", tt.schema, err)
			}
		})
	}
}

func TestValidateMismatch(t *testing.T) {
	s := spec(t)
	tests := []struct {
		name     string
		schema   string
		body     string
		wantPath string // a failing path the error must list
	}{
		{"chat response missing id", "CreateChatCompletionResponse",
			strings.Replace(chatResponse, `"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",`, "", 1), "(root)"},
		{"chat response wrong object", "CreateChatCompletionResponse",
			strings.Replace(chatResponse, `"chat.completion"`, `"chat.completion.chunk"`, 1), "/object"},
		{"stream chunk bad finish_reason", "CreateChatCompletionStreamResponse",
			strings.Replace(streamChunk, `"finish_reason":null`, `"finish_reason":"done"`, 1), "/choices/0/finish_reason"},
		{"stream chunk string usage", "CreateChatCompletionStreamResponse",
			strings.Replace(streamChunk, `"usage":null`, `"usage":"none"`, 1), "/usage"},
		{"error body missing type", "ErrorResponse", `{"error":{"message":"x","param":null,"code":null}}`, "/error"},
		{"embedding as base64 string", "CreateEmbeddingResponse",
			strings.Replace(embeddingsResponse, `[0.0023064255,-0.009327292,-0.0028842222]`, `"AAAA"`, 1), "/data/0/embedding"},
		{"model without owned_by", "ListModelsResponse", `{"object":"list","data":[{"id":"m","object":"model","created":1}]}`, "/data/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(tt.schema, []byte(tt.body))
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Validate(%s) = %v, want a *MismatchError", tt.schema, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.schema) || !strings.Contains(msg, "at "+tt.wantPath+":") {
				t.Errorf("error does not name schema %s and path %s:\n%s", tt.schema, tt.wantPath, msg)
			}
		})
	}
}

func TestValidateMissingIDNamesField(t *testing.T) {
	s := spec(t)
	body := strings.Replace(chatResponse, `"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",`, "", 1)
	err := s.Validate("CreateChatCompletionResponse", []byte(body))
	if err == nil || !strings.Contains(err.Error(), "'id'") {
		t.Fatalf("Validate = %v, want an error naming the missing property 'id'", err)
	}
}

func TestValidateBadInput(t *testing.T) {
	s := spec(t)
	tests := []struct {
		name   string
		schema string
		body   string
		want   string
	}{
		{"unknown schema", "NoSuchSchema", `{}`, "not in components.schemas"},
		{"pointer instead of name", "#/components/schemas/ErrorResponse", `{}`, "invalid schema name"},
		{"empty name", "", `{}`, "invalid schema name"},
		{"not JSON", "ErrorResponse", `{"error":`, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(tt.schema, []byte(tt.body))
			var me *MismatchError
			if err == nil || errors.As(err, &me) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want a non-mismatch error containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateConcurrent(t *testing.T) {
	s := spec(t)
	done := make(chan error)
	for range 4 {
		go func() {
			done <- s.Validate("CreateChatCompletionStreamResponse", []byte(streamChunk))
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestLoadIsCached(t *testing.T) {
	a, errA := Load()
	b, errB := Load()
	if a != b || errA != errB {
		t.Fatalf("Load returned different results: (%p, %v) then (%p, %v)", a, errA, b, errB)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(t.TempDir() + "/openapi.json")
	if !errors.Is(err, ErrNoSpec) {
		t.Fatalf("LoadFile(missing) = %v, want ErrNoSpec", err)
	}
}

func TestCheck(t *testing.T) {
	spec(t)
	Check(t, "CreateChatCompletionStreamResponse", []byte(streamUsageChunk))

	rec := &recordingTB{TB: t}
	Check(rec, "ErrorResponse", []byte(`{"error":{}}`))
	if !strings.Contains(rec.errors, `body: {"error":{}}`) || !strings.Contains(rec.errors, "ErrorResponse") {
		t.Errorf("Check on a mismatch reported %q, want the schema and the body", rec.errors)
	}
}

// recordingTB captures Errorf instead of failing the test.
type recordingTB struct {
	testing.TB
	errors string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors += fmt.Sprintf(format, args...)
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestAllComponentsCompile compiles every component schema of the real
// specification, so a new dialect leftover in an updated spec shows up here
// rather than in some integration test. It takes a few seconds.
func TestAllComponentsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiling all components is slow; skipped in -short mode")
	}
	s := spec(t)
	for name := range s.names {
		if _, err := s.schema(name); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestMissingSpec runs helperMissingSpec in a child test binary with the
// specification pointed at a file that does not exist, with and without
// EnvRequireSpec, and checks how the tests end.
func TestMissingSpec(t *testing.T) {
	if os.Getenv("SPECTEST_HELPER") != "" {
		t.Skip("in the child process")
	}
	missing := filepath.Join(t.TempDir(), "openapi.json")
	tests := []struct {
		name    string
		helper  string
		require string
		fail    bool
		want    []string
		notWant []string
	}{
		{"Check skips at the end", "Check", "", false,
			[]string{"--- SKIP: TestHelperMissingSpec", "the rest of the test ran", "the OpenAPI conformance checks were skipped", missing}, nil},
		{"Check fails when required", "Check", "1", true,
			[]string{"--- FAIL: TestHelperMissingSpec", "SWITCHYARD_REQUIRE_SPEC is set", missing}, []string{"the rest of the test ran"}},
		{"Check fails when required (true)", "Check", "TRUE", true,
			[]string{"--- FAIL: TestHelperMissingSpec", "SWITCHYARD_REQUIRE_SPEC is set"}, nil},
		{"Check still fails a failing test", "CheckThenFail", "", true,
			[]string{"--- FAIL: TestHelperMissingSpec", "the test failed on its own"}, []string{"conformance checks were skipped"}},
		{"Need skips", "Need", "0", false,
			[]string{"--- SKIP: TestHelperMissingSpec", "skipping: " + ErrNoSpec.Error()}, []string{"the rest of the test ran"}},
		{"Need fails when required", "Need", "yes", true,
			[]string{"--- FAIL: TestHelperMissingSpec", "SWITCHYARD_REQUIRE_SPEC is set"}, []string{"the rest of the test ran"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissingSpec$", "-test.v")
			cmd.Env = append(os.Environ(), "SPECTEST_HELPER="+tc.helper, EnvSpecPath+"="+missing, EnvRequireSpec+"="+tc.require)
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

// TestHelperMissingSpec is run by TestMissingSpec in a child process; on
// its own it does nothing.
func TestHelperMissingSpec(t *testing.T) {
	switch os.Getenv("SPECTEST_HELPER") {
	case "Check":
		Check(t, "ErrorResponse", []byte(`{}`))
		Check(t, "ErrorResponse", []byte(`{}`)) // one skip, however many checks
		t.Log("the rest of the test ran")
	case "CheckThenFail":
		Check(t, "ErrorResponse", []byte(`{}`))
		t.Error("the test failed on its own")
	case "Need":
		Need(t)
		t.Log("the rest of the test ran")
	}
}
