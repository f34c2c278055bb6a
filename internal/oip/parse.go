package oip

import (
	"strconv"
	"strings"
)

// Tensor is one input of a request or one output of a response. Its byte
// slices are views into the parsed body (Name may instead point into its
// owner's scratch buffer); they stay valid while the body does and until the
// owner is reset or parses again. The batching functions trust what the
// parsers filled in (Elems, Nested, the data's validity): tensors built by
// hand must be just as consistent.
type Tensor struct {
	Name       []byte   // "name", unescaped
	Datatype   Datatype // "datatype"
	Shape      []int64  // "shape"; every dimension is in 0..MaxElements
	Parameters []byte   // raw JSON object of "parameters"; nil when absent
	Data       []byte   // raw JSON array of "data"
	Elems      int64    // elements of Data, equal to the product of Shape
	Nested     bool     // Data is nested along Shape rather than flat

	rawName []byte // the name as a JSON string, quotes included
	nameEsc bool   // the name has escapes: Name is scratch[nameAt:nameEnd]
	nameAt  int
	nameEnd int
}

func (t *Tensor) reset() {
	shape := t.Shape[:0]
	*t = Tensor{Shape: shape}
}

// rowElems is the number of elements in one row (one index of the first
// dimension): the product of Shape[1:], which the parsers keep within
// MaxElements.
func (t *Tensor) rowElems() int64 {
	n, _ := elemCount(t.Shape[1:])
	return n
}

// Request is a parsed inference request ($inference_request). A Request is
// reusable: ParseRequest resets it and keeps its slices' capacity, so a
// pooled Request parses without allocating. It is not safe for concurrent
// use.
type Request struct {
	ID         []byte   // raw JSON string of "id", quotes included; nil when absent
	Parameters []byte   // raw JSON object of "parameters"; nil when absent
	Inputs     []Tensor // "inputs", in body order; never empty after a successful parse
	Outputs    []byte   // raw JSON array of "outputs"; nil when absent

	// extra holds the top-level members this package does not know, key
	// through value, in body order.
	extra   [][]byte
	scratch []byte // unescaped names
}

// Reset clears r and drops its references into the last body, keeping the
// capacity of its slices.
func (r *Request) Reset() {
	for i := range r.Inputs {
		r.Inputs[i].reset()
	}
	r.Inputs = r.Inputs[:0]
	r.ID, r.Parameters, r.Outputs = nil, nil, nil
	clear(r.extra)
	r.extra = r.extra[:0]
	r.scratch = r.scratch[:0]
}

// Response is a parsed inference response ($inference_response), reusable
// like Request.
type Response struct {
	ModelName    []byte   // raw JSON string of "model_name", quotes included
	ModelVersion []byte   // raw JSON string of "model_version"; nil when absent
	ID           []byte   // raw JSON string of "id"; nil when absent
	Parameters   []byte   // raw JSON object of "parameters"; nil when absent
	Outputs      []Tensor // "outputs", in body order; may be empty

	scratch []byte
}

// Reset clears r like Request.Reset.
func (r *Response) Reset() {
	for i := range r.Outputs {
		r.Outputs[i].reset()
	}
	r.Outputs = r.Outputs[:0]
	r.ModelName, r.ModelVersion, r.ID, r.Parameters = nil, nil, nil, nil
	r.scratch = r.scratch[:0]
}

// Depths of the containers in a body: the body's object, the inputs (or
// outputs) array, one tensor object.
const (
	depthBody   = 1
	depthList   = 2
	depthTensor = 3
	depthData   = 4 // the elements of a data array
)

// parser holds the state of one parse.
type parser struct {
	b       []byte
	kind    string // "input" or "output", to name a tensor in messages
	list    string // "inputs" or "outputs"
	scratch []byte // unescaped tensor names
}

// Parameters that select the binary tensor data extension.
const (
	paramBinarySize   = 1 << iota // "binary_data_size" (any value)
	paramBinaryData               // "binary_data": true
	paramBinaryOutput             // "binary_data_output": true
)

const binaryRefused = "the binary tensor data extension is not supported here"

