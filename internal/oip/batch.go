package oip

import (
	"encoding/binary"
	"strconv"

	"switchyard/internal/jsonscan"
)

// BatchSize returns the batch size of r: the first dimension of its inputs,
// which must all agree on it. An input of rank 0 has no batch dimension and is
// an error.
func (r *Request) BatchSize() (int64, error) {
	if len(r.Inputs) == 0 {
		return 0, errorf(0, "the request has no inputs")
	}
	var n int64
	for i := range r.Inputs {
		t := &r.Inputs[i]
		if len(t.Shape) == 0 {
			return 0, errorf(0, "input "+strconv.Quote(string(t.Name))+" has no dimensions (shape []), so it cannot be batched")
		}
		if i == 0 {
			n = t.Shape[0]
		} else if t.Shape[0] != n {
			return 0, errorf(0, "the inputs disagree on the batch size (the first dimension): input "+
				strconv.Quote(string(r.Inputs[0].Name))+" has "+strconv.FormatInt(n, 10)+", input "+
				strconv.Quote(string(t.Name))+" has "+strconv.FormatInt(t.Shape[0], 10))
		}
	}
	return n, nil
}

// batchKeyVersion starts every batch key, so keys of another layout never
// compare equal.
const batchKeyVersion = 1

// AppendBatchKey appends to dst a key that is equal for two requests exactly
// when AppendMerged may merge them: the same inputs, by name, in the same
// order, with the same datatypes, ranks and dimensions after the first; the
// same per-input "parameters"; the same request "parameters" and "outputs";
// and the same unknown top-level members in the same order. JSON values are
// compared after removing the whitespace between their tokens; key order,
// escapes and the spelling of numbers still count (`{"a":1}` and `{"a":1.0}`
// differ). Absent and empty ({} or []) differ too. "id" and the batch size do
// not count.
//
// The key is binary (not text) and covers the body only: prefix it with the
// model and version of the URL path.
func AppendBatchKey(dst []byte, r *Request) []byte {
	dst = append(dst, batchKeyVersion)
	dst = binary.AppendUvarint(dst, uint64(len(r.Inputs)))
	for i := range r.Inputs {
		t := &r.Inputs[i]
		dst = binary.AppendUvarint(dst, uint64(len(t.Name)))
		dst = append(dst, t.Name...)
		dst = append(dst, byte(t.Datatype))
		dst = binary.AppendUvarint(dst, uint64(len(t.Shape)))
		if len(t.Shape) > 0 {
			for _, d := range t.Shape[1:] {
				dst = binary.AppendUvarint(dst, uint64(d))
			}
		}
		dst = appendKeyJSON(dst, t.Parameters)
	}
	dst = appendKeyJSON(dst, r.Parameters)
	dst = appendKeyJSON(dst, r.Outputs)
	dst = binary.AppendUvarint(dst, uint64(len(r.extra)))
	for _, m := range r.extra {
		dst = appendCompact(dst, m) // "key":value, self-delimiting
	}
	return dst
}

// appendKeyJSON appends an optional JSON value to a batch key: 0 when
// absent, else 1 and the compact value, which delimits itself.
func appendKeyJSON(dst, v []byte) []byte {
	if v == nil {
		return append(dst, 0)
	}
	return appendCompact(append(dst, 1), v)
}

func equalOptJSON(a, b []byte) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return equalCompact(a, b)
}

// incompatible says why b may not share a batch with a, or "" when it may;
// it compares what AppendBatchKey covers.
func incompatible(a, b *Request) string {
	if len(a.Inputs) != len(b.Inputs) {
		return "it has " + strconv.Itoa(len(b.Inputs)) + " inputs, not " + strconv.Itoa(len(a.Inputs))
	}
	for k := range a.Inputs {
		ta, tb := &a.Inputs[k], &b.Inputs[k]
		where := "input " + strconv.Itoa(k) + " "
		switch {
		case string(ta.Name) != string(tb.Name):
			return where + "is named " + strconv.Quote(string(tb.Name)) + ", not " + strconv.Quote(string(ta.Name))
		case ta.Datatype != tb.Datatype:
			return where + "has datatype " + tb.Datatype.String() + ", not " + ta.Datatype.String()
		case !sameRowShape(ta.Shape, tb.Shape):
			return where + "has shape " + formatShape(tb.Shape) + ", which differs from " + formatShape(ta.Shape) + " beyond the first dimension"
		case !equalOptJSON(ta.Parameters, tb.Parameters):
			return where + "has other parameters"
		}
	}
	switch {
	case !equalOptJSON(a.Parameters, b.Parameters):
		return "its parameters differ"
	case !equalOptJSON(a.Outputs, b.Outputs):
		return "its outputs differ"
	case len(a.extra) != len(b.extra):
		return "its unknown top-level keys differ"
	}
	for k := range a.extra {
		if !equalCompact(a.extra[k], b.extra[k]) {
			return "its unknown top-level keys differ"
		}
	}
	return ""
}

