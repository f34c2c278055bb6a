package retrieve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// FilterType is the type of a Filter node, as in the OpenAI vector store
// search filter.
type FilterType string

// Comparison types compare an attribute with Value; compound types combine
// Filters.
const (
	Eq  FilterType = "eq"  // attribute equals Value (same kind)
	Ne  FilterType = "ne"  // not Eq: true for a missing attribute
	Gt  FilterType = "gt"  // numbers numerically, strings byte-wise
	Gte FilterType = "gte" // as Gt
	Lt  FilterType = "lt"  // as Gt
	Lte FilterType = "lte" // as Gt
	In  FilterType = "in"  // attribute equals one element of Value, an array
	Nin FilterType = "nin" // not In: true for a missing attribute
	And FilterType = "and" // every one of Filters
	Or  FilterType = "or"  // at least one of Filters
)

// Limits of a filter, so that a request cannot make a search arbitrarily
// slow.
const (
	maxFilterDepth = 16
	maxFilterNodes = 256
	maxFilterList  = 1024
)

// Filter is a condition on a chunk's attributes (its document's metadata,
// and for JSON Lines its record's): a comparison {type, key, value} or a
// compound {type: and|or, filters}. Value is a string, a float64 or a bool;
// for In and Nin a []any of those. A comparison whose kinds differ (a
// number against a string attribute) or whose attribute is missing is
// false, so Ne and Nin, its negations, are true. Build one with ParseFilter
// or by hand and check it with Validate; Search validates it too.
type Filter struct {
	Type    FilterType `json:"type"`
	Key     string     `json:"key,omitempty"`
	Value   any        `json:"value,omitempty"`
	Filters []Filter   `json:"filters,omitempty"`
}

// FilterError is a filter that does not parse or validate; Path is where,
// as in "filters[1].value".
type FilterError struct {
	Path string
	Msg  string
}

func (e *FilterError) Error() string {
	if e.Path == "" {
		return "retrieve: filter: " + e.Msg
	}
	return "retrieve: filter: " + e.Path + ": " + e.Msg
}

func ferr(path, format string, args ...any) error {
	return &FilterError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// ParseFilter parses the JSON of a filter strictly: unknown or repeated
// fields, a missing or unknown type, fields of the wrong node kind (key on
// "and"), values of the wrong kind, null, trailing data, more than 16
// levels or 256 nodes are errors, each a *FilterError naming where.
func ParseFilter(data []byte) (*Filter, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	p := parser{dec: dec}
	f, err := p.filter("", 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, ferr("", "trailing data after the filter")
	}
	return f, nil
}

// UnmarshalJSON parses with ParseFilter, so a Filter in a request body is
// as strict.
func (f *Filter) UnmarshalJSON(data []byte) error {
	g, err := ParseFilter(data)
	if err != nil {
		return err
	}
	*f = *g
	return nil
}

type parser struct {
	dec   *json.Decoder
	nodes int
}

func (p *parser) token(path string) (json.Token, error) {
	t, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ferr(path, "unexpected end of input")
		}
		return nil, ferr(path, "invalid JSON: %v", err)
	}
	return t, nil
}

