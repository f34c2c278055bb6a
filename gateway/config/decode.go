package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the nodes one decode visits, aliases expanded, so that an
// alias bomb ("billion laughs") fails fast instead of eating memory.
const maxNodes = 250_000

// YAML short tags.
const (
	tagNull  = "!!null"
	tagBool  = "!!bool"
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagMerge = "!!merge"
)

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data into a node tree; it returns nil, true for an empty
// document and false when the YAML is malformed.
func parseYAML(data []byte, errs *errorList) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		addYAMLError(errs, err)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		addYAMLError(errs, err)
		return nil, false
	default:
		errs.add(pos{next.Line, next.Column}, "", "a config file holds one YAML document; found another after \"---\"")
		return nil, false
	}
	if !checkAliasCycles(&root, errs) {
		return nil, false
	}
	return &root, true
}

// checkAliasCycles reports aliases that point into their own enclosing
// node ("&a {<<: *a}"), which yaml.v3 parses but no value can hold.
func checkAliasCycles(root *yaml.Node, errs *errorList) bool {
	ok := true
	open := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			if n.Alias != nil && open[n.Alias] {
				errs.add(pos{n.Line, n.Column}, "", fmt.Sprintf("alias *%s refers to a value that contains it", n.Value))
				ok = false
			}
			return
		}
		if len(n.Content) == 0 {
			return
		}
		open[n] = true
		for _, c := range n.Content {
			walk(c)
		}
		delete(open, n)
	}
	walk(root)
	return ok
}

func addYAMLError(errs *errorList, err error) {
	msg := err.Error()
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		errs.add(pos{line: line}, "", "invalid YAML: "+m[2])
		return
	}
	errs.add(pos{}, "", "invalid YAML: "+strings.TrimPrefix(msg, "yaml: "))
}

// decoder decodes a yaml.Node tree into Go values strictly, recording every
// problem and carrying on past it.
type decoder struct {
	errs   *errorList
	pos    map[string]pos              // paths seen, with their positions; may be nil
	envErr map[*yaml.Node][]envProblem // ${ENV} problems by node, reported where met
	nodes  int
	// extensions allows top-level keys starting with "x-" (ignored), as
	// places to define anchors; set for the config file itself.
	extensions bool
}

// count charges one node against the budget; it reports the overrun once
// and returns false from then on.
func (d *decoder) count(n *yaml.Node, path string) bool {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(n, path, "document too large: more than %d values (aliases expanded)", maxNodes)
		}
		return false
	}
	return true
}

func valueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs.add(pos{n.Line, n.Column}, path, fmt.Sprintf(format, args...))
}

func (d *decoder) record(path string, n *yaml.Node) {
	// A null value counts as left out, so that defaults apply to it.
	if d.pos != nil && path != "" && !isNull(n) {
		d.pos[path] = pos{n.Line, n.Column}
	}
}

// recordTree records the positions of n and everything under it (for
// option nodes, so that Config.Errorf can place errors inside them).
func (d *decoder) recordTree(n *yaml.Node, path string) {
	if d.pos == nil || !d.count(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		d.record(path, n)
		return
	}
	d.record(path, n)
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.recordTree(c, indexPath(path, i))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.recordTree(n.Content[i+1], joinPath(path, n.Content[i].Value))
		}
	}
}

// envProblems reports the ${ENV} problems of n, if any, and says whether
// there were some.
func (d *decoder) envProblems(n *yaml.Node, path string) bool {
	msgs, ok := d.envErr[n]
	if !ok {
		return false
	}
	for _, p := range msgs {
		d.errs.add(p.pos, path, p.msg)
	}
	delete(d.envErr, n)
	return true
}

// envProblemsTree reports the ${ENV} problems anywhere under n (for option
// nodes kept raw for a later DecodeStrict).
func (d *decoder) envProblemsTree(n *yaml.Node, path string) {
	if len(d.envErr) == 0 || n == nil {
		return
	}
	d.envProblems(n, path)
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			d.envProblemsTree(c, path)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.envProblemsTree(c, indexPath(path, i))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			d.envProblems(k, path)
			d.envProblemsTree(n.Content[i+1], joinPath(path, k.Value))
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// describe names what n is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch n.ShortTag() {
		case tagNull:
			return "null"
		case tagStr:
			return strconv.Quote(v)
		case tagBool:
			return "boolean " + v
		case tagInt, tagFloat:
			return "number " + v
		}
		return v
	}
	return "nothing"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull
}

