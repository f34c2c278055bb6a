package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEShowsThisProgram checks that README.md's Go SDK example is this
// program, verbatim, in a ```go block, so the snippet there compiles.
func TestREADMEShowsThisProgram(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := "```go\n" + string(src) + "```\n"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md lacks docs/examples/go-client/main.go verbatim as a ```go block; paste this there:\n%s", block)
	}
}
