package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// redacted replaces a non-empty secret in every printed form.
const redacted = "[redacted]"

// Secret is a credential (an API key, a token). It prints as "[redacted]"
// when non-empty in every form (fmt, YAML, JSON), so that config dumps and
// logs never show it; Value returns the secret itself. Give secrets by
// ${ENV} reference rather than literally in the file.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String returns "[redacted]" for a non-empty secret and "" otherwise.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML returns the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON returns the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText returns the redacted form (used by encoders such as log/slog).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Duration is a time span written as a Go duration string: "250ms", "30s",
// "1m30s", "2h". Zero may be written as 0. Negative durations are rejected.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns the shortest form that ParseDuration reads back: "1m"
// rather than "1m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration reads a duration such as "30s" or "1m30s". A bare 0 is
// allowed; other numbers need a unit, and negative values are rejected.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("invalid duration %q: missing unit (for example %q)", s, s+"s")
		}
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit (ns, us, ms, s, m, h), such as \"30s\" or \"1m30s\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(d), nil
}

// MarshalYAML returns the string form, such as "30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON returns the string form, such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalYAML reads the string form, so that Duration also works with plain
// yaml.v3 decoding.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a duration such as \"30s\"")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Size is a byte count, written as a plain integer of bytes or as an integer
// with a unit: B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of
// 1024), such as "4MiB" or "512KiB". Units are case-insensitive and may be
// separated from the number by a space. Negative sizes are rejected.
type Size int64

var sizeUnits = []struct {
	name string
	mult int64
}{
	// Longest names first so that "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseSize reads a size such as "4MiB", "1MB" or "1024".
func ParseSize(s string) (Size, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty size")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", in)
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with a unit, such as \"4MiB\" or \"512KiB\"", in)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: number too large", in)
	}
	unit := strings.TrimSpace(s[i:])
	if unit == "" {
		return Size(n), nil
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			if n > math.MaxInt64/u.mult {
				return 0, fmt.Errorf("invalid size %q: too large", in)
			}
			return Size(n * u.mult), nil
		}
	}
	return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", in, strings.TrimSpace(s[i:]))
}

// String returns the size with the largest binary unit that divides it
// exactly ("4MiB", "1KiB"), or plain bytes ("1000").
func (s Size) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalYAML returns the String form.
func (s Size) MarshalYAML() (any, error) {
	if int64(s)%1024 == 0 && s != 0 {
		return s.String(), nil
	}
	return int64(s), nil
}

// MarshalJSON returns the number of bytes.
func (s Size) MarshalJSON() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// UnmarshalYAML reads a size, so that Size also works with plain yaml.v3
// decoding.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a size such as \"4MiB\"")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// StringList is one string or a list of strings: model: "gpt-*" and
// model: ["gpt-*", "o1-*"] both decode to a list.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars, so that StringList
// also works with plain yaml.v3 decoding.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return errors.New("expected a string or a list of strings")
}

// StageRef is one entry of a route's chain: either a bare stage kind
// ("ratelimit") or a map with exactly one key, the kind, whose value holds the
// stage's options ({retrieval: {collection: kb}}). This package does not know
// the stage kinds; the gateway's registry checks Kind and decodes Options with
// DecodeStrict (or DecodeOptions).
type StageRef struct {
	// Kind is the stage kind, the registry's name for it.
	Kind string
	// Options is the YAML node of the stage's options; its Kind is 0 when the
	// entry has none (a bare name, or a null value).
	Options yaml.Node
	// Line and Column locate the entry in the file.
	Line, Column int
	// Path is the entry's YAML path, such as "routes[0].chain[1]".
	Path string
}

// OptionsPath is the YAML path of the entry's options, such as
// "routes[0].chain[1].retrieval"; it prefixes errors found in them.
func (s *StageRef) OptionsPath() string {
	if s.Path == "" {
		return s.Kind
	}
	return s.Path + "." + s.Kind
}

// DecodeOptions decodes the entry's options strictly into v, a pointer to the
// stage's settings struct, leaving v unchanged when there are none. Problems
// are returned as *Errors naming file, line and path.
func (s *StageRef) DecodeOptions(file string, v any) error {
	return DecodeStrict(file, s.OptionsPath(), &s.Options, v)
}

// MarshalYAML writes the bare kind, or a one-key map with the options.
// Aliases in the options are expanded, and the values of option keys that
// look like credentials (their name holds key, token, secret, password,
// credential or auth) print as "[redacted]", since this package does not
// know which options are secrets.
func (s StageRef) MarshalYAML() (any, error) {
	if s.Options.Kind == 0 {
		return s.Kind, nil
	}
	budget := maxNodes
	opts := dumpNode(&s.Options, false, &budget)
	if budget < 0 {
		return nil, fmt.Errorf("options of stage %q too large to dump", s.Kind)
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: s.Kind}, opts,
	}}, nil
}

// dumpNode deep-copies n for printing: aliases expanded, anchors dropped,
// and every scalar under a credential-like key redacted.
func dumpNode(n *yaml.Node, secret bool, budget *int) *yaml.Node {
	*budget--
	if *budget < 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return dumpNode(n.Alias, secret, budget)
	}
	c := *n
	c.Anchor = ""
	c.Alias = nil
	if c.Kind == yaml.AliasNode || c.Kind == yaml.DocumentNode && len(c.Content) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	if c.Kind == yaml.ScalarNode {
		if secret && c.ShortTag() != tagNull {
			c.Value, c.Tag, c.Style = redacted, tagStr, 0
		}
		return &c
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		sec := secret
		if n.Kind == yaml.MappingNode {
			if i%2 == 0 {
				sec = false // keys stay readable
			} else {
				sec = secret || secretKey(n.Content[i-1].Value)
			}
		}
		c.Content[i] = dumpNode(k, sec, budget)
	}
	return &c
}

// secretKey says whether an option name looks like it holds a credential.
func secretKey(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"key", "token", "secret", "password", "credential", "auth"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// UnmarshalYAML reads a bare name or a one-key map, so that StageRef also
// works with plain yaml.v3 decoding.
func (s *StageRef) UnmarshalYAML(n *yaml.Node) error {
	var l errorList
	decodeStageRef(&decoder{errs: &l}, n, "", s)
	if len(l.errs) > 0 {
		return errors.New(l.errs[0].Msg)
	}
	return nil
}
