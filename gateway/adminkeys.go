package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
	"switchyard/internal/jsonscan"
	"switchyard/internal/spend"
	"switchyard/internal/store"
)

// The admin API's keys and usage endpoints (behind the admin token):
//
//	POST   /admin/keys              make a key; the answer holds its plaintext, once
//	GET    /admin/keys              list keys (config and store), never secrets
//	GET    /admin/keys/{id}         one key
//	DELETE /admin/keys/{id}         revoke a store key
//	POST   /admin/keys/{id}/rotate  new plaintext for a store key; the old stops working
//	GET    /admin/usage             spend and tokens by key and tenant per period

// keyRequest is the body of POST /admin/keys.
type keyRequest struct {
	ID string `json:"id,omitempty"`
	keySettings
}

// keyView is a key as the admin API shows it.
type keyView struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	// Source is "config" (keys[] in the file; change it there) or "store"
	// (made through this API).
	Source string `json:"source"`
	// Key is the plaintext, only in the answers of create and rotate.
	Key    string `json:"key,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	keySettings
	CreatedAt *time.Time `json:"created_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// serveAdminKeys answers the /admin/keys and /admin/usage paths; it
// reports false for other paths.
func (s *Server) serveAdminKeys(ctx *fasthttp.RequestCtx) bool {
	path := string(ctx.Path())
	switch {
	case path == "/admin/usage":
		if methodAllowed(ctx, "GET, HEAD") {
			s.serveUsage(ctx)
		}
		return true
	case path == "/admin/keys":
		switch {
		case ctx.IsPost():
			s.createKey(ctx)
		case ctx.IsGet() || ctx.IsHead():
			s.listKeys(ctx)
		default:
			writeError(ctx, errMethod(ctx, "GET, POST"))
		}
		return true
	case strings.HasPrefix(path, "/admin/keys/"):
		rest := path[len("/admin/keys/"):]
		if id, ok := strings.CutSuffix(rest, "/rotate"); ok {
			if !ctx.IsPost() {
				writeError(ctx, errMethod(ctx, "POST"))
				return true
			}
			s.rotateKey(ctx, id)
			return true
		}
		switch {
		case ctx.IsGet() || ctx.IsHead():
			s.getKey(ctx, rest)
		case ctx.IsDelete():
			s.revokeKey(ctx, rest)
		default:
			writeError(ctx, errMethod(ctx, "GET, DELETE"))
		}
		return true
	}
	return false
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, &Error{Status: fasthttp.StatusInternalServerError, Code: CodeInternal, Message: "rendering the answer", Err: err})
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func badRequest(msg string) *Error {
	return &Error{Status: fasthttp.StatusBadRequest, Code: CodeInvalidRequest, Message: msg}
}

func (s *Server) needStore() *Error {
	if s.store == nil {
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the durable store is not open"}
	}
	return nil
}

// decodeStrict decodes a JSON object body into v: unknown fields,
// duplicate keys and trailing data are errors.
func decodeStrict(body []byte, v any) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty: send a JSON object")
	}
	// The scanner finds duplicated top-level keys (encoding/json would
	// keep the last); its other findings are left to the decoder.
	var f jsonscan.Fields
	if err := jsonscan.Scan(body, &f); err != nil {
		var se *jsonscan.Error
		if errors.As(err, &se) && se.Duplicate() {
			return badRequest(fmt.Sprintf("the body has the key %q more than once", se.Field))
		}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badRequest("invalid body: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if d.More() {
		return badRequest("invalid body: data after the JSON object")
	}
	return nil
}

// validKeyID checks an id given by the caller.
func validKeyID(id string) string {
	if id == "" || len(id) > 64 {
		return "id: want 1 to 64 characters"
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Sprintf("id: %q has a character other than letters, digits, '-', '_' and '.'", id)
		}
	}
	return ""
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newPlaintext makes a key: "sk-sy-" and 40 random characters (238 bits).
func newPlaintext() (string, error) {
	var b [40]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	out := make([]byte, 0, 46)
	out = append(out, "sk-sy-"...)
	for _, c := range b {
		// 62 letters: reject-free bias is < 2^-2 per character; draw again
		// for the 8 values past 248 to keep it uniform.
		for c >= 248 {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				return "", err
			}
			c = one[0]
		}
		out = append(out, keyAlphabet[int(c)%62])
	}
	return string(out), nil
}

