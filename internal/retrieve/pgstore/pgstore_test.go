package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"switchyard/internal/retrieve"
	"switchyard/internal/retrieve/storetest"
	"switchyard/internal/testsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The PostgreSQL server of the tests stops after the check.
		goleak.Cleanup(func(code int) {
			testsvc.StopAll()
			os.Exit(code)
		}),
	)
}

// admin is a pool on the test database for what the tests do behind the
// stores' backs.
func admin(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func connect(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Connect(context.Background(), dsn, Options{MaxConns: 4, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func collection(t *testing.T, db *DB, name string) *Store {
	t.Helper()
	s, err := db.Collection(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var nameRE = regexp.MustCompile(`[^A-Za-z0-9]+`)

// backend opens the stores of one database, a collection per test, named
// after it: many collections share the tables, as in production. Each
// handle has its own pool, as another replica's process would.
func backend(dsn string) func(t *testing.T) (retrieve.Store, func(t *testing.T) retrieve.Store) {
	return func(t *testing.T) (retrieve.Store, func(t *testing.T) retrieve.Store) {
		name := nameRE.ReplaceAllString(t.Name(), "_")
		open := func(t *testing.T) retrieve.Store { return collection(t, connect(t, dsn), name) }
		return open(t), open
	}
}

func TestConformance(t *testing.T) {
	dsn := testsvc.Postgres(t)
	ad := admin(t, dsn)
	storetest.Run(t, storetest.Backend{
		New: backend(dsn),
		Corrupt: func(t *testing.T, s retrieve.Store, id string) {
			_, err := ad.Exec(context.Background(),
				"UPDATE retrieval_docs SET vectors = substring(vectors from 1 for length(vectors) - 4) WHERE collection = $1 AND id = $2",
				s.(*Store).Name(), id)
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestReplicas: two replicas (two pools, two Follows) on one database.
func TestReplicas(t *testing.T) {
	dsn := testsvc.Postgres(t)
	ad := admin(t, dsn)
	count := func(t *testing.T, sql string) int {
		var n int
		if err := ad.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	storetest.RunFeed(t, storetest.FeedBackend{
		New: backend(dsn),
		Prune: func(t *testing.T, s retrieve.Store) {
			if _, err := s.(*Store).Prune(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
		},
		Disconnect: func(t *testing.T) int {
			return count(t, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = '`+listenerApp+`' AND query LIKE 'LISTEN%'`)
		},
		Listening: func(t *testing.T) int {
			return count(t, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND application_name = '`+listenerApp+`' AND query LIKE 'LISTEN%'`)
		},
	})
}

// TestCorruptRows: a row that does not decode whole fails Scan, Changes
// and New, naming the collection and the document.
func TestCorruptRows(t *testing.T) {
	ctx := context.Background()
	dsn := testsvc.Postgres(t)
	ad := admin(t, dsn)
	db := connect(t, dsn)
	for _, tc := range []struct {
		name, set, msg string
	}{
		{"short vectors", "vectors = substring(vectors from 1 for 7)", "vectors: 7 bytes for 2 vectors of 4-d"},
		{"long vectors", "vectors = vectors || '\\x00000000'::bytea", "vectors: 36 bytes"},
		{"unknown field", `doc = doc || '{"extra": 1}'`, "unknown field"},
		{"wrong type", `doc = jsonb_set(doc, '{chunks}', '"x"')`, "decoding"},
		{"other id", `doc = jsonb_set(doc, '{id}', '"other"')`, `holds document "other"`},
		{"dimension", `doc = jsonb_set(doc, '{dim}', '3')`, "2 vectors of 3-d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := collection(t, db, nameRE.ReplaceAllString(t.Name(), "_"))
			if err := s.Put(ctx, storetest.Doc("good", 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, storetest.Doc("bad", 2)); err != nil {
				t.Fatal(err)
			}
			if _, err := ad.Exec(ctx, "UPDATE retrieval_docs SET "+tc.set+" WHERE collection = $1 AND id = 'bad'", s.Name()); err != nil {
				t.Fatal(err)
			}
			check := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), `document "bad"`) || !strings.Contains(err.Error(), s.Name()) {
					t.Errorf("%s: %v, want %q naming the collection and the document", what, err, tc.msg)
				}
			}
			check("Scan", s.Scan(ctx, func(*retrieve.StoredDoc) error { return nil }))
			_, err := s.Changes(ctx, 0, func(retrieve.Change) error { return nil })
			check("Changes", err)
		})
	}
}

// TestCollectionsApart: collections share the tables, not documents,
// sequence positions or notifications.
func TestCollectionsApart(t *testing.T) {
	ctx := context.Background()
	db := connect(t, testsvc.Postgres(t))
	a, b := collection(t, db, "a"), collection(t, db, "a b") // a prefix, and a space
	if err := a.Put(ctx, storetest.Doc("x", 1)); err != nil {
		t.Fatal(err)
	}
	n := 0
	through, err := b.Changes(ctx, 0, func(retrieve.Change) error { n++; return nil })
	if n != 0 || err != nil || through != 0 {
		t.Errorf("b's changes: %d, through %d, %v", n, through, err)
	}
	if err := b.Scan(ctx, func(*retrieve.StoredDoc) error { n++; return nil }); n != 0 || err != nil {
		t.Errorf("b's scan: %d %v", n, err)
	}
	if seq, err := b.Delete(ctx, "x"); seq != 0 || err != nil {
		t.Errorf("b deleting a's document: %d %v", seq, err)
	}
	if _, err := db.Collection(ctx, ""); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := db.Collection(ctx, strings.Repeat("x", maxName+1)); err == nil {
		t.Error("long name accepted")
	}
	// Reopening registers nothing twice; Open's Store closes its pool.
	s, err := Open(ctx, testsvc.Postgres(t), "a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, storetest.Doc("y", 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Put(ctx, storetest.Doc("y", 2)); err == nil {
		t.Error("Put after Close")
	}
}

// TestWatch: notifications for the collection only; a terminated
// listening backend is replaced, and the watch notifies as it listens
// again.
func TestWatch(t *testing.T) {
	ctx := context.Background()
	dsn := testsvc.Postgres(t)
	ad := admin(t, dsn)
	db := connect(t, dsn)
	s, other := collection(t, db, "watched"), collection(t, db, "other")
	writer := collection(t, connect(t, dsn), "watched")
	notes := make(chan struct{}, 100)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Watch(wctx, func() { notes <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-notes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no notification %s", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-notes:
			t.Errorf("a notification %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	wait("on listening")
	if err := writer.Put(ctx, storetest.Doc("x", 1)); err != nil {
		t.Fatal(err)
	}
	wait("after a Put through another pool")
	if err := other.Put(ctx, storetest.Doc("x", 1)); err != nil {
		t.Fatal(err)
	}
	quiet("for another collection")
	if seq, err := writer.Delete(ctx, "missing"); seq != 0 || err != nil {
		t.Fatal(seq, err)
	}
	quiet("for the deletion of a missing document")
	var killed int
	if err := ad.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listening backends, %v", killed, err)
	}
	wait("after reconnecting")
	if _, err := writer.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	wait("after a Delete, once reconnected")
}

// TestDSNRedacted: no error holds the DSN's password.
func TestDSNRedacted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const pw = "s3cr3t-pw"
	port := testsvc.FreePort(t)
	for _, dsn := range []string{
		fmt.Sprintf("postgres://u:%s@127.0.0.1:%d/db?sslmode=disable&connect_timeout=2", pw, port),
		fmt.Sprintf("host=127.0.0.1 port=%d user=u password=%s dbname=db sslmode=disable connect_timeout=2", port, pw),
		fmt.Sprintf("host=127.0.0.1 port=%d password='%s' sslmode=bogus", port, pw),
		fmt.Sprintf("postgres://u:%s@127.0.0.1:%d/db?sslmode=bogus", pw, port),
		fmt.Sprintf("postgres://u:%s@[::1/db", pw),
	} {
		_, err := Connect(ctx, dsn, Options{})
		if err == nil {
			t.Fatalf("%s: connected", dsn)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("the error holds the password: %v", err)
		}
	}
}

func TestDSNPassword(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:pw@h/db", "pw"},
		{"postgresql://u:p%40w@h/db", "p@w"},
		{"postgres://u@h/db?password=qp", "qp"},
		{"postgres://h/db", ""},
		{"postgres://u:p w@[bad/db", "p w"},
		{"host=h password=pw user=u", "pw"},
		{"password='p w\\'x' host=h", "p w'x"},
		{"host = h password = pw", "pw"},
		{"host=h", ""},
		{"", ""},
	} {
		if got := dsnPassword(tc.dsn); got != tc.want {
			t.Errorf("dsnPassword(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

func FuzzDSNPassword(f *testing.F) {
	f.Add("pw", "h")
	f.Add("p w'\\x", "host with space")
	f.Fuzz(func(t *testing.T, pw, host string) {
		if pw == "" {
			return
		}
		q := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
		dsn := fmt.Sprintf("host='%s' password='%s' user=u", q.Replace(host), q.Replace(pw))
		if got := dsnPassword(dsn); got != pw {
			t.Errorf("dsnPassword(%q) = %q, want %q", dsn, got, pw)
		}
		if strings.Contains("[redacted]", pw) {
			return // the replacement would hold it
		}
		if strings.Contains(scrub(fmt.Errorf("failed: %s", dsn), pw).Error(), pw) {
			t.Errorf("scrub left %q", pw)
		}
	})
}

func TestVectorsRoundTrip(t *testing.T) {
	vs := [][]float32{
		{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32},
		{float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), -1.0 / 3, 1e-40},
	}
	b, err := appendVectors(nil, vs, 4)
	if err != nil || len(b) != 32 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	got, err := decodeVectors(b, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range vs {
		for j := range vs[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(vs[i][j]) {
				t.Errorf("[%d][%d]: %08x, want %08x", i, j, math.Float32bits(got[i][j]), math.Float32bits(vs[i][j]))
			}
		}
	}
	if cap(got[0]) != 4 {
		t.Errorf("vector 0 has capacity %d: appending would overwrite vector 1", cap(got[0]))
	}
	for _, tc := range []struct{ n, count, dim int }{{31, 2, 4}, {33, 2, 4}, {32, 2, 0}, {32, -1, 4}, {0, 1, 4}} {
		if _, err := decodeVectors(make([]byte, tc.n), tc.count, tc.dim); err == nil {
			t.Errorf("%d bytes as %d × %d: decoded", tc.n, tc.count, tc.dim)
		}
	}
	if _, err := appendVectors(nil, [][]float32{{1, 2}}, 3); err == nil {
		t.Error("a short vector encoded")
	}
}

func FuzzDecodeVectors(f *testing.F) {
	f.Add([]byte{}, 0, 1)
	f.Add(make([]byte, 32), 2, 4)
	f.Add([]byte{0, 0, 0x80, 0x7f, 1, 0, 0, 0}, 1, 2)
	f.Fuzz(func(t *testing.T, b []byte, count, dim int) {
		vs, err := decodeVectors(b, count, dim)
		if err != nil {
			return
		}
		again, err := appendVectors(nil, vs, dim)
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("%x decoded as %d × %d re-encodes as %x, %v", b, count, dim, again, err)
		}
	})
}

func FuzzDecodeDoc(f *testing.F) {
	js, vecs, err := encodeDoc(storetest.Doc("a", 1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("a", js, vecs)
	f.Add("a", []byte(`{"id":"a","dim":1,"chunks":[{}]}`), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, id string, js, vecs []byte) {
		d, err := decodeDoc(id, js, vecs)
		if err != nil {
			return
		}
		js2, vecs2, err := encodeDoc(d)
		if err != nil {
			return // e.g. vectors that do not match, caught at Put
		}
		d2, err := decodeDoc(id, js2, vecs2)
		if err != nil {
			t.Fatalf("a decoded document re-encoded does not decode: %v", err)
		}
		if diff := storetest.Equal(d2, d); diff != "" {
			t.Errorf("round trip: %s", diff)
		}
	})
}

// TestConcurrentOpen: replicas starting together create the schema once.
func TestConcurrentOpen(t *testing.T) {
	dsn := testsvc.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			db, err := Connect(context.Background(), dsn, Options{MaxConns: 2})
			if err == nil {
				_, err = db.Collection(context.Background(), "c")
				db.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