// sameRowShape reports whether a and b have the same rank and agree after
// the first dimension.
func sameRowShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 1; i < len(a); i++ {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// AppendMerged appends to dst one request body that batches reqs: each input
// is the concatenation, in the order of reqs, of that input of every request
// along the first dimension, with flat data. Everything else ("parameters",
// "outputs", unknown top-level members, per-input parameters) is taken from
// reqs[0]; unknown keys inside inputs are dropped. id, a JSON string with its
// quotes like Request.ID, becomes the "id" of the merged request; it is left
// out when id is empty.
//
// It fails, appending nothing, unless every request has a batch size (see
// BatchSize) and would have the batch key of reqs[0] (see AppendBatchKey),
// and the merged tensors stay within MaxElements. The batch size of request i
// is how many rows of each output a Splitter gives back to it.
func AppendMerged(dst, id []byte, reqs []*Request) ([]byte, error) {
	if len(reqs) == 0 {
		return dst, errorf(0, "no requests to merge")
	}
	if len(id) > 0 && !isString(id) {
		return dst, errorf(0, "the id of a merged request must be a JSON string, quotes included")
	}
	first := reqs[0]
	var total int64
	for k, r := range reqs {
		n, err := r.BatchSize()
		if err != nil {
			return dst, errorf(0, "request "+strconv.Itoa(k)+": "+err.Error())
		}
		if k > 0 {
			if why := incompatible(first, r); why != "" {
				return dst, errorf(0, "request "+strconv.Itoa(k)+" cannot share a batch with request 0: "+why)
			}
		}
		if total += n; total > MaxElements {
			return dst, errorf(0, "the merged batch would have more than "+strconv.FormatInt(MaxElements, 10)+" rows")
		}
	}
	for k := range first.Inputs {
		if t := &first.Inputs[k]; t.rowElems()*total > MaxElements {
			return dst, errorf(0, "the merged input "+strconv.Quote(string(t.Name))+" would have more than "+
				strconv.FormatInt(MaxElements, 10)+" elements")
		}
	}

	dst = append(dst, '{')
	if len(id) > 0 {
		dst = append(dst, `"id":`...)
		dst = append(dst, id...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"inputs":[`...)
	for k := range first.Inputs {
		t := &first.Inputs[k]
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendName(dst, t)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, t.Datatype.String()...)
		dst = append(dst, `","shape":`...)
		dst = appendShape(dst, total, t.Shape[1:])
		if t.Parameters != nil {
			dst = append(dst, `,"parameters":`...)
			dst = append(dst, t.Parameters...)
		}
		dst = append(dst, `,"data":[`...)
		wrote := false
		for _, r := range reqs {
			dst, wrote = appendFlat(dst, &r.Inputs[k], wrote)
		}
		dst = append(dst, "]}"...)
	}
	dst = append(dst, ']')
	if first.Parameters != nil {
		dst = append(dst, `,"parameters":`...)
		dst = append(dst, first.Parameters...)
	}
	if first.Outputs != nil {
		dst = append(dst, `,"outputs":`...)
		dst = append(dst, first.Outputs...)
	}
	for _, m := range first.extra {
		dst = append(dst, ',')
		dst = append(dst, m...)
	}
	return append(dst, '}'), nil
}

// appendName appends t's name as a JSON string: as the body spelled it when
// t was parsed, else quoted from Name.
func appendName(dst []byte, t *Tensor) []byte {
	if t.rawName != nil {
		return append(dst, t.rawName...)
	}
	return jsonscan.AppendString(dst, string(t.Name))
}

// appendShape appends the shape [first, rest...].
func appendShape(dst []byte, first int64, rest []int64) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, first, 10)
	for _, d := range rest {
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, d, 10)
	}
	return append(dst, ']')
}

