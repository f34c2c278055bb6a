package router

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// glob is a compiled shell-style pattern: '*' matches any run of characters
// (none included) and '?' exactly one UTF-8 character. Every other byte
// matches itself, case-sensitively. '[', ']' and '\' are reserved.
type glob struct {
	pattern string
	kind    globKind
	lit     string // the literal part for the fast kinds (the prefix for globAffix)
	suffix  string // for globAffix
	litB    []byte // lit, for bytes.Contains
}

type globKind uint8

const (
	globAny      globKind = iota // "*"
	globExact                    // no wildcard
	globPrefix                   // "lit*"
	globSuffix                   // "*lit"
	globContains                 // "*lit*"
	globAffix                    // "lit*suffix"
	globGeneral                  // anything else
)

func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, fmt.Errorf("empty pattern")
	}
	if i := strings.IndexAny(p, `[]\`); i >= 0 {
		return glob{}, fmt.Errorf("pattern %q: %q is reserved", p, p[i])
	}
	if !utf8.ValidString(p) {
		return glob{}, fmt.Errorf("pattern %q: invalid UTF-8", p)
	}
	g := glob{pattern: p, kind: globGeneral}
	// Collapse runs of '*': they mean the same as one.
	for strings.Contains(p, "**") {
		p = strings.ReplaceAll(p, "**", "*")
	}
	g.pattern = p
	inner := strings.Trim(p, "*")
	switch {
	case p == "*":
		g.kind = globAny
	case strings.Count(p, "*") == 1 && !strings.Contains(p, "?") && p[0] != '*' && p[len(p)-1] != '*':
		star := strings.IndexByte(p, '*')
		g.kind, g.lit, g.suffix = globAffix, p[:star], p[star+1:]
	case strings.ContainsAny(inner, "*?"):
		// general
	case !strings.Contains(p, "*"):
		g.kind, g.lit = globExact, p
	case len(p) >= 2 && p[0] == '*' && p[len(p)-1] == '*':
		g.kind, g.lit = globContains, inner
	case p[0] == '*':
		g.kind, g.lit = globSuffix, inner
	default:
		g.kind, g.lit = globPrefix, inner
	}
	g.litB = []byte(g.lit)
	return g, nil
}

func (g *glob) match(s []byte) bool {
	switch g.kind {
	case globAny:
		return true
	case globExact:
		return string(s) == g.lit
	case globPrefix:
		return len(s) >= len(g.lit) && string(s[:len(g.lit)]) == g.lit
	case globSuffix:
		return len(s) >= len(g.lit) && string(s[len(s)-len(g.lit):]) == g.lit
	case globContains:
		return bytes.Contains(s, g.litB)
	case globAffix:
		return len(s) >= len(g.lit)+len(g.suffix) && string(s[:len(g.lit)]) == g.lit &&
			string(s[len(s)-len(g.suffix):]) == g.suffix
	}
	return matchGlob(g.pattern, s)
}

// matchGlob matches s against p by the classic two-pointer walk: on a
// mismatch it backtracks only to the last '*', letting it absorb one more
// character, which is linear in practice and never exponential.
func matchGlob(p string, s []byte) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, size := utf8.DecodeRune(s[sx:])
					sx += size
					px++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			_, size := utf8.DecodeRune(s[starSx:])
			starSx += size
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// Glob is a compiled model-name pattern: `*` matches any run of characters,
// `?` exactly one. The gateway uses it for per-key model allow-lists.
type Glob struct{ g glob }

// CompileGlob compiles a pattern, with the same rules as route matching.
func CompileGlob(p string) (Glob, error) {
	g, err := compileGlob(p)
	return Glob{g: g}, err
}

// Match reports whether s matches the pattern. It does not allocate.
func (g *Glob) Match(s []byte) bool { return g.g.match(s) }
