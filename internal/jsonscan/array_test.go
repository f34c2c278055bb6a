package jsonscan

import (
	"fmt"
	"testing"
)

func TestElements(t *testing.T) {
	tests := []struct {
		in   string
		want string // the elements, or "error"
	}{
		{`[]`, `[]`},
		{` [ ] `, `[]`},
		{`["a", "b,c"]`, `["a" "b,c"]`},
		{`[[1,2],[3]]`, `[[1,2] [3]]`},
		{`[{"x":[1]}, null, true, -1.5e3]`, `[{"x":[1]} null true -1.5e3]`},
		{`[1,]`, "error"},
		{`[1 2]`, "error"},
		{`[1`, "error"},
		{`"a"`, "error"},
		{`[1] x`, "error"},
		{``, "error"},
	}
	for _, tc := range tests {
		var got []string
		_, err := Elements([]byte(tc.in), func(e []byte) bool { got = append(got, string(e)); return true })
		s := fmt.Sprintf("%v", got)
		if got == nil {
			s = "[]"
		}
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("Elements(%q) = %s (%v), want %s", tc.in, s, err, tc.want)
		}
	}
}

func FuzzElements(f *testing.F) {
	for _, s := range []string{`[]`, `["a",1,[2],{"b":3}]`, `[1,`, `[[[[1]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		n, err := Elements(b, func(e []byte) bool { total += len(e); return true })
		if err == nil && total > len(b) {
			t.Fatalf("%d elements of %d bytes in %d", n, total, len(b))
		}
	})
}