// appendFlat appends the elements of t's data in row-major order, separated
// by commas; wrote says whether elements precede them (and is returned
// updated).
func appendFlat(dst []byte, t *Tensor, wrote bool) ([]byte, bool) {
	if !t.Nested {
		inner := t.Data[1 : len(t.Data)-1]
		i, j := 0, len(inner)
		for i < j && isWS(inner[i]) {
			i++
		}
		for j > i && isWS(inner[j-1]) {
			j--
		}
		if i == j {
			return dst, wrote
		}
		if wrote {
			dst = append(dst, ',')
		}
		return append(dst, inner[i:j]...), true
	}
	return appendNested(dst, t.Data, 0, wrote)
}

// appendNested appends the scalars of the validated nested array at b[i].
func appendNested(dst, b []byte, i int, wrote bool) ([]byte, bool) {
	j, more := arrStart(b, i)
	for more {
		var end int
		if b[j] == '[' {
			dst, wrote = appendNested(dst, b, j, wrote)
			end = skipValidated(b, j)
		} else {
			end = skipValidated(b, j)
			if wrote {
				dst = append(dst, ',')
			}
			dst, wrote = append(dst, b[j:end]...), true
		}
		j, more, _ = arrAfter(b, end)
	}
	return dst, wrote
}

// span is a part of a tensor's Data: the bytes from the first to the last
// item of a caller's rows, without the brackets; empty when it has none.
type span struct{ start, end int }

// Splitter splits the upstream's response to a merged request back to the
// callers. Prepare it with the response and the callers' batch sizes, then
// Append each caller's body. A Splitter is reusable (Prepare keeps its
// capacity) and not safe for concurrent use; it keeps resp and reads it in
// Append, so resp and its body must stay unchanged until the last Append.
type Splitter struct {
	resp   *Response
	counts []int64
	spans  []span // spans[o*len(counts)+i]: caller i's part of output o
}

// Prepare checks that resp answers a merged request of len(counts) callers,
// caller i with batch size counts[i] (in the order given to AppendMerged),
// and finds each caller's rows in every output in one pass over its data.
// Every output must have a first dimension equal to the sum of counts, and
// its data must split at the callers' boundaries: flat data has
// product(shape[1:]) elements per row, nested data one array per row.
//
// mergedID is the id given to AppendMerged (a JSON string with its quotes),
// or nil. When it is set and resp carries an "id", the two must be the same
// string: an answer to another batch is refused. (An upstream that drops the
// id is let through: the specification wants it echoed, not every server
// does.)
//
// When Prepare fails, every caller must get an error: resp cannot be split
// safely.
func (s *Splitter) Prepare(resp *Response, mergedID []byte, counts []int64) error {
	s.resp = nil
	if len(mergedID) > 0 && resp.ID != nil && !sameString(mergedID, resp.ID) {
		return errorf(0, "the upstream answered with the id "+quoteSnippet(resp.ID)+" to the batch "+quoteSnippet(mergedID))
	}
	if len(counts) == 0 {
		return errorf(0, "no callers to split the response among")
	}
	var total int64
	for i, c := range counts {
		if c < 0 || c > MaxElements {
			return errorf(0, "caller "+strconv.Itoa(i)+" has an invalid batch size "+strconv.FormatInt(c, 10))
		}
		if total += c; total > MaxElements {
			return errorf(0, "the callers' batch sizes add up to more than "+strconv.FormatInt(MaxElements, 10))
		}
	}
	s.counts = append(s.counts[:0], counts...)
	n := len(counts)
	if need := len(resp.Outputs) * n; cap(s.spans) < need {
		s.spans = make([]span, need)
	} else {
		s.spans = s.spans[:need]
	}
	for o := range resp.Outputs {
		t := &resp.Outputs[o]
		if len(t.Shape) == 0 {
			return errorf(0, "output "+quotedName(t)+" has no dimensions (shape []), so it cannot be split among the batch")
		}
		if t.Shape[0] != total {
			return errorf(0, "output "+quotedName(t)+" has first dimension "+strconv.FormatInt(t.Shape[0], 10)+
				", but the merged batch has "+strconv.FormatInt(total, 10)+" rows")
		}
		unit := int64(1) // one nested array per row
		if !t.Nested {
			unit = t.rowElems()
		}
		if why := locate(t.Data, unit, counts, s.spans[o*n:(o+1)*n]); why != "" {
			return errorf(0, "output "+quotedName(t)+": "+why)
		}
	}
	s.resp = resp
	return nil
}