// ParseRequest validates body as an inference request and fills r (reset
// first) with views into it. The error, an *Error, says what is wrong in
// words fit for the client; r then holds partial results, to be reset or
// parsed into again, not used.
//
// Besides the rules in the package comment: "inputs" is required and not
// empty, input names are unique, "id" is a string, "parameters" objects,
// "outputs" an array of objects each with a string "name". A known key
// (top level or in a tensor) given twice is an error; keys this package does
// not know are validated as JSON and otherwise left alone: the top-level
// ones count for AppendBatchKey and AppendMerged, those inside tensors are
// dropped by AppendMerged.
func ParseRequest(body []byte, r *Request) error {
	r.Reset()
	p := parser{b: body, kind: "input", list: "inputs", scratch: r.scratch}
	err := p.request(r)
	r.scratch = p.scratch
	if err != nil {
		return err
	}
	fixNames(r.Inputs, r.scratch)
	return checkUnique(r.Inputs, p.kind)
}

// ParseResponse validates body as an inference response and fills r (reset
// first) with views into it. "model_name" and "outputs" are required (the
// list may be empty); every output is validated like an input of
// ParseRequest, and output names are unique. Unknown keys are skipped.
func ParseResponse(body []byte, r *Response) error {
	r.Reset()
	p := parser{b: body, kind: "output", list: "outputs", scratch: r.scratch}
	err := p.response(r)
	r.scratch = p.scratch
	if err != nil {
		return err
	}
	fixNames(r.Outputs, r.scratch)
	return checkUnique(r.Outputs, p.kind)
}

// bodyStart finds the '{' of the body.
func (p *parser) bodyStart(what string) (int, *Error) {
	i := skipWS(p.b, 0)
	if i >= len(p.b) {
		return 0, errorf(i, "empty body, expected a JSON object")
	}
	if p.b[i] != '{' {
		return 0, errorf(i, "the "+what+" body must be a JSON object")
	}
	return i, nil
}

// bodyEnd checks that only whitespace follows the body's object.
func (p *parser) bodyEnd(i int) *Error {
	if i = skipWS(p.b, i); i != len(p.b) {
		return syntaxErr(i, "unexpected data after the top-level object")
	}
	return nil
}

func duplicateKey(off int, where string, key []byte) *Error {
	return errorf(off, where+"the key "+strconv.Quote(string(key))+" appears more than once")
}

func (p *parser) request(r *Request) *Error {
	b := p.b
	i, err := p.bodyStart("request")
	if err != nil {
		return err
	}
	const (
		seenID = 1 << iota
		seenParameters
		seenInputs
		seenOutputs
	)
	var seen uint8
	j, more := objStart(b, i)
	for more {
		key, esc, v, err := objKey(b, j)
		if err != nil {
			return err
		}
		var buf [maxKnownKey]byte
		k := keyText(key, esc, &buf)
		var bit uint8
		switch string(k) {
		case "id":
			bit = seenID
		case "parameters":
			bit = seenParameters
		case "inputs":
			bit = seenInputs
		case "outputs":
			bit = seenOutputs
		}
		if seen&bit != 0 {
			return duplicateKey(j, "", k)
		}
		seen |= bit
		var end int
		switch bit {
		case seenID:
			if v >= len(b) || b[v] != '"' {
				if _, err := skipValue(b, v, depthBody); err != nil {
					return err
				}
				return errorf(v, `"id" must be a string`)
			}
			if end, _, err = skipString(b, v); err != nil {
				return err
			}
			r.ID = b[v:end]
		case seenParameters:
			var flags int
			if end, flags, err = p.params(v, depthBody, `"parameters"`); err != nil {
				return err
			}
			if flags&paramBinaryOutput != 0 {
				return errorf(v, binaryRefused+` (request parameter "binary_data_output"): ask for JSON output data`)
			}
			r.Parameters = b[v:end]
		case seenInputs:
			if end, err = p.tensors(v, &r.Inputs); err != nil {
				return err
			}
			if len(r.Inputs) == 0 {
				return errorf(v, `"inputs" must not be empty`)
			}
		case seenOutputs:
			if end, err = p.requestOutputs(v); err != nil {
				return err
			}
			r.Outputs = b[v:end]
		default:
			if end, err = skipValue(b, v, depthBody); err != nil {
				return err
			}
			r.extra = append(r.extra, b[j:end])
		}
		if j, more, err = objAfter(b, end); err != nil {
			return err
		}
	}
	if err := p.bodyEnd(j); err != nil {
		return err
	}
	if seen&seenInputs == 0 {
		return errorf(i, `missing "inputs"`)
	}
	return nil
}

