//go:build !race

package limit

import (
	"context"
	"testing"
)

func TestLocalAdmitDoesNotAllocate(t *testing.T) {
	l := NewLocal(LocalOptions{})
	r := &Request{Tokens: 100, Checks: []Check{
		{Name: "key:a", Limit: Limit{RPM: 1 << 40, TPM: 1 << 40, Concurrency: 1 << 30}},
		{Name: "tenant:t", Limit: Limit{RPM: 1 << 40}},
	}}
	var res Result
	l.Admit(context.Background(), r, &res)
	l.Settle(r, 0)
	if n := testing.AllocsPerRun(1000, func() {
		l.Admit(context.Background(), r, &res)
		l.Settle(r, -10)
	}); n != 0 {
		t.Errorf("Admit+Settle allocates %.1f times", n)
	}
}
