package httpname

import "testing"

func TestNames(t *testing.T) {
	tests := []struct {
		name, canonical, err string // canonical "" = invalid
	}{
		{"x-team", "X-Team", ""},
		{"X-TEAM", "X-Team", ""},
		{"content-length", "Content-Length", ""},
		{"a", "A", ""},
		{"x_under.dot~!#$%&'*+^`|", "X_under.dot~!#$%&'*+^`|", ""},
		{"x-1-b", "X-1-B", ""},
		{"", "", "empty header name"},
		{"x team", "", `invalid header name "x team": character ' ' is not allowed`},
		{"x:y", "", `invalid header name "x:y": character ':' is not allowed`},
		{"x\r\n", "", `invalid header name "x\r\n": character '\r' is not allowed`},
		{"é", "", `invalid header name "é": character 'Ã' is not allowed`},
		{"(x)", "", `invalid header name "(x)": character '(' is not allowed`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Canonical(tc.name); got != tc.canonical {
				t.Errorf("Canonical(%q) = %q, want %q", tc.name, got, tc.canonical)
			}
			err := Check(tc.name)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Check(%q) = %v, want nil", tc.name, err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("Check(%q) = %v, want %s", tc.name, err, tc.err)
			}
			if Valid(tc.name) != (tc.err == "") {
				t.Errorf("Valid(%q) = %v", tc.name, !(tc.err == ""))
			}
		})
	}
}

func BenchmarkCanonical(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Canonical("x-team-name")
	}
}
