package config

import (
	"os"
	"path/filepath"
	"testing"
)

var sinkConfig *Config

func BenchmarkParseFull(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "full.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, err := ParseEnv(data, "full.yaml", lookupTestEnv)
		if err != nil {
			b.Fatal(err)
		}
		sinkConfig = c
	}
}

func BenchmarkParseSize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSize("512KiB"); err != nil {
			b.Fatal(err)
		}
	}
}
