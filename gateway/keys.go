package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/gateway/config"
	"switchyard/internal/spend"
	"switchyard/internal/store"
)

// Keys come from two places: the config (keys[], by hash, compiled into
// each generation) and the store (made through the admin API, shared by
// replicas). The store's keys are read every store.key_sync into a
// keyring, compiled against the current generation (their tenants and the
// pools' limits are the config's), and rebuilt when a reload swaps it.

// keyring is the store's keys, compiled against one generation.
type keyring struct {
	gen     *Generation
	byHash  map[[32]byte]*Principal // active keys only
	records map[string]store.Key    // every key by id, revoked ones included
	version int64                   // the newest store version read
}

// maxKeyLen bounds a presented key: anything longer is malformed.
const maxKeyLen = 256

// lookupKey resolves a presented key: the config's first, then the store's.
func (s *Server) lookupKey(gen *Generation, key []byte) (*Principal, error) {
	if len(key) > maxKeyLen || !printable(key) {
		return nil, &Error{Status: fasthttp.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "malformed API key provided"}
	}
	sum := sha256.Sum256(key)
	if p := gen.keys[sum]; p != nil {
		return p, nil
	}
	if kr := s.keys.Load(); kr != nil {
		if p := kr.byHash[sum]; p != nil {
			return p, nil
		}
	}
	return nil, &Error{Status: fasthttp.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "Incorrect API key provided. You can find your API key with your gateway's administrator."}
}

// authRequired reports whether callers must present a key: when the config
// lists keys or tenants, or the store holds an active key.
func (s *Server) authRequired(gen *Generation) bool {
	if gen.keys != nil {
		return true
	}
	kr := s.keys.Load()
	return kr != nil && len(kr.byHash) > 0
}

// principal authenticates ctx's key.
func (s *Server) principal(ctx *fasthttp.RequestCtx, gen *Generation) (*Principal, error) {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	var key []byte
	if len(auth) > 7 && bytes.EqualFold(auth[:7], []byte("bearer ")) {
		key = bytes.TrimSpace(auth[7:])
	} else if k := ctx.Request.Header.Peek("api-key"); len(k) > 0 {
		key = k
	}
	if len(key) == 0 {
		return nil, &Error{Status: fasthttp.StatusUnauthorized, Code: CodeInvalidAPIKey, Message: "You didn't provide an API key: send it as 'Authorization: Bearer <key>'."}
	}
	return s.lookupKey(gen, key)
}

// needsStore reports whether a config uses the durable store: the admin
// API (keys, usage), PostgreSQL, or a budget.
func needsStore(cfg *config.Config, adminListen string) bool {
	if cfg.Admin.Listen != "" || adminListen != "" || cfg.Store.Postgres.DSN != "" {
		return true
	}
	for i := range cfg.Tenants {
		if !cfg.Tenants[i].Budget.IsZero() {
			return true
		}
	}
	for i := range cfg.Keys {
		if !cfg.Keys[i].Budget.IsZero() {
			return true
		}
	}
	return false
}

// openStore opens the store and the spend ledger when the config uses them,
// and reads the store's keys once.
func (s *Server) openStore(cfg *config.Config) error {
	if !needsStore(cfg, s.opts.AdminListen) {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: cfg.DataPath(), PostgresDSN: cfg.Store.Postgres.DSN.Value()})
	if err != nil {
		return fmt.Errorf("%s: opening the store: %w", cfg.File, err)
	}
	led, err := spend.New(ctx, spend.Options{Store: st, Log: s.log})
	if err != nil {
		st.Close()
		return fmt.Errorf("%s: loading spend from the %s store: %w", cfg.File, st.Kind(), err)
	}
	s.store, s.ledger = st, led
	s.storeSettings = storeSettings(cfg)
	if err := s.syncKeys(ctx); err != nil {
		s.closeStore()
		return fmt.Errorf("%s: reading keys from the %s store: %w", cfg.File, st.Kind(), err)
	}
	return nil
}

// storeSettings are the settings that choose the store; a reload cannot
// change them (a restart does).
func storeSettings(cfg *config.Config) string {
	return cfg.DataPath() + "\x00" + cfg.Store.Postgres.DSN.Value()
}

func (s *Server) closeStore() {
	if s.ledger != nil {
		if err := s.ledger.Close(); err != nil {
			s.log.Error("flushing spend to the store", "error", err.Error())
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("closing the store", "error", err.Error())
		}
	}
}

// runKeySync reads the store's keys every interval, until the server stops.
func (s *Server) runKeySync(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, every*4)
		err := s.syncKeys(ctx)
		cancel()
		switch {
		case err != nil && !failing:
			s.log.Error("reading keys from the store (keys made or revoked elsewhere are not seen until it answers)", "error", err.Error())
			failing = true
		case err == nil && failing:
			s.log.Info("reading keys from the store works again")
			failing = false
		}
	}
}

// syncKeys reads the keys changed in the store since the last read and
// rebuilds the keyring when any did, or when the generation changed.
func (s *Server) syncKeys(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	old := s.keys.Load()
	var since int64
	if old != nil {
		since = old.version
	}
	changed, err := s.store.KeysSince(ctx, since)
	if err != nil {
		return err
	}
	gen := s.gen.Load()
	if len(changed) == 0 && old != nil && old.gen == gen {
		return nil
	}
	records := map[string]store.Key{}
	if old != nil {
		for id, k := range old.records {
			records[id] = k
		}
	}
	version := since
	for _, k := range changed {
		records[k.ID] = k
		version = max(version, k.Version)
	}
	s.keys.Store(s.compileKeys(gen, records, version))
	return nil
}

// rebuildKeys compiles the keyring against gen (after a reload).
func (s *Server) rebuildKeys(gen *Generation) {
	if s.store == nil {
		return
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	old := s.keys.Load()
	if old == nil {
		return
	}
	s.keys.Store(s.compileKeys(gen, old.records, old.version))
}

func (s *Server) compileKeys(gen *Generation, records map[string]store.Key, version int64) *keyring {
	kr := &keyring{gen: gen, byHash: map[[32]byte]*Principal{}, records: records, version: version}
	for id, k := range records {
		if !k.RevokedAt.IsZero() {
			continue
		}
		var ks keySettings
		if err := json.Unmarshal(k.Spec, &ks); err != nil {
			s.log.Error("a key in the store has unreadable settings; it is refused", "key", id, "error", err.Error())
			continue
		}
		p, err := gen.newPrincipal(id, &ks)
		if err != nil {
			s.log.Error("a key in the store does not fit the config; it is refused until it does", "key", id, "error", err.Error())
			continue
		}
		kr.byHash[k.Hash] = p
	}
	return kr
}
