package stages

import (
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"switchyard/gateway"
	"switchyard/internal/respool"
)

// doc:begin quota
type Quota struct {
	RPM int `yaml:"rpm" json:"rpm"`

	win    *window
	denied *metrics.Counter
}

// window counts a route's requests per minute. It is what survives
// reloads; it has no Close, so nothing is closed when its last generation
// goes (a client or a queue would have one).
type window struct {
	mu    sync.Mutex
	start time.Time
	n     int
	max   int
}

func (w *window) allow(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= time.Minute {
		w.start, w.n = now, 0
	}
	w.n++
	return w.n <= w.max
}

func (q *Quota) Provision(env *gateway.Env) error {
	key, err := respool.Key("quota/"+env.Route, q) // the route and the settings
	if err != nil {
		return err
	}
	if q.win, err = gateway.Resource(env, key, func() (*window, error) {
		return &window{max: q.RPM}, nil
	}); err != nil {
		return err
	}
	q.denied = env.Metrics.Counter(`switchyard_quota_denied_total{route="`+env.Route+`"}`,
		"Requests denied by the quota stage, by route.")
	return nil
}

func (q *Quota) Handle(x *gateway.Exchange, next gateway.Handler) error {
	if !q.win.allow(time.Now()) {
		q.denied.Inc()
		return &gateway.Error{Status: 429, Code: gateway.CodeRateLimited, Message: "quota exceeded"}
	}
	return next.Handle(x)
}

// doc:end quota
