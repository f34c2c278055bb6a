package guard

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"switchyard/gateway"
	"switchyard/internal/respool"
	"switchyard/policy"
)

// decisionFile is the optional decision log file: one JSON object a line,
// appended. A shared resource, so it stays open across reloads that keep
// its path.
type decisionFile struct {
	mu sync.Mutex
	f  *os.File
}

func openDecisionFile(path string) (*decisionFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("decision_log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("decision_log: %w", err)
	}
	return &decisionFile{f: f}, nil
}

// record is one line of the file.
type record struct {
	Time        time.Time     `json:"time"`
	RequestID   string        `json:"request_id"`
	Route       string        `json:"route"`
	Phase       string        `json:"phase"`
	Allow       bool          `json:"allow"`
	Deny        []policy.Rule `json:"deny,omitempty"`
	Redactions  []string      `json:"redactions,omitempty"` // the policies, never the text
	Review      []policy.Rule `json:"review,omitempty"`
	Tags        []string      `json:"tags,omitempty"`
	InputSHA256 string        `json:"input_sha256"`
	Prompt      string        `json:"prompt,omitempty"`
	TookUS      int64         `json:"took_us"`
}

func (f *decisionFile) write(r *record) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.f.Write(append(b, '\n'))
	f.mu.Unlock()
}

// Close implements io.Closer for the resource pool.
func (f *decisionFile) Close() error { return f.f.Close() }

// provisionDecisionLog opens the decision log file, when set (relative
// paths are under data_dir).
func (s *Stage) provisionDecisionLog(env *gateway.Env) error {
	if s.DecisionLog == "" {
		return nil
	}
	path := s.DecisionLog
	if !filepath.IsAbs(path) && env.DataDir != "" {
		path = filepath.Join(env.DataDir, path)
	}
	key, err := respool.Key("guard.decision_log", path)
	if err != nil {
		return err
	}
	s.file, err = gateway.Resource(env, key, func() (*decisionFile, error) { return openDecisionFile(path) })
	return err
}

// fileDecision writes d to the decision log file.
func (s *Stage) fileDecision(requestID string, in *policy.Input, d *policy.Decision, took time.Duration) {
	r := &record{Time: time.Now().UTC(), RequestID: requestID, Route: s.route, Phase: in.Phase, Allow: d.Allow,
		Deny: d.Deny, Review: d.Review, Tags: d.Tags, InputSHA256: in.Hash(), TookUS: took.Microseconds()}
	for _, x := range d.Redact {
		r.Redactions = append(r.Redactions, x.Policy)
	}
	if s.LogInput {
		r.Prompt = in.Prompt
	}
	s.file.write(r)
}
