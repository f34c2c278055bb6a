package headers

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"switchyard/gateway"
	"switchyard/gateway/config"
)

func decode(t *testing.T, opts string) (*Stage, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(opts), &n); err != nil {
		t.Fatal(err)
	}
	s := Factory.New().(*Stage)
	if err := config.DecodeStrict("t.yaml", "headers", n.Content[0], s); err != nil {
		return nil, err
	}
	return s, s.Validate()
}

func TestHeaders(t *testing.T) {
	s, err := decode(t, `{upstream: {set: {x-team: support, x-b: "2"}, remove: [x-debug]}, response: {set: {x-served-by: sy}, remove: [x-switchyard-backend]}}`)
	if err != nil {
		t.Fatal(err)
	}
	x, err := gateway.NewExchange(gateway.OpChat, []byte(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(x, gateway.HandlerFunc(func(*gateway.Exchange) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if want := []gateway.Header{{Key: "X-B", Value: "2"}, {Key: "X-Team", Value: "support"}}; !reflect.DeepEqual(x.UpstreamHeaders, want) {
		t.Errorf("upstream headers = %v, want %v", x.UpstreamHeaders, want)
	}
	if want := []string{"X-Debug"}; !reflect.DeepEqual(x.UpstreamRemoveHeaders, want) {
		t.Errorf("upstream removes = %v", x.UpstreamRemoveHeaders)
	}
	if want := []gateway.Header{{Key: "X-Served-By", Value: "sy"}}; !reflect.DeepEqual(x.ResponseHeaders, want) {
		t.Errorf("response headers = %v", x.ResponseHeaders)
	}
	if want := []string{"X-Switchyard-Backend"}; !reflect.DeepEqual(x.ResponseRemoveHeaders, want) {
		t.Errorf("response removes = %v", x.ResponseRemoveHeaders)
	}
}

func TestHeadersRejects(t *testing.T) {
	for _, opts := range []string{
		`{upstream: {set: {"bad name": x}}}`,
		`{upstream: {set: {x-a: "a\nb"}}}`,
		`{response: {remove: [content-length]}}`,
		`{upstream: {set: {host: evil}}}`,
		`{upstream: {set: {"": x}}}`,
	} {
		if _, err := decode(t, opts); err == nil {
			t.Errorf("%s: accepted", opts)
		}
	}
	if _, err := decode(t, `{upstream: {sett: {}}}`); err == nil {
		t.Error("unknown key accepted")
	}
}
