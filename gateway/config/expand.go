package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// envProblem is a ${VAR} that could not be expanded.
type envProblem struct {
	pos pos
	msg string
}

// expandTree expands ${VAR} and ${VAR:-default} in every scalar under n
// (keys included) in place, and returns the problems found, by node. It
// works per scalar on the parsed tree, so line numbers stay those of the
// file and an expanded value can never add YAML structure. A plain scalar
// whose value changed is re-typed, so that port: ${PORT} is an integer when
// PORT is one; quoted scalars stay strings.
func expandTree(n *yaml.Node, lookup func(string) (string, bool)) map[*yaml.Node][]envProblem {
	var probs map[*yaml.Node][]envProblem
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode, yaml.MappingNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			if !strings.Contains(n.Value, "$") {
				return
			}
			out, errs := expandString(n.Value, lookup)
			for _, e := range errs {
				if probs == nil {
					probs = map[*yaml.Node][]envProblem{}
				}
				probs[n] = append(probs[n], envProblem{scalarPos(n, e.offset), e.msg})
			}
			if out == n.Value {
				return
			}
			n.Value = out
			if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = ""
				n.Tag = n.ShortTag()
			}
		}
	}
	walk(n)
	return probs
}

// scalarPos is the position of byte off of n's value, where the source
// layout lets it be known exactly, and n's position otherwise.
func scalarPos(n *yaml.Node, off int) pos {
	p := pos{n.Line, n.Column}
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 &&
		!strings.Contains(n.Value, "\n"):
		p.col += off
	case n.Style&yaml.LiteralStyle != 0:
		// The value starts on the line after the "|" indicator.
		p = pos{line: n.Line + 1 + strings.Count(n.Value[:off], "\n")}
	}
	return p
}

type expandErr struct {
	offset int
	msg    string
}

// expandString expands ${VAR} and ${VAR:-default} in s; $$ is a literal $,
// and a $ not followed by { or $ is kept as is. ${VAR} with VAR unset is an
// error; ${VAR:-default} gives default when VAR is unset or empty.
func expandString(s string, lookup func(string) (string, bool)) (string, []expandErr) {
	var b strings.Builder
	var errs []expandErr
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
		default:
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			errs = append(errs, expandErr{i, fmt.Sprintf("unterminated ${ in %q (write $$ for a literal $)", clip(s[i:]))})
			b.WriteString(s[i:])
			break
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		switch val, ok := lookup(name); {
		case !validEnvName(name):
			errs = append(errs, expandErr{i, fmt.Sprintf("invalid variable name %q in ${%s} (write $$ for a literal $)", name, clip(expr))})
		case hasDef && (!ok || val == ""):
			b.WriteString(def)
		case !ok:
			errs = append(errs, expandErr{i, fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)})
		default:
			b.WriteString(val)
		}
		i += 2 + end + 1
	}
	return b.String(), errs
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
