package gateway

import (
	"context"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"switchyard/internal/jsonscan"
	"switchyard/internal/oip"
)

// Code is the small fixed set of error kinds. A Code is the OpenAI error
// "type" (or "code") written to the client and the "reason" label of the
// error metrics.
type Code string

// The error codes of the gateway.
const (
	CodeInvalidRequest  Code = "invalid_request_error"
	CodeAuthentication  Code = "authentication_error"
	CodePermission      Code = "permission_error"
	CodeNotFound        Code = "model_not_found"
	CodeBodyTooLarge    Code = "request_too_large"
	CodeRateLimited     Code = "rate_limit_exceeded"
	CodeUpstream        Code = "upstream_error"
	CodeUnavailable     Code = "service_unavailable"
	CodeUpstreamTimeout Code = "upstream_timeout"
	CodeInternal        Code = "internal_error"
	CodeClientClosed    Code = "client_closed"
	// CodeInvalidAPIKey is a missing, malformed, unknown or revoked key
	// (OpenAI's 401 code).
	CodeInvalidAPIKey Code = "invalid_api_key"
	// CodeInsufficientQuota is a spent budget (OpenAI's 429 code and type).
	CodeInsufficientQuota Code = "insufficient_quota"
)

// StatusClientClosed is recorded for exchanges whose client went away
// before the answer (nginx's 499); nobody receives it.
const StatusClientClosed = 499

// Error is a failure that ends an exchange with an HTTP status and an
// OpenAI-style error body. Stages return it unchanged up the chain.
type Error struct {
	Status  int
	Code    Code
	Param   string // the request field at fault, if any
	Message string
	// Type overrides the body's "type" (OpenAI's rate-limit answers say
	// "requests" or "tokens" there); empty derives it from Code.
	Type       string
	RetryAfter int // seconds; sent as retry-after on 429 and 503 when > 0
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// asError turns any error into an *Error (500 for unknown ones).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	// A stage that returns its exchange context's error: the client left,
	// or the route's timeout passed.
	switch {
	case errors.Is(err, ErrClientGone):
		return &Error{Status: StatusClientClosed, Code: CodeClientClosed, Message: "the client closed the connection", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: fasthttp.StatusGatewayTimeout, Code: CodeUpstreamTimeout, Message: "the route's timeout passed", Err: err}
	}
	return &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

// errorType maps a code to OpenAI's "type" values as the SDKs see them.
func errorType(c Code) string {
	switch c {
	case CodeInvalidRequest, CodeNotFound, CodeBodyTooLarge, CodeInvalidAPIKey:
		return "invalid_request_error"
	case CodeInsufficientQuota:
		return "insufficient_quota"
	case CodeAuthentication:
		return "authentication_error"
	case CodePermission:
		return "permission_error"
	case CodeRateLimited:
		return "rate_limit_error"
	default:
		return "api_error"
	}
}

// appendErrorBody appends {"error":{"message","type","param","code"}}. The
// message is e.Message alone: e.Err holds details for the log (an upstream's
// body, dial addresses) that clients must not see.
func appendErrorBody(dst []byte, e *Error) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = jsonscan.AppendString(dst, e.Message)
	dst = append(dst, `,"type":`...)
	if e.Type != "" {
		dst = jsonscan.AppendString(dst, e.Type)
	} else {
		dst = jsonscan.AppendString(dst, errorType(e.Code))
	}
	dst = append(dst, `,"param":`...)
	if e.Param == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, e.Param)
	}
	dst = append(dst, `,"code":`...)
	dst = jsonscan.AppendString(dst, string(e.Code))
	return append(dst, "}}"...)
}

// appendError appends e as the error body of x's operation: an OpenAI
// error, or the Open Inference Protocol's {"error": "..."}.
func (x *Exchange) appendError(dst []byte, e *Error) []byte {
	if x.Op.Operation().KServe {
		return oip.AppendError(dst, e.Message)
	}
	return appendErrorBody(dst, e)
}

// writeKServeError writes e as an Open Inference Protocol error.
func writeKServeError(ctx *fasthttp.RequestCtx, e *Error) {
	writeErrorBody(ctx, e, oip.AppendError(nil, e.Message))
}

// writeError writes e as the response of ctx.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	writeErrorBody(ctx, e, appendErrorBody(nil, e))
}

// writeErrorBody writes e's status, its retry-after, and body.
func writeErrorBody(ctx *fasthttp.RequestCtx, e *Error, body []byte) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	if e.RetryAfter > 0 && (e.Status == fasthttp.StatusTooManyRequests || e.Status == fasthttp.StatusServiceUnavailable) {
		ctx.Response.Header.Set("retry-after", strconv.Itoa(e.RetryAfter))
	}
	ctx.SetBody(body)
}
