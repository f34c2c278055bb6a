// Package oip is the JSON codec of the Open Inference Protocol (the KServe v2
// REST data plane) for the gateway's hot path: it validates the body of
// POST /v2/models/{name}/infer, merges the bodies of several callers into
// one upstream request by concatenating every input along its first
// dimension (dynamic batching), and splits the upstream's answer back to each
// caller.
//
// Parsing is a hand-written scanner over the body: ParseRequest and
// ParseResponse fill reusable structs with views (byte slices) into the body
// and decode nothing but shapes and datatypes. A Request or Response reused
// for the next body parses without allocating. The Append functions append
// to a caller-provided dst.
//
// # What is checked
//
// A tensor's data is a JSON array, flat or nested in row-major order (the
// specification allows both). Its element count must equal the product of its
// shape; nested data must match the shape at every level (a full nesting of
// exactly len(shape) levels, each as long as its dimension); elements must
// fit the datatype: true or false for BOOL, integers in range for the
// (U)INT types (no fraction, no exponent), any JSON number for FP16, FP32
// and FP64, strings for BYTES. Shapes are bounded by MaxRank and MaxElements,
// nesting of any value by MaxDepth.
//
// Left to the model server: whether a float fits its datatype (1e300 passes
// for FP16), what a BYTES string holds, and the values of "parameters"
// objects (the specification wants strings, numbers or booleans; any JSON
// value passes). Datatypes are the thirteen of the specification's table,
// spelled exactly so; BF16, which some servers add, is an unknown datatype
// here. Errors report the first problem met, in body order.
//
// The binary tensor data extension (binary_data_size, binary_data and
// binary_data_output parameters) is refused: this package reads JSON tensor
// data only, so it could neither count nor split binary data.
//
// # Batching and the rule it keeps
//
// No caller may get another caller's rows. AppendMerged concatenates the
// callers' inputs in the order given, and a Splitter hands caller i exactly
// the rows after those of callers 0..i-1, after checking that every output's
// first dimension is the sum of the callers' batch sizes and that its data
// splits there. Any doubt is an error for every caller, never a guess.
package oip

import (
	"strconv"

	"switchyard/internal/jsonscan"
)

// Limits of what the parsers accept.
const (
	// MaxDepth is the deepest nesting of arrays and objects accepted
	// anywhere in a body.
	MaxDepth = 1000
	// MaxRank is the most dimensions a shape may have.
	MaxRank = 64
	// MaxElements bounds the element count of a tensor (the product of its
	// shape) and each single dimension.
	MaxElements = 1 << 31
)

// Error is the error of every function of this package. Msg is meant for the
// client as it is, e.g. `input "x": data has 5 elements, shape [2,3] needs 6`
// (see AppendError).
type Error struct {
	Offset int    // byte offset in the body near the problem; 0 when not about a body
	Msg    string // the whole message
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

func errorf(off int, msg string) *Error { return &Error{Offset: off, Msg: msg} }

// AppendError appends the protocol's error body {"error":"<msg>"} to dst,
// with msg escaped as a JSON string (invalid UTF-8 becomes U+FFFD).
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = jsonscan.AppendString(dst, msg)
	return append(dst, '}')
}

// Datatype is the datatype of a tensor's elements, one of the specification's
// "Tensor Data Types". The zero value is InvalidDatatype.
type Datatype uint8

// The datatypes of the specification; String gives their protocol names
// ("BOOL", "UINT8", ..., "BYTES").
const (
	InvalidDatatype Datatype = iota
	Bool
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	FP16
	FP32
	FP64
	Bytes
	numDatatypes
)

var datatypeNames = [numDatatypes]string{"", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
	"INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}

// datatypeSizes are the element sizes in bytes from the specification's table;
// 0 for BYTES, whose elements vary.
var datatypeSizes = [numDatatypes]int{0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0}

// ParseDatatype returns the datatype named b, its protocol name exactly (the
// names are case-sensitive). ok is false for any other name.
func ParseDatatype(b []byte) (d Datatype, ok bool) {
	switch string(b) {
	case "BOOL":
		return Bool, true
	case "UINT8":
		return Uint8, true
	case "UINT16":
		return Uint16, true
	case "UINT32":
		return Uint32, true
	case "UINT64":
		return Uint64, true
	case "INT8":
		return Int8, true
	case "INT16":
		return Int16, true
	case "INT32":
		return Int32, true
	case "INT64":
		return Int64, true
	case "FP16":
		return FP16, true
	case "FP32":
		return FP32, true
	case "FP64":
		return FP64, true
	case "BYTES":
		return Bytes, true
	}
	return InvalidDatatype, false
}

// String returns the protocol name of d, e.g. "FP32", or "Datatype(n)" for a
// value that is none.
func (d Datatype) String() string {
	if d > InvalidDatatype && d < numDatatypes {
		return datatypeNames[d]
	}
	return "Datatype(" + strconv.Itoa(int(d)) + ")"
}

// Size returns the size of one element in bytes, from the specification's
// table: 0 for BYTES (variable) and for an invalid datatype.
func (d Datatype) Size() int {
	if d < numDatatypes {
		return datatypeSizes[d]
	}
	return 0
}

// elemClass groups datatypes by the JSON elements they take.
type elemClass uint8

const (
	classNone elemClass = iota
	classBool
	classInt
	classFloat
	classString
)

func (d Datatype) class() elemClass {
	switch {
	case d == Bool:
		return classBool
	case d >= Uint8 && d <= Int64:
		return classInt
	case d >= FP16 && d <= FP64:
		return classFloat
	case d == Bytes:
		return classString
	}
	return classNone
}

// intBounds gives, for the integer datatypes, the largest value and the
// magnitude of the smallest.
var intBounds = [numDatatypes]struct{ max, negMax uint64 }{
	Uint8:  {1<<8 - 1, 0},
	Uint16: {1<<16 - 1, 0},
	Uint32: {1<<32 - 1, 0},
	Uint64: {1<<64 - 1, 0},
	Int8:   {1<<7 - 1, 1 << 7},
	Int16:  {1<<15 - 1, 1 << 15},
	Int32:  {1<<31 - 1, 1 << 31},
	Int64:  {1<<63 - 1, 1 << 63},
}

// intRanges are the ranges of the integer datatypes for error messages.
var intRanges = [numDatatypes]string{
	Uint8: "0..255", Uint16: "0..65535", Uint32: "0..4294967295", Uint64: "0..18446744073709551615",
	Int8: "-128..127", Int16: "-32768..32767", Int32: "-2147483648..2147483647",
	Int64: "-9223372036854775808..9223372036854775807",
}

// inRange reports whether the integer n fits the integer datatype d.
func (d Datatype) inRange(n number) bool {
	if n.overflow {
		return false
	}
	if n.neg {
		return n.mag <= intBounds[d].negMax
	}
	return n.mag <= intBounds[d].max
}

// expected says what elements of a datatype's class look like.
func (c elemClass) expected() string {
	switch c {
	case classBool:
		return "true or false"
	case classInt:
		return "an integer"
	case classFloat:
		return "a number"
	case classString:
		return "a string"
	}
	return "nothing"
}