func newKeyID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	out := []byte("key_")
	for _, c := range b {
		out = append(out, keyAlphabet[int(c)%62])
	}
	return string(out), nil
}

func keyPrefix(plain string) string { return plain[:10] }

func (s *Server) storeCtx(*fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, 10*time.Second)
}

func periodOf(name string) spend.Period {
	if name == config.PeriodDay {
		return spend.Day
	}
	return spend.Month
}

func (s *Server) createKey(ctx *fasthttp.RequestCtx) {
	if e := s.needStore(); e != nil {
		writeError(ctx, e)
		return
	}
	var req keyRequest
	if e := decodeStrict(ctx.Request.Body(), &req); e != nil {
		writeError(ctx, e)
		return
	}
	gen := s.gen.Load()
	var problems []string
	if req.ID != "" {
		if p := validKeyID(req.ID); p != "" {
			problems = append(problems, p)
		}
	}
	problems = append(problems, req.keySettings.check(gen)...)
	if len(problems) > 0 {
		writeError(ctx, badRequest("invalid key: "+strings.Join(problems, "; ")))
		return
	}
	if req.ID == "" {
		id, err := newKeyID()
		if err != nil {
			writeError(ctx, &Error{Status: 500, Code: CodeInternal, Message: "making a key id", Err: err})
			return
		}
		req.ID = id
	}
	for _, p := range gen.keys {
		if p.KeyID == req.ID {
			writeError(ctx, badRequest(fmt.Sprintf("a key with id %q is defined in the config file", req.ID)))
			return
		}
	}
	plain, err := newPlaintext()
	if err != nil {
		writeError(ctx, &Error{Status: 500, Code: CodeInternal, Message: "making a key", Err: err})
		return
	}
	spec, _ := json.Marshal(req.keySettings)
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	now := time.Now().UTC()
	k, err := s.store.CreateKey(sctx, store.Key{ID: req.ID, Tenant: req.Tenant, Hash: sha256.Sum256([]byte(plain)),
		Prefix: keyPrefix(plain), Spec: spec, CreatedAt: now, UpdatedAt: now})
	switch {
	case errors.Is(err, store.ErrExists):
		writeError(ctx, badRequest(fmt.Sprintf("a key with id %q exists (ids stay taken after revocation)", req.ID)))
		return
	case err != nil:
		s.storeFailed(ctx, "creating a key", err)
		return
	}
	_ = s.syncKeys(sctx) // this replica sees it at once; others within store.key_sync
	s.log.Info("admin: key created", "key", k.ID, "tenant", k.Tenant)
	v := viewOfStored(k)
	v.Key = plain
	writeJSON(ctx, fasthttp.StatusCreated, v)
}

func (s *Server) storeFailed(ctx *fasthttp.RequestCtx, what string, err error) {
	s.log.Error("admin: "+what, "error", err.Error())
	writeError(ctx, &Error{Status: fasthttp.StatusServiceUnavailable, Code: CodeUnavailable, Message: what + " failed: the store did not answer; retry"})
}

func viewOfStored(k store.Key) keyView {
	v := keyView{ID: k.ID, Object: "key", Source: "store", Prefix: k.Prefix}
	_ = json.Unmarshal(k.Spec, &v.keySettings)
	if !k.CreatedAt.IsZero() {
		t := k.CreatedAt.UTC()
		v.CreatedAt = &t
	}
	if !k.RevokedAt.IsZero() {
		t := k.RevokedAt.UTC()
		v.RevokedAt = &t
	}
	return v
}

