//go:build unix

package retrieval

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// held counts this process's uses of each locked directory: a reload that
// reopens a collection (changed settings) while the old generation still
// holds it shares the lock rather than failing against itself.
var (
	heldMu sync.Mutex
	held   = map[string]*heldLock{}
)

type heldLock struct {
	f    *os.File
	uses int
}

// lockDir takes an exclusive lock on a local collection's directory, so
// that two processes (a gateway and `switchyard ingest`, or two gateways
// on one data_dir) never write one collection; it returns the unlock.
func lockDir(dir string) (func() error, error) {
	heldMu.Lock()
	defer heldMu.Unlock()
	if h := held[dir]; h != nil {
		h.uses++
		return unlocker(dir, h), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is in use by another process (a running gateway, or switchyard ingest): stop it, or add documents through the running gateway's Files API", dir)
	}
	h := &heldLock{f: f, uses: 1}
	held[dir] = h
	return unlocker(dir, h), nil
}

func unlocker(dir string, h *heldLock) func() error {
	var once sync.Once
	return func() (err error) {
		once.Do(func() {
			heldMu.Lock()
			defer heldMu.Unlock()
			if h.uses--; h.uses > 0 {
				return
			}
			delete(held, dir)
			_ = syscall.Flock(int(h.f.Fd()), syscall.LOCK_UN)
			err = h.f.Close()
		})
		return err
	}
}
