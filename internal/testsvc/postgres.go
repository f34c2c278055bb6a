package testsvc

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// pgServer is the PostgreSQL server of this test binary, started on first
// use and stopped by StopAll (or killed with the binary).
type pgServer struct {
	port int
	dir  string
	cmd  *exec.Cmd
	err  error
}

var (
	pgOnce sync.Once
	pg     *pgServer
	pgDBs  atomic.Int64
)

// pgBin finds Debian's PostgreSQL binaries.
func pgBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// asPostgres makes cmd run as the postgres OS user when this process is
// root (initdb and postgres refuse root), and die with this process.
func asPostgres(cmd *exec.Cmd, cred *syscall.Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}

func startPG() *pgServer {
	s := &pgServer{}
	bin := pgBin()
	if bin == "" {
		s.err = fmt.Errorf("PostgreSQL binaries not found")
		return s
	}
	dir, err := os.MkdirTemp("", "switchyard-pg-")
	if err != nil {
		s.err = err
		return s
	}
	s.dir = dir
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			s.err = fmt.Errorf("running PostgreSQL as root needs the postgres user: %w", err)
			return s
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			s.err = err
			return s
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	asPostgres(initdb, cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		s.err = fmt.Errorf("initdb: %v: %s", err, out)
		return s
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.err = err
		return s
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "synchronous_commit=off", "-c", "max_connections=200")
	asPostgres(s.cmd, cred)
	logf, _ := os.Create(filepath.Join(dir, "postgres.log"))
	if logf != nil {
		if cred != nil {
			os.Chown(logf.Name(), int(cred.Uid), int(cred.Gid))
		}
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
	}
	if err := s.cmd.Start(); err != nil {
		s.err = fmt.Errorf("starting postgres: %w", err)
		return s
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.dsn("postgres"))
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			s.err = fmt.Errorf("postgres did not answer: %v\n%s", err, log)
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Postgres returns the DSN of a fresh, empty database on this test
// binary's PostgreSQL server (started on first use from Debian's
// package). A package that uses it stops the server in its TestMain:
//
//	func TestMain(m *testing.M) { code := m.Run(); testsvc.StopAll(); os.Exit(code) }
//
// Without that the server dies with the test binary, leaving its temp dir.
func Postgres(t testing.TB) string {
	t.Helper()
	if pgBin() == "" {
		Missing(t, "PostgreSQL")
	}
	pgOnce.Do(func() { pg = startPG() })
	if pg.err != nil {
		t.Fatalf("starting PostgreSQL: %v", pg.err)
	}
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), pgDBs.Add(1))
	db, err := sql.Open("pgx", pg.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	return pg.dsn(name)
}

// StopAll stops the servers this test binary started.
func StopAll() {
	if pg != nil && pg.cmd != nil && pg.cmd.Process != nil {
		pg.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { pg.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			pg.cmd.Process.Kill()
			<-done
		}
	}
	if pg != nil && pg.dir != "" {
		os.RemoveAll(pg.dir)
	}
}
