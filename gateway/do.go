package gateway

import (
	"context"
	"io"
	"strconv"
)

// Request is an API call made without HTTP, for Server.Do: background work
// (the Batch API, event consumers, offline evaluation, approved reviews)
// that needs the same routing, chain and dispatch as a client's request.
type Request struct {
	// Op is the operation, such as OpChat.
	Op Op
	// Body is the JSON body, as a client would send it. Do copies it.
	Body []byte
	// Header holds request headers that routes may match on.
	Header []Header
	// Principal is the caller on whose behalf the work runs (see
	// Server.Principal); its allow-list applies. Nil runs unrestricted, as
	// the gateway itself.
	Principal *Principal
	// RequestID names the exchange in logs and upstream requests; empty
	// makes one.
	RequestID string
	// ID is the object id of an operation on a stored object (the {id} of
	// GET /v1/responses/{id}).
	ID string
}

// Response is the answer of Server.Do.
type Response struct {
	// Status is the HTTP status the client would have got.
	Status int
	// ContentType is the answer's media type.
	ContentType string
	// Body is a buffered answer; an error answer is an OpenAI error body.
	Body []byte
	// Header holds the gateway's and the stages' response headers
	// (x-switchyard-route, x-switchyard-backend, ...).
	Header []Header
	// Usage is the usage over the exchange's model calls (for a stream:
	// known once Stream has been read to its end).
	Usage Usage
	// Stream is a streamed answer, nil for a buffered one. Read it to its
	// end or Close it: the exchange (and its upstream connection and
	// concurrency slot) is held until then.
	Stream *Stream
}

// Do runs req through the current generation's routing, chain and dispatch,
// as an HTTP request would be, and returns the answer. ctx bounds the
// exchange: its end cancels the upstream call, as a client's disconnect
// does. The error is the failure that made an error answer, if any; the
// Response is there either way.
func (s *Server) Do(ctx context.Context, req *Request) (*Response, error) {
	gen := s.gen.Load()
	if gen == nil { // the first generation is still being built
		e := &Error{Status: 503, Code: CodeUnavailable, Message: "the gateway is starting"}
		return &Response{Status: e.Status, ContentType: "application/json", Body: appendErrorBody(nil, e)}, e
	}
	x := s.begin(gen, req.Op)
	x.Principal = req.Principal
	x.header = append(x.header[:0], req.Header...)
	x.Body = append(x.Body[:0], req.Body...)
	x.pathArg = append(x.pathArg[:0], req.ID...)
	if req.RequestID != "" {
		x.RequestID = append(x.RequestID[:0], req.RequestID...)
	} else {
		x.RequestID = append(x.RequestID[:0], s.idPrefix[:]...)
		x.RequestID = append(x.RequestID, '-')
		x.RequestID = strconv.AppendUint(x.RequestID, s.idSeq.Add(1), 36)
	}
	if ctx.Done() != nil {
		xc := x.ctx
		xc.mu.Lock()
		xc.shared = true // the link may fire late: this context is not reused
		xc.mu.Unlock()
		x.stopLink = context.AfterFunc(ctx, func() { xc.cancel(context.Cause(ctx)) })
	}

	err := s.route(x, gen, x.header)
	if err == nil {
		err = s.admit(x, gen)
	}
	if err == nil {
		err = s.runChain(gen, x)
	}
	resp := &Response{}
	if err != nil {
		e := asError(err)
		x.Status = e.Status
		s.metrics.requestError(x, e.Code)
		resp.Status, resp.ContentType, resp.Body = e.Status, "application/json", x.appendError(nil, e)
		resp.Header = x.responseHeaders(nil)
		s.finish(x)
		return resp, e
	}
	resp.Status = x.Status
	resp.ContentType = string(x.ContentType)
	if resp.ContentType == "" {
		resp.ContentType = "application/json"
	}
	resp.Header = x.responseHeaders(nil)
	if x.Streaming && x.source != nil {
		resp.Stream = &Stream{x: x, resp: resp}
		return resp, nil
	}
	resp.Body = append([]byte(nil), x.RespBody...)
	resp.Usage = x.TotalUsage()
	s.finish(x)
	return resp, nil
}

// responseHeaders appends the headers the client would get from the
// gateway and the stages.
func (x *Exchange) responseHeaders(dst []Header) []Header {
	if x.Route != nil {
		dst = append(dst, Header{"X-Switchyard-Route", x.Route.Name})
	}
	if x.Backend != "" {
		dst = append(dst, Header{"X-Switchyard-Backend", x.Backend})
	}
	dst = append(dst, x.ResponseHeaders...)
	var buf [32]byte
	x.rateLimitHeaders(buf[:0], func(k string, v []byte) { dst = append(dst, Header{k, string(v)}) })
	return dst
}

// Stream is a streamed answer of Server.Do, as a client would receive it:
// SSE-framed events, after the stream observers.
type Stream struct {
	x    *Exchange
	resp *Response
	buf  []byte
}

// Next returns the bytes of the next events (one or more framed events;
// possibly none, when an observer held one back), valid until the next
// call, and io.EOF after the last. An abnormal end arrives as an error
// event before io.EOF, as a client would see it.
func (st *Stream) Next() ([]byte, error) {
	if st.x == nil {
		return nil, io.EOF
	}
	out, err := st.x.relayNext()
	st.buf = append(st.buf[:0], out...)
	if err != nil {
		st.end()
		if len(st.buf) > 0 {
			return st.buf, nil
		}
		return nil, io.EOF
	}
	return st.buf, nil
}

// Close ends the stream (early, if it was not read to its end: the
// upstream call is then cancelled) and the exchange.
func (st *Stream) Close() error {
	if st.x != nil {
		st.x.endRelay(ErrClientGone)
		st.end()
	}
	return nil
}

func (st *Stream) end() {
	x := st.x
	st.x = nil
	st.resp.Usage = x.TotalUsage()
	x.srv.finish(x)
}

// Principal returns the principal of the active key with id keyID (from
// the config or the store), for Server.Do work on a key's behalf, or nil.
func (s *Server) Principal(keyID string) *Principal {
	for _, p := range s.gen.Load().keys {
		if p.KeyID == keyID {
			return p
		}
	}
	if kr := s.keys.Load(); kr != nil {
		for _, p := range kr.byHash {
			if p.KeyID == keyID {
				return p
			}
		}
	}
	return nil
}