// sameString reports whether the JSON strings a and b (quotes included) hold
// the same text, however they are escaped.
func sameString(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	if !isString(a) || !isString(b) {
		return false
	}
	return string(appendUnescaped(nil, a[1:len(a)-1])) == string(appendUnescaped(nil, b[1:len(b)-1]))
}

// quotedName quotes t's name for an error message; it allocates, so call it
// on the error path only.
func quotedName(t *Tensor) string { return strconv.Quote(string(t.Name)) }

// locate finds in data, an array with unit items per row, the span of each
// caller's rows. It says what is wrong when the items do not add up.
func locate(data []byte, unit int64, counts []int64, spans []span) string {
	n := len(counts)
	ci := 0
	var lo, hi int64 // items [lo, hi) belong to caller ci
	skipEmpty := func() {
		for ci < n && counts[ci]*unit == 0 {
			spans[ci] = span{}
			ci++
		}
		if ci < n {
			hi = lo + counts[ci]*unit
		}
	}
	skipEmpty()
	var k int64
	j, more := arrStart(data, 0)
	for more {
		if ci == n {
			return "its data has more items than the batch's rows need"
		}
		end := skipValidated(data, j)
		if k == lo {
			spans[ci].start = j
		}
		if k == hi-1 {
			spans[ci].end = end
			lo = hi
			ci++
			skipEmpty()
		}
		k++
		var err *Error
		if j, more, err = arrAfter(data, end); err != nil {
			return "its data is not valid JSON"
		}
	}
	if ci != n {
		return "its data has " + strconv.FormatInt(k, 10) + " items, fewer than the batch's rows need"
	}
	return ""
}

// Append appends caller i's response body to dst: the response's
// "model_name", "model_version" and "parameters", the caller's own id (a
// JSON string with its quotes like Request.ID; left out when empty), and
// every output with shape[0] = counts[i] and exactly that caller's rows of
// data, nested when the upstream's data was nested.
func (s *Splitter) Append(dst []byte, i int, id []byte) ([]byte, error) {
	r := s.resp
	switch {
	case r == nil:
		return dst, errorf(0, "oip: Append on a Splitter without a successful Prepare")
	case i < 0 || i >= len(s.counts):
		return dst, errorf(0, "oip: caller "+strconv.Itoa(i)+" out of range")
	case len(id) > 0 && !isString(id):
		return dst, errorf(0, "the id of a caller must be a JSON string, quotes included")
	}
	dst = append(dst, `{"model_name":`...)
	dst = append(dst, r.ModelName...)
	if r.ModelVersion != nil {
		dst = append(dst, `,"model_version":`...)
		dst = append(dst, r.ModelVersion...)
	}
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	if r.Parameters != nil {
		dst = append(dst, `,"parameters":`...)
		dst = append(dst, r.Parameters...)
	}
	dst = append(dst, `,"outputs":[`...)
	n := len(s.counts)
	for o := range r.Outputs {
		t := &r.Outputs[o]
		if o > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = appendName(dst, t)
		dst = append(dst, `,"datatype":"`...)
		dst = append(dst, t.Datatype.String()...)
		dst = append(dst, `","shape":`...)
		dst = appendShape(dst, s.counts[i], t.Shape[1:])
		if t.Parameters != nil {
			dst = append(dst, `,"parameters":`...)
			dst = append(dst, t.Parameters...)
		}
		dst = append(dst, `,"data":[`...)
		sp := s.spans[o*n+i]
		dst = append(dst, t.Data[sp.start:sp.end]...)
		dst = append(dst, "]}"...)
	}
	return append(dst, "]}"...), nil
}

// AppendSplit appends caller i's response body, like Splitter.Append after
// Splitter.Prepare(resp, nil, counts) (the response's id is not checked). It
// allocates a Splitter per call and walks every output's data: to answer all
// callers, use one Splitter.
func AppendSplit(dst []byte, resp *Response, counts []int64, i int, id []byte) ([]byte, error) {
	var s Splitter
	if err := s.Prepare(resp, nil, counts); err != nil {
		return dst, err
	}
	return s.Append(dst, i, id)
}
