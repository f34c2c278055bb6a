package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem found in a config file: where it is and what is wrong.
// Line and Column are 1-based; zero means unknown (for example a config built in
// Go rather than parsed). Path is the YAML path of the offending value, such as
// "routes[2].to" or "backends[0].timeouts.connect"; empty for file-level errors.
type Error struct {
	File         string
	Line, Column int
	Path, Msg    string
}

// Error formats e as "file:line:col: path: message", leaving out the parts
// that are unknown.
func (e Error) Error() string {
	var b strings.Builder
	e.appendTo(&b)
	return b.String()
}

func (e Error) appendTo(b *strings.Builder) {
	start := b.Len()
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		if e.Column > 0 {
			b.WriteString(strconv.Itoa(e.Column))
			b.WriteByte(':')
		}
	}
	if b.Len() > start {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
}

// Errors is every problem found in one config file, in file order. Load, Parse
// and DecodeStrict return it as *Errors so that callers can list each problem
// (errors.As(err, &errs) with errs of type *Errors).
type Errors []Error

// Error returns one "file:line:col: path: message" line per problem.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		e.appendTo(&b)
	}
	return b.String()
}

// sortErrors orders errors by position, keeping the discovery order for ties
// and putting position-less errors last.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// pos is a position in the source file.
type pos struct{ line, col int }

// errorList collects errors for one file.
type errorList struct {
	file string
	errs Errors
}

func (l *errorList) add(p pos, path, msg string) {
	l.errs = append(l.errs, Error{File: l.file, Line: p.line, Column: p.col, Path: path, Msg: msg})
}

// err returns the collected errors as *Errors, or nil when there are none.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	es := l.errs
	sortErrors(es)
	return &es
}
