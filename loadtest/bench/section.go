package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// section is one comparison's part of BENCHMARKS.md, re-rendered alone
// (--routing, --batching) between its markers, with its plot.
type section struct {
	name       string // "Routing": for messages
	begin, end string // its markers
	svgPath    string // its plot, relative to the markdown file
	plot       string // "routing": for messages
}

// outputSection prints text (the section, markers included), splices it
// into out (which must exist: the rest of the file comes from the full
// run) and writes the plot that svg renders.
func outputSection(sec section, text string, svg func() string, out string, stdout, stderr io.Writer) error {
	if _, err := io.WriteString(stdout, text); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	doc, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("reading %s to re-render its %s section (run the full harness once to create it): %w", out, sec.name, err)
	}
	spliced, err := spliceSection(doc, text, sec.begin, sec.end)
	if err != nil {
		return fmt.Errorf("re-rendering the %s section of %s: %w", sec.name, out, err)
	}
	if err := os.WriteFile(out, spliced, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(stderr, "bench: re-rendered the %s section of %s\n", sec.name, out)
	return writeSVG(sec.svgPath, sec.plot, svg(), out, stderr)
}

// writeSVG writes a plot where BENCHMARKS.md's image link points, svgPath
// relative to the markdown file out.
func writeSVG(svgPath, plot, svg, out string, stderr io.Writer) error {
	path := filepath.Join(filepath.Dir(out), filepath.FromSlash(svgPath))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the plot's directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(svg), 0o644); err != nil {
		return fmt.Errorf("writing the %s plot %s: %w", plot, path, err)
	}
	fmt.Fprintf(stderr, "bench: wrote %s\n", path)
	return nil
}