func (p *parser) response(r *Response) *Error {
	b := p.b
	i, err := p.bodyStart("response")
	if err != nil {
		return err
	}
	const (
		seenModelName = 1 << iota
		seenModelVersion
		seenID
		seenParameters
		seenOutputs
	)
	var seen uint8
	j, more := objStart(b, i)
	for more {
		key, esc, v, err := objKey(b, j)
		if err != nil {
			return err
		}
		var buf [maxKnownKey]byte
		k := keyText(key, esc, &buf)
		var bit uint8
		switch string(k) {
		case "model_name":
			bit = seenModelName
		case "model_version":
			bit = seenModelVersion
		case "id":
			bit = seenID
		case "parameters":
			bit = seenParameters
		case "outputs":
			bit = seenOutputs
		}
		if seen&bit != 0 {
			return duplicateKey(j, "", k)
		}
		seen |= bit
		var end int
		switch bit {
		case seenModelName, seenModelVersion, seenID:
			if v >= len(b) || b[v] != '"' {
				if _, err := skipValue(b, v, depthBody); err != nil {
					return err
				}
				return errorf(v, strconv.Quote(string(k))+" must be a string")
			}
			if end, _, err = skipString(b, v); err != nil {
				return err
			}
			switch bit {
			case seenModelName:
				r.ModelName = b[v:end]
			case seenModelVersion:
				r.ModelVersion = b[v:end]
			default:
				r.ID = b[v:end]
			}
		case seenParameters:
			if end, _, err = p.params(v, depthBody, `"parameters"`); err != nil {
				return err
			}
			r.Parameters = b[v:end]
		case seenOutputs:
			if end, err = p.tensors(v, &r.Outputs); err != nil {
				return err
			}
		default:
			if end, err = skipValue(b, v, depthBody); err != nil {
				return err
			}
		}
		if j, more, err = objAfter(b, end); err != nil {
			return err
		}
	}
	if err := p.bodyEnd(j); err != nil {
		return err
	}
	if seen&seenModelName == 0 {
		return errorf(i, `missing "model_name"`)
	}
	if seen&seenOutputs == 0 {
		return errorf(i, `missing "outputs"`)
	}
	return nil
}

// params validates the parameters object at b[v] (what names it in
// messages) and reports which binary extension parameters it sets.
func (p *parser) params(v, depth int, what string) (end, flags int, err *Error) {
	b := p.b
	if v >= len(b) || b[v] != '{' {
		if _, err := skipValue(b, v, depth); err != nil {
			return 0, 0, err
		}
		return 0, 0, errorf(v, what+" must be an object")
	}
	if depth+1 > MaxDepth {
		return 0, 0, syntaxErr(v, "nesting too deep")
	}
	j, more := objStart(b, v)
	for more {
		key, esc, val, err := objKey(b, j)
		if err != nil {
			return 0, 0, err
		}
		end, err := skipValue(b, val, depth+1)
		if err != nil {
			return 0, 0, err
		}
		var buf [maxKnownKey]byte
		switch string(keyText(key, esc, &buf)) {
		case "binary_data_size":
			flags |= paramBinarySize
		case "binary_data":
			if string(b[val:end]) == "true" {
				flags |= paramBinaryData
			}
		case "binary_data_output":
			if string(b[val:end]) == "true" {
				flags |= paramBinaryOutput
			}
		}
		if j, more, err = objAfter(b, end); err != nil {
			return 0, 0, err
		}
	}
	return j, flags, nil
}

