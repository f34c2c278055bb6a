//go:build !unix

package retrieval

import "os"

// lockDir creates dir; other systems get no lock (one process per
// data_dir is then the operator's to ensure).
func lockDir(dir string) (func() error, error) {
	return func() error { return nil }, os.MkdirAll(dir, 0o700)
}
