package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/backends"
	"switchyard/internal/jsonscan"
	"switchyard/internal/sse"
)

// errNoDone is the cause of a chat or completions stream that ended
// without its [DONE] event.
var errNoDone = errors.New("the stream closed before [DONE]")

// errObserverPanic is the end cause observers get after a panic.
var errObserverPanic = errors.New("internal error while relaying the stream")

// relay is the per-stream state of the relay, kept in the Exchange.
type relay struct {
	seen    bool // an event was read (the next ones count for inter-token latency)
	sawDone bool
	ended   bool // observers had their OnEnd; the source is closed
	last    time.Time
	out     []byte   // what goes to the client for the current event
	obsBuf  [][]byte // each observer's own output buffer
	split   []byte   // a multi-line event's data, joined
	ttftH   *metrics.PrometheusHistogram
	itlH    *metrics.PrometheusHistogram
}

// writeStream relays the exchange's stream to the client, event by event,
// flushing whenever no further event has already arrived. It runs after the
// handler returned (fasthttp's stream writer) and owns the exchange until it
// returns: it finishes it. The client's socket stays watched until then, so
// a client that leaves before the first token, or in a long gap between
// events, cancels the upstream too.
func (x *Exchange) writeStream(w *bufio.Writer) {
	srv := x.srv
	defer srv.finish(x)
	defer func() {
		// A panic in a stream observer ends this stream, not the process.
		if p := recover(); p != nil {
			srv.log.Error("panic while relaying a stream", "request_id", string(x.RequestID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			x.endRelay(errObserverPanic)
			x.tmp = sse.AppendErrorEvent(x.tmp[:0], "internal error", "api_error", string(CodeInternal))
			_, _ = w.Write(x.tmp)
			_ = w.Flush()
		}
	}()
	for {
		out, err := x.relayNext()
		if len(out) > 0 {
			if _, werr := w.Write(out); werr != nil {
				x.clientLeft()
				return
			}
		}
		if err != nil {
			if err == ErrClientGone {
				return
			}
			if ferr := w.Flush(); ferr != nil {
				x.clientLeft()
			}
			return
		}
		// Flush unless the next event is already here: events that arrived
		// together leave together, and none waits for the upstream.
		if b, ok := x.source.(bufferedSource); ok && b.Buffered() {
			continue
		}
		if ferr := w.Flush(); ferr != nil {
			x.clientLeft()
			return
		}
	}
}

// relayNext reads the next event of the exchange's source, runs it through
// the stream observers and returns what the client gets for it (possibly
// nothing). At the end of the stream it returns the final bytes (the
// observers' last events, an error event for an abnormal end) and a non-nil
// error: io.EOF for a clean end, ErrClientGone when the client left.
func (x *Exchange) relayNext() ([]byte, error) {
	r := &x.relay
	m := x.srv.metrics
	if r.ended {
		return nil, io.EOF
	}
	data, raw, err := x.source.Next()
	if err != nil {
		if x.clientGone() {
			x.clientLeft()
			return nil, ErrClientGone
		}
		cause := err
		if err == io.EOF {
			cause = nil
			if !r.sawDone && x.Op.Operation().DoneEvent {
				cause = errNoDone // a bare close looks like success to the SDKs
			}
		}
		out := x.endObservers(r.out[:0], cause)
		x.closeSource()
		r.ended = true
		if cause != nil {
			out = x.appendAbnormalEnd(out, cause)
		}
		r.out = out
		return out, io.EOF
	}
	now := time.Now()
	if !r.seen {
		x.recordStored(data)
		r.ttftH, r.itlH = m.streamHistograms(x)
		r.ttftH.Update(now.Sub(x.Start).Seconds())
		r.seen = true
	} else if len(data) > 0 {
		r.itlH.Update(now.Sub(r.last).Seconds())
	}
	r.last = now
	if x.hideUsage && x.source == EventSource(&x.up) && x.up.usageEvent && usageOnly(data) {
		return nil, nil // asked for by the gateway, not by the client
	}
	if sse.IsDone(data) {
		r.sawDone = true
	}
	if len(x.observers) == 0 {
		if raw != nil {
			return raw, nil
		}
		r.out = sse.AppendEvent(r.out[:0], data)
		return r.out, nil
	}
	out, err := x.observe(data)
	var end *EndStream
	if errors.As(err, &end) {
		// An observer ends the stream the OpenAI way (a content filter):
		// its final events go out, and the upstream is dropped (which
		// stops its generation).
		_ = x.endObservers(nil, err)
		x.closeSource()
		r.ended, r.sawDone = true, true
		r.out = append(r.out[:0], end.Events...)
		return r.out, io.EOF
	}
	if err != nil {
		// An observer refused the stream: end it with an error event and
		// drop the upstream (which stops its generation).
		_ = x.endObservers(nil, err)
		x.closeSource()
		r.ended = true
		e := asError(err)
		r.out = sse.AppendErrorEvent(r.out[:0], e.Message, errorType(e.Code), string(e.Code))
		return r.out, io.EOF
	}
	return out, nil
}

// observe passes one event through the observers in order: each one's
// output events are the next one's input. It returns the framed events for
// the client.
func (x *Exchange) observe(data []byte) ([]byte, error) {
	r := &x.relay
	for len(r.obsBuf) < len(x.observers) {
		r.obsBuf = append(r.obsBuf, nil)
	}
	r.out = sse.AppendEvent(r.out[:0], data)
	in := r.out
	for i, o := range x.observers {
		dst := r.obsBuf[i][:0]
		for rest := in; len(rest) > 0; {
			var ev []byte
			ev, rest = r.nextEvent(rest)
			var err error
			if dst, err = o.OnEvent(x, dst, ev); err != nil {
				r.obsBuf[i] = dst
				return nil, err
			}
		}
		r.obsBuf[i] = dst
		in = dst
	}
	return in, nil
}

// nextEvent splits the first framed event off b (as AppendEvent writes
// them) and returns its data.
func (r *relay) nextEvent(b []byte) (data, rest []byte) {
	end := bytes.Index(b, []byte("\n\n"))
	if end < 0 {
		end = len(b)
		rest = nil
	} else {
		rest = b[end+2:]
	}
	ev := b[:end]
	if bytes.IndexByte(ev, '\n') < 0 {
		return bytes.TrimPrefix(ev, []byte("data: ")), rest
	}
	r.split = r.split[:0]
	for i, line := range bytes.Split(ev, []byte("\n")) {
		if i > 0 {
			r.split = append(r.split, '\n')
		}
		r.split = append(r.split, bytes.TrimPrefix(line, []byte("data: "))...)
	}
	return r.split, rest
}

// endObservers tells every observer, once, how the stream ended, and
// appends what they release to dst. cause is nil for a clean end.
func (x *Exchange) endObservers(dst []byte, cause error) []byte {
	r := &x.relay
	if r.ended {
		return dst
	}
	for len(r.obsBuf) < len(x.observers) {
		r.obsBuf = append(r.obsBuf, nil)
	}
	for i, o := range x.observers {
		out := x.safeOnEnd(o, r.obsBuf[i][:0], cause)
		r.obsBuf[i] = out
		// What an observer releases at the end passes the ones after it
		// too, as events.
		for j := i + 1; j < len(x.observers) && len(out) > 0; j++ {
			var next []byte
			for rest := out; len(rest) > 0; {
				var ev []byte
				ev, rest = r.nextEvent(rest)
				next, _ = x.observers[j].OnEvent(x, next, ev)
			}
			out = next
		}
		dst = append(dst, out...)
	}
	return dst
}

// safeOnEnd calls o.OnEnd; a panic in it is logged and ignored.
func (x *Exchange) safeOnEnd(o StreamObserver, dst []byte, cause error) (out []byte) {
	defer func() {
		if p := recover(); p != nil {
			x.srv.log.Error("panic in a stream observer's OnEnd", "request_id", string(x.RequestID), "panic", fmt.Sprint(p))
			out = dst
		}
	}()
	return o.OnEnd(x, dst, cause)
}

// endRelay ends the relay without a client to tell (a panic, the client
// gone, an exchange ended before its stream was read).
func (x *Exchange) endRelay(cause error) {
	if x.source == nil {
		return
	}
	_ = x.endObservers(nil, cause)
	x.relay.ended = true
	x.closeSource()
}

// clientGone reports whether the watcher found the client gone.
func (x *Exchange) clientGone() bool {
	return x.ctx.Err() == ErrClientGone
}

// clientLeft records a client that went away mid-stream and ends the relay.
func (x *Exchange) clientLeft() {
	if x.Status == StatusClientClosed {
		return
	}
	x.Status = StatusClientClosed
	x.srv.metrics.clientGone(x)
	x.endRelay(ErrClientGone)
}

// appendAbnormalEnd appends the error event for a stream that failed or
// ended early. The client learns the backend and the kind of failure; the
// details go to the log.
func (x *Exchange) appendAbnormalEnd(dst []byte, err error) []byte {
	reason := "the connection was lost"
	switch {
	case err == errNoDone:
		reason = "it closed before [DONE]"
	case errors.Is(err, backends.ErrIdleTimeout):
		reason = "its idle timeout passed"
	case errors.Is(err, backends.ErrTotalTimeout):
		reason = "its total timeout passed"
	case errors.Is(err, sse.ErrEventTooLarge):
		reason = "an event was too large"
	}
	from := "the stream"
	if x.Backend != "" {
		from = "the stream from backend " + x.Backend
	}
	var e *Error
	if errors.As(err, &e) {
		reason = e.Message
	}
	if x.ctx.Err() == context.DeadlineExceeded {
		reason = "the route's timeout passed"
	}
	x.srv.log.Warn("stream ended abnormally", "request_id", string(x.RequestID), "backend", x.Backend, "error", err.Error())
	x.srv.metrics.streamError(x)
	return sse.AppendErrorEvent(dst, from+" ended abnormally: "+reason, "api_error", string(CodeUpstream))
}

// usageOnly reports whether a stream chunk is the usage chunk alone, with
// "choices": [] (as include_usage sends it), rather than a content chunk
// that also carries usage.
func usageOnly(data []byte) bool {
	c, ok := jsonscan.Lookup(data, "choices")
	if !ok {
		return true
	}
	c = bytes.TrimSpace(c)
	return len(c) >= 2 && c[0] == '[' && len(bytes.TrimSpace(c[1:len(c)-1])) == 0
}
