// Package headers is the `headers` stage: it adds and removes headers on the
// request sent upstream and on the response sent to the client.
//
//	chain:
//	  - headers:
//	      upstream:
//	        set: {x-team: support, x-api-version: "2"}
//	        remove: [x-debug]
//	      response:
//	        set: {x-served-by: switchyard}
//	        remove: [x-switchyard-backend]
package headers

import (
	"fmt"
	"sort"
	"strings"

	"switchyard/gateway"
	"switchyard/internal/httpname"
)

// Factory registers the stage kind "headers".
var Factory = gateway.Factory{
	Kind: "headers",
	Doc:  "add and remove upstream request and client response headers",
	New:  func() gateway.Stage { return &Stage{} },
}

// Rules are the changes to one side's headers.
type Rules struct {
	// Set adds or replaces headers (name -> value).
	Set map[string]string `yaml:"set"`
	// Remove deletes headers by name.
	Remove []string `yaml:"remove"`

	set []gateway.Header
}

// Stage holds the stage's settings.
type Stage struct {
	// Upstream changes the request sent to the backend.
	Upstream Rules `yaml:"upstream"`
	// Response changes the response sent to the client.
	Response Rules `yaml:"response"`
}

// protected headers would break the proxying or the client's auth if set here.
var protected = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Host": true, "Content-Encoding": true}

func (r *Rules) compile(side string) error {
	keys := make([]string, 0, len(r.Set))
	for k := range r.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkName(k); err != nil {
			return fmt.Errorf("headers.%s.set: %w", side, err)
		}
		if strings.ContainsAny(r.Set[k], "\r\n") {
			return fmt.Errorf("headers.%s.set.%s: value contains a line break", side, k)
		}
		r.set = append(r.set, gateway.Header{Key: httpname.Canonical(k), Value: r.Set[k]})
	}
	for i, k := range r.Remove {
		if err := checkName(k); err != nil {
			return fmt.Errorf("headers.%s.remove[%d]: %w", side, i, err)
		}
		r.Remove[i] = httpname.Canonical(k)
	}
	return nil
}

func checkName(k string) error {
	if err := httpname.Check(k); err != nil {
		return err
	}
	if protected[httpname.Canonical(k)] {
		return fmt.Errorf("header %q is managed by the gateway and cannot be changed", k)
	}
	return nil
}

// Validate checks and precompiles the settings.
func (s *Stage) Validate() error {
	if err := s.Upstream.compile("upstream"); err != nil {
		return err
	}
	return s.Response.compile("response")
}

// Handle records the header changes on the exchange and continues.
func (s *Stage) Handle(x *gateway.Exchange, next gateway.Handler) error {
	x.UpstreamRemoveHeaders = append(x.UpstreamRemoveHeaders, s.Upstream.Remove...)
	x.UpstreamHeaders = append(x.UpstreamHeaders, s.Upstream.set...)
	x.ResponseRemoveHeaders = append(x.ResponseRemoveHeaders, s.Response.Remove...)
	x.ResponseHeaders = append(x.ResponseHeaders, s.Response.set...)
	return next.Handle(x)
}
