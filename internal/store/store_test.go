package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"switchyard/internal/testsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testsvc.StopAll()
	os.Exit(code)
}

// engines yields a fresh store of each engine; reopen opens the same one
// again (a restart, or a second replica).
type engine struct {
	name string
	open func(t *testing.T) (Store, func(t *testing.T) Store)
}

func engines() []engine {
	return []engine{
		{"sqlite", func(t *testing.T) (Store, func(t *testing.T) Store) {
			dir := t.TempDir()
			o := Options{DataDir: dir}
			return mustOpen(t, o), func(t *testing.T) Store { return mustOpen(t, o) }
		}},
		{"postgres", func(t *testing.T) (Store, func(t *testing.T) Store) {
			o := Options{PostgresDSN: testsvc.Postgres(t)}
			return mustOpen(t, o), func(t *testing.T) Store { return mustOpen(t, o) }
		}},
	}
}

func mustOpen(t *testing.T, o Options) Store {
	t.Helper()
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func forEach(t *testing.T, fn func(t *testing.T, s Store, reopen func(t *testing.T) Store)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s, reopen := e.open(t)
			fn(t, s, reopen)
		})
	}
}

func hash(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestKeys(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, reopen func(t *testing.T) Store) {
		ctx := context.Background()
		at := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
		k, err := s.CreateKey(ctx, Key{ID: "a", Tenant: "t", Hash: hash("sk-a"), Prefix: "sk-sy-aaaa", Spec: []byte(`{"tenant":"t"}`), CreatedAt: at})
		if err != nil || k.Version <= 0 || !k.CreatedAt.Equal(at.Truncate(time.Microsecond)) {
			t.Fatalf("create: %+v %v", k, err)
		}
		if _, err := s.CreateKey(ctx, Key{ID: "a", Hash: hash("other")}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate id: %v", err)
		}
		if _, err := s.CreateKey(ctx, Key{ID: "b", Hash: hash("sk-a")}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate hash: %v", err)
		}
		b, err := s.CreateKey(ctx, Key{ID: "b", Hash: hash("sk-b"), Spec: []byte(`{}`)})
		if err != nil || b.Version <= k.Version {
			t.Fatalf("second key: %+v %v", b, err)
		}
		got, err := s.GetKey(ctx, "a")
		if err != nil || got.Hash != hash("sk-a") || string(got.Spec) != `{"tenant":"t"}` || got.Tenant != "t" || !got.RevokedAt.IsZero() {
			t.Errorf("get: %+v %v", got, err)
		}
		if _, err := s.GetKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get unknown: %v", err)
		}
		rot, err := s.RotateKey(ctx, "a", hash("sk-a2"), "sk-sy-bbbb", at.Add(time.Minute))
		if err != nil || rot.Hash != hash("sk-a2") || rot.Version <= b.Version || rot.Prefix != "sk-sy-bbbb" {
			t.Errorf("rotate: %+v %v", rot, err)
		}
		if _, err := s.RotateKey(ctx, "b", hash("sk-a2"), "x", at); !errors.Is(err, ErrExists) {
			t.Errorf("rotate to a taken hash: %v", err)
		}
		rev, err := s.RevokeKey(ctx, "b", at.Add(2*time.Minute))
		if err != nil || rev.RevokedAt.IsZero() || rev.Version <= rot.Version {
			t.Errorf("revoke: %+v %v", rev, err)
		}
		if _, err := s.RevokeKey(ctx, "b", at); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoke again: %v", err)
		}
		if _, err := s.RotateKey(ctx, "b", hash("z"), "z", at); !errors.Is(err, ErrRevoked) {
			t.Errorf("rotate revoked: %v", err)
		}
		if _, err := s.RevokeKey(ctx, "nope", at); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
		since, err := s.KeysSince(ctx, b.Version)
		if err != nil || len(since) != 2 || since[0].ID != "a" || since[1].ID != "b" {
			t.Errorf("keys since %d: %+v %v", b.Version, since, err)
		}
		// Another instance (a restart, or a second replica) sees it all.
		s2 := reopen(t)
		all, err := s2.ListKeys(ctx)
		if err != nil || len(all) != 2 || all[0].Hash != hash("sk-a2") || all[1].RevokedAt.IsZero() {
			t.Errorf("list from another instance: %+v %v", all, err)
		}
		// ... and writes there are seen here.
		if _, err := s2.CreateKey(ctx, Key{ID: "c", Hash: hash("sk-c"), Spec: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if c, err := s.GetKey(ctx, "c"); err != nil || c.Version <= rev.Version {
			t.Errorf("a key made by the other instance: %+v %v", c, err)
		}
	})
}

func TestSpend(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, reopen func(t *testing.T) Store) {
		ctx := context.Background()
		day := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
		month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.AddSpend(ctx, []SpendDelta{
					{Scope: "key", ID: "k", Period: "day", Start: day, NanoUSD: 5, Requests: 1, InputTokens: 10, OutputTokens: 2},
					{Scope: "key", ID: "k", Period: "month", Start: month, NanoUSD: 5, Requests: 1, InputTokens: 10, OutputTokens: 2},
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		rows, err := s.AddSpend(ctx, []SpendDelta{{Scope: "tenant", ID: "t", Period: "day", Start: day, NanoUSD: 7, Requests: 1}})
		if err != nil || rows[0].NanoUSD != 7 {
			t.Fatalf("add: %+v %v", rows, err)
		}
		got, err := reopen(t).ListSpend(ctx, SpendFilter{Scope: "key", ID: "k"})
		if err != nil || len(got) != 2 || got[0].NanoUSD != 100 || got[0].Requests != 20 || got[0].InputTokens != 200 || got[0].OutputTokens != 40 || !got[0].Start.Equal(day) {
			t.Errorf("key rows: %+v %v", got, err)
		}
		if got, _ := s.ListSpend(ctx, SpendFilter{Period: "day", Since: day}); len(got) != 2 {
			t.Errorf("day rows since %v: %+v", day, got)
		}
		if got, _ := s.ListSpend(ctx, SpendFilter{Since: day.AddDate(0, 0, 1)}); len(got) != 0 {
			t.Errorf("rows since tomorrow: %+v", got)
		}
	})
}

func TestMigrations(t *testing.T) {
	forEach(t, func(t *testing.T, s Store, reopen func(t *testing.T) Store) {
		reopen(t) // re-applying is a no-op
		ss := s.(*sqlStore)
		future := append(append([]migration{}, migrations...), migration{version: 99, name: "future", sqlite: "CREATE TABLE f (x INTEGER)", postgres: "CREATE TABLE f (x INTEGER)"})
		if err := ss.migrateTo(context.Background(), future); err != nil {
			t.Fatal(err)
		}
		if err := ss.migrate(context.Background()); err == nil {
			t.Error("a store at a newer schema version was accepted")
		}
	})
}
