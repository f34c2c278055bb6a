// Package httpname checks and canonicalizes HTTP header field names: the
// one implementation the router, the config package and the stages share.
package httpname

import "fmt"

// tchar marks the bytes of an RFC 9110 token: letters, digits and
// !#$%&'*+-.^_`|~.
var tchar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// Check returns nil when name is a header field name (a non-empty RFC 9110
// token), or an error saying what is wrong with it.
func Check(name string) error {
	if name == "" {
		return fmt.Errorf("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !tchar[name[i]] {
			return fmt.Errorf("invalid header name %q: character %q is not allowed", name, name[i])
		}
	}
	return nil
}

// Valid reports whether name is a header field name.
func Valid(name string) bool { return Check(name) == nil }

// Canonical returns name in canonical form ("x-team" -> "X-Team": upper
// case at the start and after each '-', lower case elsewhere), or "" when
// it is not a header field name.
func Canonical(name string) string {
	if !Valid(name) {
		return ""
	}
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}