func (p *parser) filter(path string, depth int) (*Filter, error) {
	if depth > maxFilterDepth {
		return nil, ferr(path, "nested deeper than %d levels", maxFilterDepth)
	}
	if p.nodes++; p.nodes > maxFilterNodes {
		return nil, ferr(path, "more than %d filter nodes", maxFilterNodes)
	}
	t, err := p.token(path)
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, ferr(path, "must be an object, got %s", describe(t))
	}
	f := new(Filter)
	seen := map[string]bool{}
	for p.dec.More() {
		kt, err := p.token(path)
		if err != nil {
			return nil, err
		}
		k, _ := kt.(string)
		fp := join(path, k)
		if seen[k] {
			return nil, ferr(fp, "repeated field")
		}
		seen[k] = true
		switch k {
		case "type":
			t, err := p.token(fp)
			if err != nil {
				return nil, err
			}
			s, ok := t.(string)
			if !ok {
				return nil, ferr(fp, "must be a string, got %s", describe(t))
			}
			f.Type = FilterType(s)
		case "key":
			t, err := p.token(fp)
			if err != nil {
				return nil, err
			}
			s, ok := t.(string)
			if !ok {
				return nil, ferr(fp, "must be a string, got %s", describe(t))
			}
			f.Key = s
		case "value":
			if f.Value, err = p.value(fp); err != nil {
				return nil, err
			}
		case "filters":
			t, err := p.token(fp)
			if err != nil {
				return nil, err
			}
			if d, ok := t.(json.Delim); !ok || d != '[' {
				return nil, ferr(fp, "must be an array of filters, got %s", describe(t))
			}
			f.Filters = []Filter{}
			for i := 0; p.dec.More(); i++ {
				g, err := p.filter(fmt.Sprintf("%s[%d]", fp, i), depth+1)
				if err != nil {
					return nil, err
				}
				f.Filters = append(f.Filters, *g)
			}
			if _, err := p.token(fp); err != nil { // ']'
				return nil, err
			}
		default:
			return nil, ferr(fp, "unknown field (want type, key, value or filters)")
		}
	}
	if _, err := p.token(path); err != nil { // '}'
		return nil, err
	}
	if err := f.check(path, seen, false); err != nil {
		return nil, err
	}
	return f, nil
}

// value reads a comparison value: a scalar or an array of scalars.
func (p *parser) value(path string) (any, error) {
	t, err := p.token(path)
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); ok && d == '[' {
		list := []any{}
		for i := 0; p.dec.More(); i++ {
			ep := fmt.Sprintf("%s[%d]", path, i)
			if i >= maxFilterList {
				return nil, ferr(path, "more than %d elements", maxFilterList)
			}
			t, err := p.token(ep)
			if err != nil {
				return nil, err
			}
			if !isScalar(t) {
				return nil, ferr(ep, "must be a string, number or boolean, got %s", describe(t))
			}
			list = append(list, t)
		}
		if _, err := p.token(path); err != nil {
			return nil, err
		}
		return list, nil
	}
	if !isScalar(t) {
		return nil, ferr(path, "must be a string, number, boolean or array, got %s", describe(t))
	}
	return t, nil
}

func isScalar(t any) bool {
	switch t.(type) {
	case string, float64, bool:
		return true
	}
	return false
}

func describe(t any) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return strconv.Quote(v.String())
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", t)
}

// Validate checks a filter built by hand as ParseFilter checks JSON.
func (f *Filter) Validate() error {
	n := 0
	return f.validate("", 1, &n)
}

func (f *Filter) validate(path string, depth int, n *int) error {
	if depth > maxFilterDepth {
		return ferr(path, "nested deeper than %d levels", maxFilterDepth)
	}
	if *n++; *n > maxFilterNodes {
		return ferr(path, "more than %d filter nodes", maxFilterNodes)
	}
	seen := map[string]bool{"type": true}
	if f.Key != "" {
		seen["key"] = true
	}
	if f.Value != nil {
		seen["value"] = true
	}
	if f.Filters != nil {
		seen["filters"] = true
	}
	if err := f.check(path, seen, true); err != nil {
		return err
	}
	for i := range f.Filters {
		if err := f.Filters[i].validate(fmt.Sprintf("%s[%d]", join(path, "filters"), i), depth+1, n); err != nil {
			return err
		}
	}
	return nil
}

