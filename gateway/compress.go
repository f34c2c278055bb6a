package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// writeBody sets a buffered response body, compressed with zstd or gzip when
// the client accepts it and the body is large enough to be worth it.
func (s *Server) writeBody(ctx *fasthttp.RequestCtx, x *Exchange) {
	body := x.RespBody
	c := s.gen.Load().Config.Server.Compression
	if (c.Enabled != nil && !*c.Enabled) || len(body) < int(c.MinSize) || len(ctx.Response.Header.ContentEncoding()) > 0 {
		ctx.SetBody(body)
		return
	}
	switch acceptEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding)) {
	case encZstd:
		ctx.Response.Header.SetContentEncoding("zstd")
		ctx.Response.Header.Add(fasthttp.HeaderVary, fasthttp.HeaderAcceptEncoding)
		x.tmp = fasthttp.AppendZstdBytesLevel(x.tmp[:0], body, fasthttp.CompressZstdBestSpeed)
		ctx.SetBody(x.tmp)
	case encGzip:
		ctx.Response.Header.SetContentEncoding("gzip")
		ctx.Response.Header.Add(fasthttp.HeaderVary, fasthttp.HeaderAcceptEncoding)
		x.tmp = fasthttp.AppendGzipBytesLevel(x.tmp[:0], body, fasthttp.CompressBestSpeed)
		ctx.SetBody(x.tmp)
	default:
		ctx.SetBody(body)
	}
}

type encoding uint8

const (
	encIdentity encoding = iota
	encGzip
	encZstd
)

// acceptEncoding picks zstd when offered, else gzip, else identity. A coding
// offered with q=0 is refused.
func acceptEncoding(h []byte) encoding {
	best := encIdentity
	for len(h) > 0 {
		var part []byte
		if i := bytes.IndexByte(h, ','); i >= 0 {
			part, h = h[:i], h[i+1:]
		} else {
			part, h = h, nil
		}
		name := part
		q0 := false
		if i := bytes.IndexByte(part, ';'); i >= 0 {
			name = part[:i]
			params := bytes.ReplaceAll(part[i+1:], []byte(" "), nil)
			q0 = bytes.HasPrefix(params, []byte("q=0")) && !bytes.ContainsAny(params[3:], "123456789")
		}
		name = bytes.TrimSpace(name)
		if q0 {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("zstd")):
			best = encZstd
		case bytes.EqualFold(name, []byte("gzip")) && best == encIdentity:
			best = encGzip
		}
	}
	return best
}
