//go:build !race

package spend

import (
	"context"
	"testing"
	"time"

	"switchyard/internal/store"
)

func TestHotPathDoesNotAllocate(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := ledger(t, st)
	now := time.Now()
	l.Add(Key, "k", now, 1, 1, 1)
	if n := testing.AllocsPerRun(1000, func() {
		l.Spent(Key, "k", Day, now)
		l.Add(Key, "k", now, 1, 1, 1)
	}); n != 0 {
		t.Errorf("%.1f allocations", n)
	}
}