// check validates one node given the fields present; deep also checks the
// Go types of Value (ParseFilter produces only valid ones).
func (f *Filter) check(path string, seen map[string]bool, deep bool) error {
	tp := join(path, "type")
	switch f.Type {
	case And, Or:
		for _, k := range []string{"key", "value"} {
			if seen[k] {
				return ferr(join(path, k), "not allowed in an %q filter", f.Type)
			}
		}
		if len(f.Filters) == 0 {
			return ferr(join(path, "filters"), "an %q filter needs at least one filter", f.Type)
		}
		return nil
	case Eq, Ne, Gt, Gte, Lt, Lte, In, Nin:
	case "":
		if !seen["type"] {
			return ferr(tp, "missing")
		}
		fallthrough
	default:
		return ferr(tp, "unknown type %q (want eq, ne, gt, gte, lt, lte, in, nin, and or or)", f.Type)
	}
	if seen["filters"] {
		return ferr(join(path, "filters"), "not allowed in a %q comparison", f.Type)
	}
	if f.Key == "" {
		return ferr(join(path, "key"), "a %q comparison needs a non-empty key", f.Type)
	}
	vp := join(path, "value")
	if !seen["value"] || f.Value == nil {
		return ferr(vp, "a %q comparison needs a value", f.Type)
	}
	if deep {
		if l, ok := f.Value.([]any); ok {
			if len(l) > maxFilterList {
				return ferr(vp, "more than %d elements", maxFilterList)
			}
			for i, x := range l {
				if !validScalar(x) {
					return ferr(fmt.Sprintf("%s[%d]", vp, i), "must be a string, finite float64 or bool, got %T", x)
				}
			}
		} else if !validScalar(f.Value) {
			return ferr(vp, "must be a string, finite float64, bool or []any, got %T", f.Value)
		}
	}
	_, isList := f.Value.([]any)
	switch f.Type {
	case In, Nin:
		if !isList {
			return ferr(vp, "for %q must be an array", f.Type)
		}
	case Eq, Ne:
		if isList {
			return ferr(vp, "for %q must be a string, number or boolean, not an array (use in or nin)", f.Type)
		}
	default:
		switch f.Value.(type) {
		case string, float64:
		default:
			return ferr(vp, "for %q must be a number or a string", f.Type)
		}
	}
	return nil
}

func validScalar(x any) bool {
	switch v := x.(type) {
	case string, bool:
		return true
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	return false
}

// Match reports whether attrs (values string, float64 or bool) satisfy f.
// f must be valid.
func (f *Filter) Match(attrs map[string]any) bool {
	switch f.Type {
	case And:
		for i := range f.Filters {
			if !f.Filters[i].Match(attrs) {
				return false
			}
		}
		return true
	case Or:
		for i := range f.Filters {
			if f.Filters[i].Match(attrs) {
				return true
			}
		}
		return false
	case Ne:
		return !f.compare(Eq, attrs)
	case Nin:
		return !f.compare(In, attrs)
	}
	return f.compare(f.Type, attrs)
}

func (f *Filter) compare(t FilterType, attrs map[string]any) bool {
	a, ok := attrs[f.Key]
	return ok && f.compareValue(t, a)
}

// compareValue is comparison t (Eq, In, Gt, Gte, Lt or Lte) of an
// attribute's value a with f.Value.
func (f *Filter) compareValue(t FilterType, a any) bool {
	if t == In {
		l, _ := f.Value.([]any)
		for _, v := range l {
			if c, ok := order(a, v); ok && c == 0 {
				return true
			}
		}
		return false
	}
	c, ok := order(a, f.Value)
	if !ok {
		return false
	}
	switch t {
	case Eq:
		return c == 0
	case Gt:
		return c > 0
	case Gte:
		return c >= 0
	case Lt:
		return c < 0
	case Lte:
		return c <= 0
	}
	return false
}

// order compares a with b when they are of one kind; booleans only
// compare equal or not (c is 0 or 1).
func order(a, b any) (c int, ok bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case float64:
		y, ok := b.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		if x == y {
			return 0, true
		}
		return 1, false // unordered: only Eq can use it, and it is false
	}
	return 0, false
}
