package jsonscan

// Fields holds the top-level request fields the gateway acts on. Byte slices
// are views into the scanned body, or into the Fields' own scratch buffer for
// strings that contained JSON escapes; they stay valid while the body does and
// until the next Scan into the same Fields. A Fields is reusable: Scan resets
// it but keeps its scratch buffer, so a pooled Fields scans without
// allocating.
type Fields struct {
	Model        []byte // "model", unescaped
	HasModel     bool
	ModelEscaped bool // Model contained JSON escapes; it then points into the scratch buffer
	Stream       bool // "stream" (null and absent read as false)
	IncludeUsage bool // "stream_options"."include_usage"

	MaxTokens              int64 // "max_tokens"
	HasMaxTokens           bool
	MaxCompletionTokens    int64 // "max_completion_tokens"
	HasMaxCompletionTokens bool

	Temperature    []byte // raw JSON number of "temperature"; nil when absent or null
	HasTemperature bool

	User           []byte // "user", unescaped; nil when absent or null
	Metadata       []byte // raw JSON object of "metadata"; nil when absent or null
	EncodingFormat []byte // embeddings "encoding_format", unescaped; nil when absent or null

	scratch []byte
	spans   [3]span // unescaped strings in scratch: model, user, encoding_format
}

type span struct{ start, end int }

const (
	spanModel = iota
	spanUser
	spanEncoding
)

// Reset clears the fields but keeps the scratch buffer for reuse.
func (f *Fields) Reset() {
	scratch := f.scratch[:0]
	*f = Fields{scratch: scratch}
}

// Scan validates body, which must be a single JSON object, and fills f with
// the fields it knows. Unknown fields are validated and skipped.
//
// A top-level key that occurs more than once is an error (Msg is
// MsgDuplicate, Field the key): the gateway authorizes, routes and caps on
// the fields it reads, and an upstream that took another occurrence of the
// same key would see a request nobody checked.
//
// It returns an *Error naming the byte offset for invalid JSON anywhere in
// the body, else naming the first duplicated top-level key, else naming the
// first known field of the wrong type.
func Scan(body []byte, f *Fields) error {
	f.Reset()
	start := skipWS(body, 0)
	if start >= len(body) {
		return syntaxErr(start, "empty body, expected a JSON object")
	}
	if body[start] != '{' {
		return syntaxErr(start, "request body must be a JSON object")
	}
	it, err := openObject(body, start, 1)
	if err != nil {
		return err
	}
	escaped := [3]bool{}
	var firstTypeErr *Error // reported only once the whole body proved valid JSON
	var dupErr *Error
	var keys keySet
	for {
		m, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if dupErr == nil && keys.add(&m) {
			dupErr = &Error{Offset: m.start, Field: string(unescapedKey(&m)), Msg: MsgDuplicate}
		}
		if err := f.member(body, &m, &escaped); err != nil && firstTypeErr == nil {
			firstTypeErr = err
		}
	}
	if end := skipWS(body, it.i); end != len(body) {
		return syntaxErr(end, "unexpected data after the top-level object")
	}
	if dupErr != nil {
		return dupErr
	}
	if firstTypeErr != nil {
		return firstTypeErr
	}
	// Resolve escaped strings only now: appending to scratch may have moved it.
	if escaped[spanModel] {
		f.Model = f.scratch[f.spans[spanModel].start:f.spans[spanModel].end]
	}
	if escaped[spanUser] {
		f.User = f.scratch[f.spans[spanUser].start:f.spans[spanUser].end]
	}
	if escaped[spanEncoding] {
		f.EncodingFormat = f.scratch[f.spans[spanEncoding].start:f.spans[spanEncoding].end]
	}
	return nil
}

// member applies one top-level member. Its value was validated already.
func (f *Fields) member(body []byte, m *member, escaped *[3]bool) *Error {
	if !m.esc {
		return f.known(body, m.key, m, escaped)
	}
	var tmp [64]byte
	name := appendUnescaped(tmp[:0], m.key)
	if len(name) > len(tmp) {
		return nil // longer than any field we know
	}
	return f.known(body, name, m, escaped)
}