var (
	typeNode       = reflect.TypeFor[yaml.Node]()
	typeDuration   = reflect.TypeFor[Duration]()
	typeSize       = reflect.TypeFor[Size]()
	typeStringList = reflect.TypeFor[StringList]()
	typeStageRef   = reflect.TypeFor[StageRef]()
	typeTimeDur    = reflect.TypeFor[time.Duration]()
	typeUnmarshal  = reflect.TypeFor[yaml.Unmarshaler]()
)

// decode decodes n into v, which must be addressable, reporting problems
// under path.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if !d.count(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		d.record(path, n)
		if n.Alias == nil {
			return
		}
		n = n.Alias
	} else {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return
			}
			n = n.Content[0]
		}
		d.record(path, n)
	}
	if n.Kind == yaml.AliasNode { // alias of an alias cannot happen, but be safe
		return
	}
	if d.envProblems(n, path) {
		return
	}

	switch v.Type() {
	case typeNode:
		d.envProblemsTree(n, path)
		v.Set(reflect.ValueOf(*n))
		return
	case typeDuration, typeTimeDur:
		if isNull(n) {
			v.SetInt(0)
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a duration such as \"30s\", got %s", describe(n))
			return
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	case typeSize:
		if isNull(n) {
			v.SetInt(0)
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a size such as \"4MiB\", got %s", describe(n))
			return
		}
		s, err := ParseSize(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		v.SetInt(int64(s))
		return
	case typeStringList:
		switch {
		case isNull(n):
			v.SetLen(0)
		case n.Kind == yaml.ScalarNode:
			v.Set(reflect.ValueOf(StringList{n.Value}))
		case n.Kind == yaml.SequenceNode:
			l := make(StringList, len(n.Content))
			for i, c := range n.Content {
				d.decode(c, indexPath(path, i), reflect.ValueOf(&l[i]).Elem())
			}
			v.Set(reflect.ValueOf(l))
		default:
			d.fail(n, path, "expected a string or a list of strings, got %s", describe(n))
		}
		return
	case typeStageRef:
		decodeStageRef(d, n, path, v.Addr().Interface().(*StageRef))
		return
	}
	if v.Kind() != reflect.Pointer && v.Addr().Type().Implements(typeUnmarshal) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, path, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Map:
		d.decodeMap(n, path, v)
	case reflect.Slice:
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, indexPath(path, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			d.fail(n, path, "cannot decode into %s", v.Type())
			return
		}
		d.envProblemsTree(n, path)
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		if x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.decodeScalar(n, path, v)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		v.SetZero()
		return
	}
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", kindWant(v.Kind()), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if tag != tagBool || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if tag != tagInt || n.Decode(&i) != nil {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.fail(n, path, "integer %s out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		var i uint64
		if tag != tagInt || n.Decode(&i) != nil {
			d.fail(n, path, "expected a non-negative integer, got %s", describe(n))
			return
		}
		if v.OverflowUint(i) {
			d.fail(n, path, "integer %s out of range", n.Value)
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (tag != tagInt && tag != tagFloat) || n.Decode(&f) != nil {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return
		}
		if v.OverflowFloat(f) {
			d.fail(n, path, "number %s out of range", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "cannot decode into %s", v.Type())
	}
}

func kindWant(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a value"
}