// requestOutputs validates the "outputs" array of a request at b[v].
func (p *parser) requestOutputs(v int) (int, *Error) {
	b := p.b
	if v >= len(b) || b[v] != '[' {
		if _, err := skipValue(b, v, depthBody); err != nil {
			return 0, err
		}
		return 0, errorf(v, `"outputs" must be an array of objects`)
	}
	j, more := arrStart(b, v)
	for n := 0; more; n++ {
		where := "outputs[" + strconv.Itoa(n) + "]"
		if at(b, j) != '{' {
			if _, err := skipValue(b, j, depthList); err != nil {
				return 0, err
			}
			return 0, errorf(j, where+" must be an object")
		}
		start := j
		var seenName, seenParams bool
		k, members := objStart(b, j)
		for members {
			key, esc, val, err := objKey(b, k)
			if err != nil {
				return 0, err
			}
			var buf [maxKnownKey]byte
			kt := keyText(key, esc, &buf)
			var end int
			switch string(kt) {
			case "name":
				if seenName {
					return 0, duplicateKey(k, where+": ", kt)
				}
				seenName = true
				if val >= len(b) || b[val] != '"' {
					if _, err := skipValue(b, val, depthTensor); err != nil {
						return 0, err
					}
					return 0, errorf(val, where+`: "name" must be a string`)
				}
				end, _, err = skipString(b, val)
			case "parameters":
				if seenParams {
					return 0, duplicateKey(k, where+": ", kt)
				}
				seenParams = true
				var flags int
				end, flags, err = p.params(val, depthTensor, where+`: "parameters"`)
				if err == nil && flags&(paramBinaryData|paramBinarySize) != 0 {
					param := "binary_data"
					if flags&paramBinaryData == 0 {
						param = "binary_data_size"
					}
					return 0, errorf(val, where+": "+binaryRefused+` (parameter "`+param+`"): ask for JSON output data`)
				}
			default:
				end, err = skipValue(b, val, depthTensor)
			}
			if err != nil {
				return 0, err
			}
			if k, members, err = objAfter(b, end); err != nil {
				return 0, err
			}
		}
		if !seenName {
			return 0, errorf(start, where+`: missing "name"`)
		}
		var err *Error
		if j, more, err = arrAfter(b, k); err != nil {
			return 0, err
		}
	}
	return j, nil
}

// tensors parses the inputs (or outputs) array at b[v] into *ts.
func (p *parser) tensors(v int, ts *[]Tensor) (int, *Error) {
	b := p.b
	if v >= len(b) || b[v] != '[' {
		if _, err := skipValue(b, v, depthBody); err != nil {
			return 0, err
		}
		return 0, errorf(v, strconv.Quote(p.list)+" must be an array of objects")
	}
	j, more := arrStart(b, v)
	for more {
		t := newTensor(ts)
		end, err := p.tensor(j, len(*ts)-1, t)
		if err != nil {
			return 0, err
		}
		if j, more, err = arrAfter(b, end); err != nil {
			return 0, err
		}
	}
	return j, nil
}

// newTensor appends a reset tensor to *ts, reusing its capacity.
func newTensor(ts *[]Tensor) *Tensor {
	s := *ts
	if len(s) < cap(s) {
		s = s[:len(s)+1]
	} else {
		s = append(s, Tensor{})
	}
	*ts = s
	t := &s[len(s)-1]
	t.reset()
	return t
}

// Keys of a tensor object.
const (
	tkName = 1 << iota
	tkShape
	tkDatatype
	tkParameters
	tkData
)