func (f *Fields) known(body, name []byte, m *member, escaped *[3]bool) *Error {
	raw := body[m.valStart:m.valEnd]
	switch string(name) {
	case "model":
		s, esc, ok := f.str(raw, spanModel)
		if !ok || s == nil {
			return typeErr(m.valStart, "model", "must be a string")
		}
		f.Model, f.HasModel, f.ModelEscaped = s, true, esc
		escaped[spanModel] = esc
	case "stream":
		v, ok := boolOrNull(raw)
		if !ok {
			return typeErr(m.valStart, "stream", "must be a boolean")
		}
		f.Stream = v
	case "stream_options":
		f.IncludeUsage = false
		if raw[0] == 'n' {
			return nil
		}
		if raw[0] != '{' {
			return typeErr(m.valStart, "stream_options", "must be an object")
		}
		it, _ := openObject(body, m.valStart, 2)
		for {
			sm, ok, _ := it.next()
			if !ok {
				break
			}
			if sm.keyIs("include_usage") {
				v, ok := boolOrNull(body[sm.valStart:sm.valEnd])
				if !ok {
					return typeErr(sm.valStart, "stream_options.include_usage", "must be a boolean")
				}
				f.IncludeUsage = v
			}
		}
	case "max_tokens":
		n, has, ok := intOrNull(raw)
		if !ok {
			return typeErr(m.valStart, "max_tokens", "must be an integer")
		}
		f.MaxTokens, f.HasMaxTokens = n, has
	case "max_completion_tokens":
		n, has, ok := intOrNull(raw)
		if !ok {
			return typeErr(m.valStart, "max_completion_tokens", "must be an integer")
		}
		f.MaxCompletionTokens, f.HasMaxCompletionTokens = n, has
	case "temperature":
		switch c := raw[0]; {
		case c == 'n':
			f.Temperature, f.HasTemperature = nil, false
		case c == '-' || isDigit(c):
			f.Temperature, f.HasTemperature = raw, true
		default:
			return typeErr(m.valStart, "temperature", "must be a number")
		}
	case "user":
		s, esc, ok := f.str(raw, spanUser)
		if !ok {
			return typeErr(m.valStart, "user", "must be a string")
		}
		f.User = s
		escaped[spanUser] = esc
	case "metadata":
		switch raw[0] {
		case 'n':
			f.Metadata = nil
		case '{':
			f.Metadata = raw
		default:
			return typeErr(m.valStart, "metadata", "must be an object")
		}
	case "encoding_format":
		s, esc, ok := f.str(raw, spanEncoding)
		if !ok {
			return typeErr(m.valStart, "encoding_format", "must be a string")
		}
		f.EncodingFormat = s
		escaped[spanEncoding] = esc
	}
	return nil
}

// str reads a validated string-or-null value. For null it returns nil, ok.
// An escaped string is unescaped into the scratch buffer and recorded in
// spans[which]; the returned slice is then provisional (Scan re-resolves it).
func (f *Fields) str(raw []byte, which int) (s []byte, esc, ok bool) {
	switch raw[0] {
	case 'n':
		return nil, false, true
	case '"':
	default:
		return nil, false, false
	}
	s = raw[1 : len(raw)-1]
	for _, c := range s {
		if c == '\\' {
			start := len(f.scratch)
			f.scratch = appendUnescaped(f.scratch, s)
			f.spans[which] = span{start, len(f.scratch)}
			return f.scratch[start:len(f.scratch):len(f.scratch)], true, true
		}
	}
	if len(s) == 0 {
		s = raw[1:1] // non-nil: present but empty
	}
	return s, false, true
}

func boolOrNull(raw []byte) (v, ok bool) {
	switch raw[0] {
	case 't':
		return true, true
	case 'f', 'n':
		return false, true
	}
	return false, false
}

func intOrNull(raw []byte) (n int64, has, ok bool) {
	if raw[0] == 'n' {
		return 0, false, true
	}
	n, ok = parseInt(raw)
	return n, ok, ok
}

// MetadataView reads string values of a raw metadata object; *MetadataView
// satisfies router.MetadataGetter. Keep one in a pooled per-request struct and
// pass its address, so that routing allocates nothing.
type MetadataView struct {
	Raw []byte // a raw JSON object, such as Fields.Metadata; nil = no metadata
}

// Metadata returns the string value of key, as MetadataValue does.
func (m *MetadataView) Metadata(key string) ([]byte, bool) {
	if m == nil || m.Raw == nil {
		return nil, false
	}
	return MetadataValue(m.Raw, key)
}

// keySet remembers the top-level keys seen by Scan, to find duplicates. The
// first keySetInline keys live in the struct (on the caller's stack); a body
// with more top-level keys than that spills into a map.
type keySet struct {
	n      int
	inline [keySetInline]seenKey
	more   map[string]struct{}
}

const keySetInline = 32

type seenKey struct {
	hash uint64
	key  []byte // raw key, escapes and all
	esc  bool
}

// add records m's key and reports whether an equal key was seen before.
func (s *keySet) add(m *member) bool {
	h := keyHash(m)
	for i := 0; i < s.n && i < keySetInline; i++ {
		k := &s.inline[i]
		if k.hash == h && sameKey(k.key, k.esc, m.key, m.esc) {
			return true
		}
	}
	if s.n < keySetInline {
		s.inline[s.n] = seenKey{hash: h, key: m.key, esc: m.esc}
		s.n++
		return false
	}
	// Slow path: a body with this many top-level keys is rare.
	if s.more == nil {
		s.more = map[string]struct{}{}
	}
	k := string(unescapedKey(m))
	if _, dup := s.more[k]; dup {
		return true
	}
	s.more[k] = struct{}{}
	return false
}

// keyHash is FNV-1a over the unescaped key.
func keyHash(m *member) uint64 {
	var tmp [64]byte
	k := m.key
	if m.esc {
		k = appendUnescaped(tmp[:0], m.key)
	}
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func sameKey(a []byte, aEsc bool, b []byte, bEsc bool) bool {
	if !aEsc && !bEsc {
		return string(a) == string(b)
	}
	var ta, tb [64]byte
	if aEsc {
		a = appendUnescaped(ta[:0], a)
	}
	if bEsc {
		b = appendUnescaped(tb[:0], b)
	}
	return string(a) == string(b)
}

// unescapedKey returns m's key without JSON escapes.
func unescapedKey(m *member) []byte {
	if !m.esc {
		return m.key
	}
	return appendUnescaped(nil, m.key)
}