func viewOfConfig(k *config.Key) keyView {
	return keyView{ID: k.ID, Object: "key", Source: "config", keySettings: keySettings{Tenant: k.Tenant, Models: k.Models,
		Priority: k.Priority, Limits: k.Limits, ModelLimits: k.ModelLimits, Budget: k.Budget, Metadata: k.Metadata}}
}

// allKeys returns the config's keys and the store's, by id.
func (s *Server) allKeys(ctx *fasthttp.RequestCtx) ([]keyView, error) {
	gen := s.gen.Load()
	var out []keyView
	for i := range gen.Config.Keys {
		out = append(out, viewOfConfig(&gen.Config.Keys[i]))
	}
	if s.store != nil {
		sctx, cancel := s.storeCtx(ctx)
		defer cancel()
		ks, err := s.store.ListKeys(sctx)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			out = append(out, viewOfStored(k))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *Server) listKeys(ctx *fasthttp.RequestCtx) {
	ks, err := s.allKeys(ctx)
	if err != nil {
		s.storeFailed(ctx, "listing keys", err)
		return
	}
	if ks == nil {
		ks = []keyView{}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"object": "list", "data": ks})
}

func errNoKey(id string) *Error {
	return &Error{Status: fasthttp.StatusNotFound, Code: CodeInvalidRequest, Message: fmt.Sprintf("no key with id %q", id)}
}

func (s *Server) configKey(id string) *config.Key {
	gen := s.gen.Load()
	for i := range gen.Config.Keys {
		if gen.Config.Keys[i].ID == id {
			return &gen.Config.Keys[i]
		}
	}
	return nil
}

