package sim

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"switchyard/internal/netutil"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Embeddings: each word (a maximal run of ASCII letters and digits, lower-
// cased; every other non-space rune is a word of its own; a token id is a
// word) has a pseudo-random vector with components uniform in [-1, 1), drawn
// from a generator seeded by the word's hash. A text's embedding is the sum of
// its words' vectors, normalised to unit length. Texts that share words thus
// point in similar directions; unrelated texts are nearly orthogonal in
// high dimensions. A text without words embeds as its hash's vector.

// embed writes the embedding of in into v (len(v) is the dimension).
func embed(v []float32, in textInput) {
	clear(v)
	words := 0
	add := func(h uint64) {
		words++
		r := splitmix64(h)
		for i := range v {
			v[i] += float32(int64(r.next()>>11)-(1<<52)) / (1 << 52)
		}
	}
	if in.isID {
		for _, id := range in.ids {
			add(uint64(id)*0xBF58476D1CE4E5B9 + 7)
		}
	} else {
		s := in.text
		for i := 0; i < len(s); {
			c := s[i]
			switch {
			case c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
				i++
			case isWordByte(c):
				h := uint64(fnvOffset)
				for ; i < len(s) && isWordByte(s[i]); i++ {
					b := s[i]
					if b >= 'A' && b <= 'Z' {
						b += 'a' - 'A'
					}
					h = (h ^ uint64(b)) * fnvPrime
				}
				add(h)
			default:
				r, n := utf8.DecodeRuneInString(s[i:])
				add(uint64(r)*0x9E3779B97F4A7C15 + 3)
				i += n
			}
		}
	}
	if words == 0 {
		add(hashString(in.text) ^ 0xA5A5A5A5)
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	norm := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= norm
	}
}

func (s *Server) embeddings(ctx *fasthttp.RequestCtx) {
	var r embeddingRequest
	if e := decodeJSON(ctx.PostBody(), &r); e != nil {
		s.writeError(ctx, e)
		return
	}
	if e := s.checkModel(r.Model, true); e != nil {
		s.writeError(ctx, e)
		return
	}
	inputs, e := parseTextInputs(r.Input, "input")
	if e != nil {
		s.writeError(ctx, e)
		return
	}
	if len(inputs) > s.o.EmbedMaxInputs {
		s.writeError(ctx, badRequest("input", "too many inputs: %d (at most %d)", len(inputs), s.o.EmbedMaxInputs))
		return
	}
	b64 := false
	switch r.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		s.writeError(ctx, badRequest("encoding_format", "encoding_format must be float or base64, got %q", r.EncodingFormat))
		return
	}
	dim := s.o.EmbedDim
	if r.Dimensions != nil {
		if *r.Dimensions < 1 || *r.Dimensions > s.o.EmbedDim {
			s.writeError(ctx, badRequest("dimensions", "dimensions must be in 1..%d, got %d", s.o.EmbedDim, *r.Dimensions))
			return
		}
		dim = *r.Dimensions
	}
	f, e := s.pickFault(ctx)
	if e != nil {
		s.writeError(ctx, e)
		return
	}
	if s.immediateFault(ctx, f) {
		return
	}
	sl := &sleeper{conn: ctx.Conn(), check: s.o.DisconnectCheck}
	defer sl.stop()
	if f == faultStall {
		if err := sl.sleep(s.ctx, s.o.Stall); err != nil {
			s.abandon(ctx, sl, err)
			return
		}
	}
	factor := 1.0
	if f == faultSlow {
		factor = s.o.SlowFactor
	}
	if err := s.embedCost(sl, len(inputs), factor); err != nil {
		s.abandon(ctx, sl, err)
		return
	}
	tokens := 0
	for _, in := range inputs {
		if in.isID {
			tokens += len(in.ids)
		} else {
			tokens += CountTokens(in.text)
		}
	}
	s.m.embedInputs.Add(len(inputs))
	vec := make([]float32, dim)
	body := append(make([]byte, 0, 256+len(inputs)*dim*12), `{"id":`...)
	body = appendJSONString(body, s.newID("embd-"))
	body = append(body, `,"object":"list","created":`...)
	body = strconv.AppendInt(body, time.Now().Unix(), 10)
	body = append(body, `,"model":`...)
	body = appendJSONString(body, r.Model)
	body = append(body, `,"data":[`...)
	var raw []byte
	for i, in := range inputs {
		embed(vec, in)
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"object":"embedding","index":`...)
		body = strconv.AppendInt(body, int64(i), 10)
		body = append(body, `,"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, x := range vec {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
			}
			body = append(body, '"')
			body = base64.StdEncoding.AppendEncode(body, raw)
			body = append(body, '"')
		} else {
			body = append(body, '[')
			for j, x := range vec {
				if j > 0 {
					body = append(body, ',')
				}
				body = strconv.AppendFloat(body, float64(x), 'g', -1, 32)
			}
			body = append(body, ']')
		}
		body = append(body, '}')
	}
	body = append(body, `],"usage":`...)
	body = appendUsage(body, usage{prompt: tokens, completion: -1}, false)
	body = append(body, '}')
	if f == faultDrop {
		dropResponse(ctx, body)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// embedCost models an embeddings call: at most embed-concurrency calls
// execute at once, each costing embed-call-overhead + n * embed-per-item.
func (s *Server) embedCost(sl *sleeper, n int, factor float64) error {
	d := s.o.EmbedCallOverhead + time.Duration(n)*s.o.EmbedPerItem
	return s.callCost(s.embedSem, nil, sl, s.eng.scale(time.Duration(float64(d)*factor)))
}

// callCost holds one slot of sem for d, the modelled time of a call; a zero
// d takes no slot. While it waits for a slot, waiting (when not nil) counts
// it. The wait and the sleep end early when the server closes or the client
// disconnects.
func (s *Server) callCost(sem chan struct{}, waiting *atomic.Int64, sl *sleeper, d time.Duration) error {
	if d == 0 {
		return nil
	}
	select {
	case sem <- struct{}{}:
	default:
		if waiting != nil {
			waiting.Add(1)
		}
		err := s.waitSem(sem, sl)
		if waiting != nil {
			waiting.Add(-1)
		}
		if err != nil {
			return err
		}
	}
	defer func() { <-sem }()
	return sl.sleep(s.ctx, d)
}

// waitSem takes a slot of sem, checking every disconnect-check that the
// client is still there.
func (s *Server) waitSem(sem chan struct{}, sl *sleeper) error {
	if !sl.polling() {
		select {
		case sem <- struct{}{}:
			return nil
		case <-s.ctx.Done():
			return errClosed
		}
	}
	for {
		select {
		case sem <- struct{}{}:
			sl.stop()
			return nil
		case <-s.ctx.Done():
			sl.stop()
			return errClosed
		case <-sl.timer(sl.check):
			if !netutil.Alive(sl.conn) {
				return errClientGone
			}
		}
	}
}
