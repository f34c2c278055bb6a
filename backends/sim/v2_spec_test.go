package sim

import (
	"strings"
	"testing"

	"switchyard/internal/spectest"
)

// TestV2Conformance checks the simulator's KServe v2 bodies against the
// Open Inference Protocol's OpenAPI document: server and model metadata, an
// inference response, and errors.
func TestV2Conformance(t *testing.T) {
	spectest.NeedOIP(t)
	_, url := v2Server(t, nil)
	infer := `{"id":"a","inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8]}]}`
	for _, c := range []struct {
		method, path, body, schema string
		status                     int
	}{
		{"GET", "/v2", "", "metadata_server_response", 200},
		{"GET", "/v2/models/clf", "", "metadata_model_response", 200},
		{"GET", "/v2/models/nope", "", "metadata_model_error_response", 404},
		{"POST", "/v2/models/clf/infer", infer, "inference_response", 200},
		{"POST", "/v2/models/clf/infer", `{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"data":[1]}]}`, "inference_error_response", 400},
		{"POST", "/v2/models/clf/infer", strings.Replace(infer, "[2,4]", "[65,4]", 1), "inference_error_response", 400},
	} {
		r := request(t, c.method, url+c.path, c.body)
		body := readBody(t, r)
		if r.StatusCode != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.StatusCode, body)
		}
		spectest.CheckOIP(t, c.schema, body)
		// The request itself is a valid inference_request.
		if c.schema == "inference_response" {
			spectest.CheckOIP(t, "inference_request", []byte(c.body))
		}
	}
}
