package router

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// globRegexp is the reference: the same language as a regular expression.
func globRegexp(p string) *regexp.Regexp {
	var sb strings.Builder
	sb.WriteString(`(?s)^`)
	for _, r := range p {
		switch r {
		case '*':
			sb.WriteString(`.*`)
		case '?':
			sb.WriteString(`.`)
		default:
			sb.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	sb.WriteString(`$`)
	return regexp.MustCompile(sb.String())
}

func FuzzMatch(f *testing.F) {
	f.Add("gpt-*", "gpt-4o", "x-team", "search*", "search-eu")
	f.Add("*a?b*", "xxaébyy", "X-A", "?", "é")
	f.Add("a*b*c", "abcabc", "h", "*x*", "")
	f.Fuzz(func(t *testing.T, pattern, model, header, hpattern, hvalue string) {
		g, err := compileGlob(pattern)
		if err != nil {
			if pattern != "" && !strings.ContainsAny(pattern, `[]\`) && utf8.ValidString(pattern) {
				t.Fatalf("compileGlob(%q): %v", pattern, err)
			}
			return
		}
		want := globRegexp(pattern).MatchString(model)
		if got := g.match([]byte(model)); got != want {
			t.Fatalf("glob %q match %q = %v; regexp says %v", pattern, model, got, want)
		}
		// The same through a whole route, with a header condition.
		spec := Spec{
			Upstreams: []UpstreamSpec{{Name: "u"}},
			Pools:     []PoolSpec{{Name: "p", Targets: []TargetSpec{{Upstream: "u"}}}},
			Routes: []RouteSpec{
				{Name: "r", Models: []string{pattern}, Headers: map[string]string{header: hpattern}, Pool: "p"},
				{Name: "fallback"},
			},
		}
		r, err := New(spec)
		if err != nil {
			return // invalid header name or pattern: covered by the spec tests
		}
		hv := hvalue
		rt := r.Match(&Request{Model: []byte(model), Header: headers{header: hv}})
		hwant := hv != "" && globRegexp(hpattern).MatchString(hv)
		if (rt.Name == "r") != (want && hwant) {
			t.Fatalf("route match model %q~%q header %q~%q = %s; want model %v header %v",
				model, pattern, hv, hpattern, rt.Name, want, hwant)
		}
	})
}
