// Package sse frames and parses Server-Sent Events as used by OpenAI-style
// streaming responses: it reads upstream events one at a time without
// buffering the stream, builds events and error events, and scans chunks for
// token usage. It does no I/O of its own beyond the io.Reader it is given.
package sse

import (
	"errors"
	"fmt"
	"io"
)

// ErrEventTooLarge is returned by Reader.Next when one event exceeds the
// reader's maximum event size.
var ErrEventTooLarge = errors.New("sse: event exceeds the maximum size")

// DefaultMaxEventSize is used by NewReader when maxEventSize <= 0.
const DefaultMaxEventSize = 1 << 20

const initialBufSize = 4096

// maxEmptyReads bounds successive (0, nil) reads before giving up, as bufio does.
const maxEmptyReads = 100

// Reader reads events from an SSE stream one at a time. It keeps at most one
// event (plus what the last read brought beyond it) in memory. A Reader is not
// safe for concurrent use; it may be pooled and reused with Reset.
type Reader struct {
	r       io.Reader
	max     int
	buf     []byte
	start   int   // start of the current (incomplete) event in buf
	line    int   // start of the line being scanned
	pos     int   // next byte to scan
	end     int   // end of the data read into buf
	err     error // read error, returned once buffered events are out
	fatal   error // error returned by every further call to Next
	scratch []byte
	ready   int // end of an event that Buffered found, for Next; 0 if none
}

// NewReader returns a Reader that reads from r and rejects events larger than
// maxEventSize bytes (raw, including line endings); DefaultMaxEventSize if
// maxEventSize <= 0.
func NewReader(r io.Reader, maxEventSize int) *Reader {
	if maxEventSize <= 0 {
		maxEventSize = DefaultMaxEventSize
	}
	return &Reader{r: r, max: maxEventSize}
}

// Reset discards all state and makes the Reader read from r, keeping its
// buffers (those larger than the maximum event size are dropped).
func (r *Reader) Reset(rd io.Reader) {
	buf, scratch := r.buf, r.scratch[:0]
	if cap(scratch) > r.max {
		scratch = nil
	}
	*r = Reader{r: rd, max: r.max, buf: buf, scratch: scratch}
}

// Next returns the next event: data is its `data:` lines joined by "\n"
// without the field name and the one optional space after the colon; raw is
// the whole event as received, every line (comments, event:, id:, retry:
// included) and its terminating blank line, to forward unchanged. data is nil
// for an event without any data line (such as a ": keep-alive" comment) and
// empty but not nil for an empty `data:` line. Blank lines between events are
// skipped. Lines may end in "\n", "\r\n" or "\r". Both slices are valid until
// the next call to Next or Reset.
//
// At the end of the stream Next returns io.EOF; when the stream ends inside
// an event it returns io.ErrUnexpectedEOF together with that incomplete
// event's data and raw bytes. An event longer than the maximum size gives
// ErrEventTooLarge (wrapped); read errors are returned as they are. After an
// error, Next keeps returning it.
func (r *Reader) Next() (data, raw []byte, err error) {
	for {
		if r.fatal != nil {
			return nil, nil, r.fatal
		}
		evEnd, ok := r.ready, r.ready > 0
		if !ok {
			evEnd, ok = r.scan()
		}
		r.ready = 0
		if ok {
			if evEnd-r.start > r.max {
				r.fatal = fmt.Errorf("%w (%d bytes)", ErrEventTooLarge, r.max)
				return nil, nil, r.fatal
			}
			raw = r.buf[r.start:evEnd]
			r.start, r.line, r.pos = evEnd, evEnd, evEnd
			return r.parse(raw), raw, nil
		}
		if r.end-r.start > r.max {
			r.fatal = fmt.Errorf("%w (%d bytes)", ErrEventTooLarge, r.max)
			return nil, nil, r.fatal
		}
		if r.err != nil {
			r.fatal = r.err
			if r.err == io.EOF && r.start < r.end {
				r.fatal = io.ErrUnexpectedEOF
				raw = r.buf[r.start:r.end]
				return r.parse(raw), raw, r.fatal
			}
			return nil, nil, r.fatal
		}
		r.fill()
	}
}

// Buffered reports whether Next would return without reading from the
// underlying reader: a whole event, or an error, is already at hand. A
// proxy uses it to flush once per burst of events that arrived together
// rather than once per event, without ever holding an event back.
func (r *Reader) Buffered() bool {
	if r.fatal != nil || r.err != nil {
		return true
	}
	if r.ready > 0 {
		return true
	}
	// scan resumes where it stopped, so its progress is kept for Next.
	evEnd, ok := r.scan()
	if ok {
		r.ready = evEnd
	}
	return ok
}

// scan looks for the blank line that ends the current event, resuming where
// the last call stopped. It returns the index just past it.
func (r *Reader) scan() (int, bool) {
	b := r.buf[:r.end]
	for i := r.pos; i < len(b); i++ {
		c := b[i]
		if c != '\n' && c != '\r' {
			continue
		}
		next := i + 1
		if c == '\r' {
			if next == len(b) && r.err == nil {
				r.pos = i // need the next byte to tell "\r" from "\r\n"
				return 0, false
			}
			if next < len(b) && b[next] == '\n' {
				next++
			}
		}
		if i == r.line { // blank line
			if r.line == r.start { // no event pending: skip it
				r.start = next
			} else {
				return next, true
			}
		}
		r.line = next
		i = next - 1
	}
	r.pos = len(b)
	return 0, false
}

// fill makes room and reads once from the underlying reader.
func (r *Reader) fill() {
	if r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.line -= r.start
		r.pos -= r.start
		r.end = n
		r.start = 0
	}
	if r.end == len(r.buf) {
		limit := r.max + 2 // the event, its lookahead byte, one byte to detect overflow
		if len(r.buf) >= limit {
			r.err = fmt.Errorf("%w (%d bytes)", ErrEventTooLarge, r.max)
			return
		}
		size := max(2*len(r.buf), initialBufSize)
		size = min(size, limit)
		nb := make([]byte, size)
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	for range maxEmptyReads {
		n, err := r.r.Read(r.buf[r.end:])
		if n < 0 || n > len(r.buf)-r.end {
			r.err = errors.New("sse: reader returned an invalid count")
			return
		}
		r.end += n
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// parse extracts the joined data lines of one event.
func (r *Reader) parse(raw []byte) []byte {
	var data []byte
	lines := 0
	for i := 0; i < len(raw); {
		j := i
		for j < len(raw) && raw[j] != '\n' && raw[j] != '\r' {
			j++
		}
		line := raw[i:j]
		if j < len(raw) {
			if raw[j] == '\r' && j+1 < len(raw) && raw[j+1] == '\n' {
				j++
			}
			j++
		}
		i = j
		if len(line) < 4 || string(line[:4]) != "data" {
			continue
		}
		var value []byte
		switch {
		case len(line) == 4:
			value = line[4:]
		case line[4] == ':':
			value = line[5:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		default:
			continue // a field such as "database:"
		}
		switch lines {
		case 0:
			data = value
		case 1:
			r.scratch = append(r.scratch[:0], data...)
			fallthrough
		default:
			r.scratch = append(r.scratch, '\n')
			r.scratch = append(r.scratch, value...)
			data = r.scratch
		}
		lines++
	}
	return data
}