// tensor parses the tensor object at b[i], number idx of its list.
//
// Problems other than syntax errors are noted and reported once the object
// has been read, so the message can name the tensor wherever its "name" is.
// The data is checked while it is read when the shape and datatype came
// before it (the usual order), else afterwards from its span.
func (p *parser) tensor(i, idx int, t *Tensor) (int, *Error) {
	b := p.b
	if i >= len(b) || b[i] != '{' {
		if _, err := skipValue(b, i, depthList); err != nil {
			return 0, err
		}
		return 0, errorf(i, p.list+"["+strconv.Itoa(idx)+"] must be an object")
	}
	var (
		seen     uint8
		problem  string // the first problem, without the tensor's name
		probAt   int
		flags    int
		want     int64 // product of the shape
		shapeOK  bool
		dataDone bool // Data was checked while read
		dataAt   int
	)
	j, more := objStart(b, i)
	for more {
		key, esc, v, err := objKey(b, j)
		if err != nil {
			return 0, err
		}
		var buf [maxKnownKey]byte
		k := keyText(key, esc, &buf)
		var bit uint8
		switch string(k) {
		case "name":
			bit = tkName
		case "shape":
			bit = tkShape
		case "datatype":
			bit = tkDatatype
		case "parameters":
			bit = tkParameters
		case "data":
			bit = tkData
		}
		if seen&bit != 0 && problem == "" {
			problem, probAt = "the key "+strconv.Quote(string(k))+" appears more than once", j
		}
		seen |= bit
		end := -1
		var msg string
		switch bit {
		case tkName:
			if v < len(b) && b[v] == '"' {
				var esc bool
				if end, esc, err = skipString(b, v); err != nil {
					return 0, err
				}
				t.rawName = b[v:end]
				if esc {
					t.nameEsc = true
					t.nameAt = len(p.scratch)
					p.scratch = appendUnescaped(p.scratch, b[v+1:end-1])
					t.nameEnd = len(p.scratch)
				} else {
					t.Name = b[v+1 : end-1]
				}
			} else {
				msg = `"name" must be a string`
			}
		case tkShape:
			end, want, msg, err = p.shape(v, t)
			shapeOK = msg == ""
		case tkDatatype:
			if v < len(b) && b[v] == '"' {
				var esc bool
				if end, esc, err = skipString(b, v); err != nil {
					return 0, err
				}
				var dbuf [32]byte
				name := b[v+1 : end-1]
				if esc && len(name) <= len(dbuf) {
					name = appendUnescaped(dbuf[:0], name)
				}
				var ok bool
				if t.Datatype, ok = ParseDatatype(name); !ok {
					msg = "unknown datatype " + quoteSnippet(b[v:end]) + ", want one of " + strings.Join(datatypeNames[1:], ", ")
				}
			} else {
				msg = `"datatype" must be a string`
			}
		case tkParameters:
			if v >= len(b) || b[v] != '{' {
				msg = `"parameters" must be an object`
				break
			}
			end, flags, err = p.params(v, depthTensor, `"parameters"`)
			if err == nil {
				t.Parameters = b[v:end]
			}
		case tkData:
			switch {
			case v >= len(b) || b[v] != '[':
				msg = `"data" must be an array`
			case shapeOK && t.Datatype != InvalidDatatype && problem == "":
				s := dataScan{b: b, dt: t.Datatype, cls: t.Datatype.class(), shape: t.Shape}
				end, msg, err = s.scan(v, want)
				if err == nil && msg == "" {
					t.Data, t.Elems, t.Nested, dataDone = b[v:end], s.elems, s.nested, true
				}
			default:
				if end, err = skipValue(b, v, depthTensor); err == nil {
					t.Data, dataAt = b[v:end], v
				}
			}
		}
		if err != nil {
			return 0, err
		}
		if msg != "" {
			if problem == "" {
				problem, probAt = msg, v
			}
			end = -1
		}
		if end < 0 {
			if end, err = skipValue(b, v, depthTensor); err != nil {
				return 0, err
			}
		}
		if j, more, err = objAfter(b, end); err != nil {
			return 0, err
		}
	}

	fail := func(off int, msg string) *Error {
		return errorf(off, p.tensorName(t, idx)+": "+msg)
	}
	switch {
	case flags&paramBinarySize != 0:
		hint := `send the tensor's data as JSON in "data"`
		if p.kind == "output" {
			hint = "the upstream must answer with JSON tensor data"
		}
		return 0, fail(i, binaryRefused+` (parameter "binary_data_size"): `+hint)
	case problem != "":
		return 0, fail(probAt, problem)
	case seen&tkName == 0:
		return 0, fail(i, `missing "name"`)
	case seen&tkShape == 0:
		return 0, fail(i, `missing "shape"`)
	case seen&tkDatatype == 0:
		return 0, fail(i, `missing "datatype"`)
	case seen&tkData == 0:
		return 0, fail(i, `missing "data"`)
	}
	if !dataDone {
		s := dataScan{b: b, dt: t.Datatype, cls: t.Datatype.class(), shape: t.Shape}
		_, msg, err := s.scan(dataAt, want)
		if err != nil {
			return 0, err
		}
		if msg != "" {
			return 0, fail(dataAt, msg)
		}
		t.Elems, t.Nested = s.elems, s.nested
	}
	return j, nil
}