func (s *Server) getKey(ctx *fasthttp.RequestCtx, id string) {
	if k := s.configKey(id); k != nil {
		writeJSON(ctx, fasthttp.StatusOK, viewOfConfig(k))
		return
	}
	if s.store == nil {
		writeError(ctx, errNoKey(id))
		return
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	k, err := s.store.GetKey(sctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(ctx, errNoKey(id))
	case err != nil:
		s.storeFailed(ctx, "reading a key", err)
	default:
		writeJSON(ctx, fasthttp.StatusOK, viewOfStored(k))
	}
}

func errConfigKey(id, what string) *Error {
	return &Error{Status: fasthttp.StatusConflict, Code: CodeInvalidRequest,
		Message: fmt.Sprintf("key %q is defined in the config file; %s it there (keys[].sha256) and reload", id, what)}
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, id string) {
	if s.configKey(id) != nil {
		writeError(ctx, errConfigKey(id, "remove"))
		return
	}
	if e := s.needStore(); e != nil {
		writeError(ctx, errNoKey(id))
		return
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	k, err := s.store.RevokeKey(sctx, id, time.Now().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(ctx, errNoKey(id))
		return
	case errors.Is(err, store.ErrRevoked):
		writeError(ctx, &Error{Status: fasthttp.StatusConflict, Code: CodeInvalidRequest, Message: fmt.Sprintf("key %q is already revoked", id)})
		return
	case err != nil:
		s.storeFailed(ctx, "revoking a key", err)
		return
	}
	_ = s.syncKeys(sctx)
	s.log.Info("admin: key revoked", "key", id)
	writeJSON(ctx, fasthttp.StatusOK, viewOfStored(k))
}

func (s *Server) rotateKey(ctx *fasthttp.RequestCtx, id string) {
	if s.configKey(id) != nil {
		writeError(ctx, errConfigKey(id, "change"))
		return
	}
	if e := s.needStore(); e != nil {
		writeError(ctx, errNoKey(id))
		return
	}
	plain, err := newPlaintext()
	if err != nil {
		writeError(ctx, &Error{Status: 500, Code: CodeInternal, Message: "making a key", Err: err})
		return
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	k, err := s.store.RotateKey(sctx, id, sha256.Sum256([]byte(plain)), keyPrefix(plain), time.Now().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(ctx, errNoKey(id))
		return
	case errors.Is(err, store.ErrRevoked):
		writeError(ctx, &Error{Status: fasthttp.StatusConflict, Code: CodeInvalidRequest, Message: fmt.Sprintf("key %q is revoked; make a new one", id)})
		return
	case err != nil:
		s.storeFailed(ctx, "rotating a key", err)
		return
	}
	_ = s.syncKeys(sctx)
	s.log.Info("admin: key rotated", "key", id)
	v := viewOfStored(k)
	v.Key = plain
	writeJSON(ctx, fasthttp.StatusOK, v)
}

// usageRow is one row of GET /admin/usage.
type usageRow struct {
	Scope        string    `json:"scope"`
	ID           string    `json:"id"`
	Period       string    `json:"period"`
	Start        time.Time `json:"start"`
	USD          float64   `json:"usd"`
	Requests     int64     `json:"requests"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
}

// serveUsage answers GET /admin/usage?key=&tenant=&period=day|month&start=YYYY-MM-DD:
// the spend rows of the period that contains start (default now), this
// replica's unflushed spend flushed first.
func (s *Server) serveUsage(ctx *fasthttp.RequestCtx) {
	if e := s.needStore(); e != nil {
		writeError(ctx, e)
		return
	}
	args := ctx.QueryArgs()
	var unknown string
	for k := range args.All() {
		switch string(k) {
		case "key", "tenant", "period", "start":
		default:
			if unknown == "" {
				unknown = string(k)
			}
		}
	}
	if unknown != "" {
		writeError(ctx, badRequest(fmt.Sprintf("unknown parameter %q (want key, tenant, period, start)", unknown)))
		return
	}
	period := string(args.Peek("period"))
	switch period {
	case "":
		period = config.PeriodMonth
	case config.PeriodDay, config.PeriodMonth:
	default:
		writeError(ctx, badRequest(fmt.Sprintf("period: unknown period %q (want day or month)", period)))
		return
	}
	at := time.Now().UTC()
	if v := args.Peek("start"); len(v) > 0 {
		t, err := time.Parse("2006-01-02", string(v))
		if err != nil {
			writeError(ctx, badRequest(fmt.Sprintf("start: %q is not a date YYYY-MM-DD", v)))
			return
		}
		at = t
	}
	p := periodOf(period)
	start := periodStart(p, at)
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if err := s.ledger.Flush(sctx); err != nil {
		s.log.Warn("admin usage: flushing this replica's spend", "error", err.Error())
	}
	key, ten := string(args.Peek("key")), string(args.Peek("tenant"))
	var filters []store.SpendFilter
	switch {
	case key == "" && ten == "":
		filters = []store.SpendFilter{{Period: period, Since: start}}
	default:
		if key != "" {
			filters = append(filters, store.SpendFilter{Scope: "key", ID: key, Period: period, Since: start})
		}
		if ten != "" {
			filters = append(filters, store.SpendFilter{Scope: "tenant", ID: ten, Period: period, Since: start})
		}
	}
	out := []usageRow{}
	for _, f := range filters {
		rows, err := s.store.ListSpend(sctx, f)
		if err != nil {
			s.storeFailed(ctx, "reading usage", err)
			return
		}
		for _, r := range rows {
			if !r.Start.Equal(start) {
				continue
			}
			out = append(out, usageRow{Scope: r.Scope, ID: r.ID, Period: r.Period, Start: r.Start.UTC(), USD: float64(r.NanoUSD) / 1e9,
				Requests: r.Requests, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Scope != out[j].Scope {
			return out[i].Scope < out[j].Scope
		}
		return out[i].ID < out[j].ID
	})
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"object": "list", "period": period, "start": start, "data": out})
}

// DecodeStrict decodes a JSON body strictly, for plugins' endpoints: an
// empty body, unknown fields, a key given twice and data after the object
// are errors (an *Error with status 400 and a message saying which).
func DecodeStrict(body []byte, v any) error {
	if e := decodeStrict(body, v); e != nil {
		return e
	}
	return nil
}
