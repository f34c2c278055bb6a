package gateway

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"switchyard/gateway/config"
)

// Reload reads the config file once and swaps the new generation in. SIGHUP
// and POST /admin/reload call it; the file watcher calls reload with bytes
// it has seen settle. A bad file leaves the current generation serving.
// An explicit Reload rebuilds even when the config's bytes are unchanged,
// so that files the config points to (a guard's policies) are read again;
// the watcher skips unchanged bytes.
func (s *Server) Reload() error {
	raw, err := os.ReadFile(s.opts.ConfigPath)
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload rejected; the previous config keeps serving", "file", s.opts.ConfigPath, "error", err)
		return fmt.Errorf("reloading %s: %w", s.opts.ConfigPath, err)
	}
	return s.reload(raw, true)
}

// reload builds a generation from raw, the config file's bytes, checks that
// it may replace the current one, and swaps it in; unless force, unchanged
// bytes are left alone.
func (s *Server) reload(raw []byte, force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.gen.Load()
	if !force && bytes.Equal(raw, old.Config.Raw) {
		return nil
	}
	file := s.opts.ConfigPath
	cfg, err := config.Parse(raw, file)
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload rejected; the previous config keeps serving", "file", file, "error", err)
		return err
	}
	if why := refuseReload(old.Config, cfg); why != "" {
		// why names keys only, never their values: admin.token is a secret.
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload refused; the previous config keeps serving", "file", file, "reason", why)
		return fmt.Errorf("reloading %s: refused: %s; the previous config keeps serving", file, why)
	}
	if why := s.refuseStoreChange(cfg); why != "" {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload refused; the previous config keeps serving", "file", file, "reason", why)
		return fmt.Errorf("reloading %s: refused: %s; the previous config keeps serving", file, why)
	}
	// Resources: in-flight counts, ejections and health carry over by backend name.
	g, err := Build(cfg, BuildOptions{Registry: s.opts.Registry, Log: s.log, Metrics: s.metrics, StartSims: true, Resources: s.resources, Dispatcher: s})
	if err != nil {
		s.metrics.reloaded(false, nil)
		s.log.Error("config reload rejected; the previous config keeps serving", "file", file, "error", err)
		return err
	}
	if cfg.Listen != old.Config.Listen || !reflect.DeepEqual(cfg.Server, old.Config.Server) {
		s.log.Warn("listen and server settings change only on restart", "file", file)
	}
	s.gen.Store(g)
	s.rebuildKeys(g)
	s.metrics.reloaded(true, g)
	s.metrics.watchAdmission(s)
	s.log.Info("config reloaded", "file", file, "generation", g.ID)
	s.retire(old)
	return nil
}

// refuseReload says why next must not replace cur, or returns "" when it
// may. It refuses a config without models (an empty or truncated file
// would make every model 404) and any change of the admin settings: they
// apply at restart only, and a new token taking effect, or not, on reload
// would lock the operator out or keep a revoked token working. The reason
// names keys, never values.
func refuseReload(cur, next *config.Config) string {
	if len(next.Models) == 0 {
		return "the new config has no models (an empty or truncated file?), so every model would answer 404"
	}
	var changed []string
	if next.Admin.Listen != cur.Admin.Listen {
		changed = append(changed, "admin.listen")
	}
	if next.Admin.Token.Value() != cur.Admin.Token.Value() {
		changed = append(changed, "admin.token")
	}
	if next.Admin.Insecure != cur.Admin.Insecure {
		changed = append(changed, "admin.insecure")
	}
	if len(changed) > 0 {
		return strings.Join(changed, ", ") + " changed; admin settings apply only at restart (restore them in the file, or restart to apply them)"
	}
	return ""
}

// refuseStoreChange says why next cannot be loaded without a restart: the
// store is opened at start, so a reload can neither move it nor start using
// it. The reason names keys, never values (a DSN holds a password).
func (s *Server) refuseStoreChange(next *config.Config) string {
	switch {
	case s.store != nil && storeSettings(next) != s.storeSettings:
		return "data_dir or store.postgres.dsn changed; the store is chosen only at restart"
	case s.store == nil && needsStore(next, s.opts.AdminListen):
		return "the new config needs the durable store (a budget, or store.postgres), which opens only at start; restart to use it"
	}
	return ""
}

// retire closes old once its last request is done (or the drain timeout passes).
func (s *Server) retire(old *Generation) {
	old.retire()
	drain := old.Config.Server.DrainTimeout.D()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-old.done:
		case <-t.C:
			s.log.Warn("closing a retired config generation with requests still in flight", "generation", old.ID, "inflight", old.inflight.Load())
		case <-s.ctx.Done():
			// Shutdown: the server's own drain decides; wait for the requests.
			select {
			case <-old.done:
			case <-t.C:
			}
		}
		old.Close()
	}()
}

// settle tells the file watcher when a changed config file has finished
// changing: an editor or a deploy tool may be caught half-way through
// writing it. A file is ready when it reads the same (size and SHA-256) on
// two polls in a row and differs from the last bytes handed to reload.
type settle struct {
	seen    bool     // the last poll read the file
	size    int      // of the last poll
	sum     [32]byte // of the last poll
	handled [32]byte // of the last bytes handed to reload
}

// newSettle starts from the bytes the server is running on, so that the
// unchanged file is not reloaded.
func newSettle(running []byte) settle {
	return settle{handled: sha256.Sum256(running)}
}

// observe records one poll: raw is what was read, readErr whether reading
// failed (a file being replaced may be missing for a moment). It reports
// whether raw should be reloaded now; once reported, the same bytes are not
// reported again, whether their reload succeeded or not.
func (f *settle) observe(raw []byte, readErr error) bool {
	if readErr != nil {
		f.seen = false
		return false
	}
	sum := sha256.Sum256(raw)
	stable := f.seen && f.size == len(raw) && f.sum == sum
	f.seen, f.size, f.sum = true, len(raw), sum
	if !stable || sum == f.handled {
		return false
	}
	f.handled = sum
	return true
}

// watch polls the config file every interval and reloads it once a change
// has settled (see settle), so a change takes effect within two polls.
func (s *Server) watch(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	f := newSettle(s.gen.Load().Config.Raw)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(s.opts.ConfigPath)
		if f.observe(raw, err) {
			_ = s.reload(raw, false) // logged and counted by reload
		}
	}
}
