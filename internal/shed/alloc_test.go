//go:build !race

package shed

import (
	"context"
	"testing"
	"time"
)

func TestAcquireFreeSlotDoesNotAllocate(t *testing.T) {
	g := New(4, 10, nil)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		g.Acquire(ctx, Standard, time.Second)
		g.Release()
	}); n != 0 {
		t.Errorf("%.1f allocations", n)
	}
}