func (d *decoder) decodeMap(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "cannot decode into %s", t)
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) || k.ShortTag() == tagMerge {
			d.fail(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if d.envProblems(k, kp) {
			continue
		}
		if seen[k.Value] {
			d.fail(k, kp, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		e := reflect.New(t.Elem()).Elem()
		d.decode(val, kp, e)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
	}
	v.Set(m)
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return // keep the zero value: defaults fill it in
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	info := structInfoOf(v.Type())
	// Merge keys (<<: *anchor) first, so that explicit keys override them
	// wherever they appear.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != tagMerge {
			continue
		}
		if !d.count(val, path) {
			return
		}
		src := val
		if src.Kind == yaml.AliasNode && src.Alias != nil {
			src = src.Alias
		}
		switch src.Kind {
		case yaml.MappingNode:
			d.decodeStruct(src, path, v)
		case yaml.SequenceNode:
			for _, c := range src.Content {
				if !d.count(c, path) {
					return
				}
				if c.Kind == yaml.AliasNode && c.Alias != nil {
					c = c.Alias
				}
				if c.Kind != yaml.MappingNode {
					d.fail(c, path, "merge (<<) expects a mapping or a list of mappings, got %s", describe(c))
					continue
				}
				d.decodeStruct(c, path, v)
			}
		default:
			d.fail(val, path, "merge (<<) expects a mapping or a list of mappings, got %s", describe(val))
		}
	}
	var seen map[string]bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == tagMerge {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "expected a key name, got %s", describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if d.envProblems(k, kp) {
			continue
		}
		idx, ok := info.fields[k.Value]
		if !ok && d.extensions && path == "" && strings.HasPrefix(k.Value, "x-") {
			continue // an extension key, a home for anchors
		}
		if !ok {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := suggest(k.Value, info.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.fail(k, kp, "%s", msg)
			continue
		}
		if seen == nil {
			seen = make(map[string]bool, len(n.Content)/2)
		}
		if seen[k.Value] {
			d.fail(k, kp, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		d.decode(val, kp, v.FieldByIndex(idx))
	}
}

// structInfo is the decoding view of a struct type: keys to field indexes.
type structInfo struct {
	fields map[string][]int
	names  []string
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string][]int{}}
	addFields(si, t, nil)
	actual, _ := structInfos.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func addFields(si *structInfo, t reflect.Type, prefix []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), prefix...), i)
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			addFields(si, f.Type, idx)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := si.fields[name]; dup {
			continue
		}
		si.fields[name] = idx
		si.names = append(si.names, name)
	}
}

// suggest returns the name closest to key if it is close enough to be a
// likely typo.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD > len(key)/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeStageRef reads one chain entry: a bare kind or {kind: options}.
func decodeStageRef(d *decoder, n *yaml.Node, path string, s *StageRef) {
	*s = StageRef{Line: n.Line, Column: n.Column, Path: path}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() != tagStr || n.Value == "" {
			d.fail(n, path, "expected a stage name, got %s", describe(n))
			return
		}
		s.Kind = n.Value
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			d.fail(n, path, "a stage with options is a map with exactly one key, the stage name (like {retrieval: {collection: kb}}); got %d keys", len(n.Content)/2)
			return
		}
		k, val := n.Content[0], n.Content[1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != tagStr || k.Value == "" {
			d.fail(k, path, "expected a stage name, got %s", describe(k))
			return
		}
		if d.envProblems(k, path) {
			return
		}
		s.Kind = k.Value
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		if isNull(val) {
			return
		}
		d.envProblemsTree(val, s.OptionsPath())
		d.recordTree(val, s.OptionsPath())
		s.Options = *val
	default:
		d.fail(n, path, "expected a stage name or a map {name: options}, got %s", describe(n))
	}
}

// DecodeStrict decodes a stage's options node n into v, a pointer to the
// stage's settings struct, as strictly as the config itself: unknown keys,
// duplicate keys and wrong types are reported, all of them, as *Errors with
// file, line and a path under the prefix path (e.g.
// "routes[0].chain[1].retrieval.top_k"). A nil or zero node leaves v
// unchanged. Fields are matched by their yaml tag, or by the lowercased field
// name; Duration, Size and StringList fields read their usual forms.
func DecodeStrict(file, path string, n *yaml.Node, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config.DecodeStrict: want a non-nil pointer, got %T", v)
	}
	if n == nil || n.Kind == 0 {
		return nil
	}
	errs := &errorList{file: file}
	d := &decoder{errs: errs}
	d.decode(n, path, rv.Elem())
	return errs.err()
}