// tensorName names tensor idx for messages: `input "x"`, or `inputs[3]`
// before its name is known.
func (p *parser) tensorName(t *Tensor, idx int) string {
	switch {
	case t.nameEsc:
		return p.kind + " " + strconv.Quote(string(p.scratch[t.nameAt:t.nameEnd]))
	case t.rawName != nil:
		return p.kind + " " + strconv.Quote(string(t.Name))
	}
	return p.list + "[" + strconv.Itoa(idx) + "]"
}

// shape parses the shape array at b[v] into t.Shape and returns the product
// of its dimensions.
func (p *parser) shape(v int, t *Tensor) (end int, product int64, msg string, err *Error) {
	b := p.b
	const bad = `"shape" must be an array of non-negative integers`
	if v >= len(b) || b[v] != '[' {
		return 0, 0, bad, nil
	}
	t.Shape = t.Shape[:0]
	j, more := arrStart(b, v)
	for more {
		if j >= len(b) || !(b[j] == '-' || isDigit(b[j])) {
			return 0, 0, bad, nil
		}
		e, n, err := scanNumber(b, j)
		if err != nil {
			return 0, 0, "", err
		}
		if !n.integer || n.neg && n.mag != 0 {
			return 0, 0, bad + ", got " + quoteSnippet(b[j:e]), nil
		}
		if n.overflow || n.mag > MaxElements {
			return 0, 0, "shape dimension " + quoteSnippet(b[j:e]) + " is larger than " + strconv.FormatInt(MaxElements, 10), nil
		}
		if len(t.Shape) == MaxRank {
			return 0, 0, "shape has more than " + strconv.Itoa(MaxRank) + " dimensions", nil
		}
		t.Shape = append(t.Shape, int64(n.mag))
		if j, more, err = arrAfter(b, e); err != nil {
			return 0, 0, "", err
		}
	}
	product, ok := elemCount(t.Shape)
	if !ok {
		return 0, 0, "shape " + formatShape(t.Shape) + " has more than " + strconv.FormatInt(MaxElements, 10) + " elements", nil
	}
	return j, product, "", nil
}

// elemCount returns the product of shape, whose dimensions are each at most
// MaxElements; ok is false when it exceeds MaxElements.
func elemCount(shape []int64) (n int64, ok bool) {
	n = 1
	for _, d := range shape {
		if d == 0 {
			return 0, true
		}
	}
	for _, d := range shape {
		n *= d // both factors are at most MaxElements: no overflow
		if n > MaxElements {
			return 0, false
		}
	}
	return n, true
}

// formatShape renders a shape as in JSON, e.g. [2,3].
func formatShape(shape []int64) string {
	buf := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, d, 10)
	}
	return string(append(buf, ']'))
}

// fixNames points the Name of tensors with escaped names into scratch, now
// that it no longer grows.
func fixNames(ts []Tensor, scratch []byte) {
	for i := range ts {
		if t := &ts[i]; t.nameEsc {
			t.Name = scratch[t.nameAt:t.nameEnd]
		}
	}
}

