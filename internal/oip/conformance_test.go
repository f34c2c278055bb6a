package oip

import (
	"testing"

	"switchyard/internal/spectest"
)

// TestBodiesConform checks the bodies this package writes against the
// schemas of the Open Inference Protocol specification (skipped when the
// specification is absent, unless SWITCHYARD_REQUIRE_SPEC is set).
func TestBodiesConform(t *testing.T) {
	reqs := []*Request{
		mustParse(t, callerBody(0, 2, false, `"a"`)),
		mustParse(t, callerBody(1, 1, true, ``)),
	}
	merged, err := AppendMerged(nil, []byte(`"batch"`), reqs)
	if err != nil {
		t.Fatal(err)
	}
	spectest.CheckOIP(t, "inference_request", merged)
	noID, err := AppendMerged(nil, nil, reqs[:1])
	if err != nil {
		t.Fatal(err)
	}
	spectest.CheckOIP(t, "inference_request", noID)

	var rs Response
	body := `{"model_name":"m","model_version":"2","id":"batch","parameters":{"p":"q"},"outputs":[` +
		`{"name":"y","shape":[3,2],"datatype":"FP32","data":[[1,2],[3,4],[5,6]]},{"name":"t","shape":[3],"datatype":"BYTES","data":["a","b","c"]}]}`
	if err := ParseResponse([]byte(body), &rs); err != nil {
		t.Fatal(err)
	}
	var s Splitter
	if err := s.Prepare(&rs, []byte(`"batch"`), []int64{2, 1}); err != nil {
		t.Fatal(err)
	}
	for i, req := range reqs {
		out, err := s.Append(nil, i, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		spectest.CheckOIP(t, "inference_response", out)
	}
	spectest.CheckOIP(t, "inference_error_response", AppendError(nil, "input \"x\": bad\n"))
}