// checkUnique rejects two tensors of the same name.
func checkUnique(ts []Tensor, kind string) error {
	dup := func(name []byte) error {
		return errorf(0, "two "+kind+"s are named "+strconv.Quote(string(name)))
	}
	if len(ts) <= 32 {
		for i := 1; i < len(ts); i++ {
			for k := 0; k < i; k++ {
				if string(ts[i].Name) == string(ts[k].Name) {
					return dup(ts[i].Name)
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, len(ts))
	for i := range ts {
		if _, ok := seen[string(ts[i].Name)]; ok {
			return dup(ts[i].Name)
		}
		seen[string(ts[i].Name)] = struct{}{}
	}
	return nil
}

// dataScan checks a tensor's data against its datatype and shape.
type dataScan struct {
	b      []byte
	dt     Datatype
	cls    elemClass
	shape  []int64
	elems  int64 // elements read so far
	nested bool
}

// scan checks the data array at b[i] (its '['), which must hold want
// elements.
func (s *dataScan) scan(i int, want int64) (end int, msg string, err *Error) {
	j, more := arrStart(s.b, i)
	if !more {
		end = j
	} else if at(s.b, j) == '[' {
		if len(s.shape) == 0 {
			return 0, "data is nested, but shape [] has no dimensions", nil
		}
		s.nested = true
		if end, msg, err = s.level(i, 0); err != nil || msg != "" {
			return 0, msg, err
		}
	} else {
		for more {
			e, msg, err := s.elem(j, depthData)
			if err != nil || msg != "" {
				return 0, msg, err
			}
			if j, more, err = arrAfter(s.b, e); err != nil {
				return 0, "", err
			}
		}
		end = j
	}
	if s.elems != want {
		return 0, "data has " + strconv.FormatInt(s.elems, 10) + " elements, shape " + formatShape(s.shape) +
			" needs " + strconv.FormatInt(want, 10), nil
	}
	return end, "", nil
}

// level checks the nested array at b[i] that stands for dimension lvl.
func (s *dataScan) level(i, lvl int) (end int, msg string, err *Error) {
	b := s.b
	last := lvl == len(s.shape)-1
	var n int64
	j, more := arrStart(b, i)
	for more {
		if n == s.shape[lvl] {
			return 0, s.mismatch("an array at depth " + strconv.Itoa(lvl+1) + " has more than " +
				strconv.FormatInt(s.shape[lvl], 10) + " elements"), nil
		}
		var e int
		switch {
		case last && at(b, j) == '[':
			return 0, "data is nested deeper than shape " + formatShape(s.shape), nil
		case last:
			e, msg, err = s.elem(j, depthData+lvl)
		case at(b, j) != '[':
			v, err := skipValue(b, j, depthData+lvl)
			if err != nil {
				return 0, "", err
			}
			return 0, s.mismatch("expected an array at depth " + strconv.Itoa(lvl+2) + ", found " + quoteSnippet(b[j:v])), nil
		default:
			e, msg, err = s.level(j, lvl+1)
		}
		if err != nil || msg != "" {
			return 0, msg, err
		}
		n++
		if j, more, err = arrAfter(b, e); err != nil {
			return 0, "", err
		}
	}
	if n != s.shape[lvl] {
		return 0, s.mismatch("an array at depth " + strconv.Itoa(lvl+1) + " has " + strconv.FormatInt(n, 10) +
			" elements, want " + strconv.FormatInt(s.shape[lvl], 10)), nil
	}
	return j, "", nil
}

func (s *dataScan) mismatch(what string) string {
	return "nested data does not match shape " + formatShape(s.shape) + ": " + what
}

// elem checks the element at b[i], inside depth containers, against the
// datatype and counts it.
func (s *dataScan) elem(i, depth int) (end int, msg string, err *Error) {
	b := s.b
	ok := false
	var n number
	switch c := at(b, i); {
	case c == '"':
		end, _, err = skipString(b, i)
		ok = s.cls == classString
	case c == 't':
		end, err = skipLiteral(b, i, "true")
		ok = s.cls == classBool
	case c == 'f':
		end, err = skipLiteral(b, i, "false")
		ok = s.cls == classBool
	case c == '-' || isDigit(c):
		end, n, err = scanNumber(b, i)
		switch s.cls {
		case classFloat:
			ok = true
		case classInt:
			if err == nil && n.integer && !s.dt.inRange(n) {
				return 0, s.elemMsg(b[i:end], "out of range for "+s.dt.String()+" ("+intRanges[s.dt]+")"), nil
			}
			ok = n.integer
		}
	default:
		end, err = skipValue(b, i, depth)
	}
	if err != nil {
		return 0, "", err
	}
	if !ok {
		return 0, s.elemMsg(b[i:end], "expected "+s.cls.expected()+" for "+s.dt.String()), nil
	}
	s.elems++
	return end, "", nil
}

func (s *dataScan) elemMsg(v []byte, what string) string {
	return "data element " + strconv.FormatInt(s.elems, 10) + " is " + quoteSnippet(v) + ", " + what
}
