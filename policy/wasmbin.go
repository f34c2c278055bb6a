package policy

import (
	"bytes"
	"errors"
	"fmt"
)

// ownMemory rewrites a WebAssembly module that imports env.memory (as
// OPA's compiled policies do) into one that defines that memory itself,
// with the same limits, and exports it as "memory". wazero's host modules
// cannot provide a memory, and each instance of a policy needs one of its
// own anyway. Only the import, memory and export sections change: function,
// table and global indices stay as they are (memories are numbered apart
// from them, and the memory stays number 0).
func ownMemory(bin []byte) ([]byte, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, errors.New("wasm: not a version 1 module")
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	for r := bin[8:]; len(r) > 0; {
		id := r[0]
		n, w, err := uleb(r[1:])
		if err != nil {
			return nil, fmt.Errorf("wasm: section %d: %w", id, err)
		}
		start := 1 + w
		if uint64(len(r)-start) < n {
			return nil, fmt.Errorf("wasm: section %d runs past the end", id)
		}
		sections = append(sections, section{id, r[start : start+int(n)]})
		r = r[start+int(n):]
	}
	var limits []byte
	for i, s := range sections {
		switch s.id {
		case 2:
			body, l, err := dropMemoryImport(s.body)
			if err != nil {
				return nil, err
			}
			sections[i].body, limits = body, l
		case 5:
			return nil, errors.New("wasm: the module defines a memory")
		}
	}
	if limits == nil {
		return nil, errors.New("wasm: the module imports no env.memory")
	}
	// The memory section goes before the first section that must follow
	// it (global, export, start, element, data count, code, data); custom
	// sections (0) may sit anywhere.
	memory := section{5, append([]byte{1}, limits...)}
	out := make([]section, 0, len(sections)+2)
	placed, exported := false, false
	for _, s := range sections {
		if !placed && s.id != 0 && s.id >= 6 {
			out, placed = append(out, memory), true
		}
		if s.id == 7 {
			body, err := addMemoryExport(s.body)
			if err != nil {
				return nil, err
			}
			s.body, exported = body, true
		}
		if !exported && s.id != 0 && s.id > 7 {
			body, _ := addMemoryExport([]byte{0})
			out, exported = append(out, section{7, body}), true
		}
		out = append(out, s)
	}
	if !placed {
		out = append(out, memory)
	}
	if !exported {
		body, _ := addMemoryExport([]byte{0})
		out = append(out, section{7, body})
	}
	res := append(make([]byte, 0, len(bin)+32), bin[:8]...)
	for _, s := range out {
		res = append(res, s.id)
		res = appendUleb(res, uint64(len(s.body)))
		res = append(res, s.body...)
	}
	return res, nil
}

// dropMemoryImport removes the env.memory import from an import section's
// body and returns the memory's limits as encoded.
func dropMemoryImport(body []byte) ([]byte, []byte, error) {
	count, w, err := uleb(body)
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: imports: %w", err)
	}
	r := body[w:]
	var kept [][]byte
	var limits []byte
	for range count {
		entry := r
		mod, n1, err := name(r)
		if err != nil {
			return nil, nil, err
		}
		field, n2, err := name(r[n1:])
		if err != nil {
			return nil, nil, err
		}
		p := n1 + n2
		if p >= len(r) {
			return nil, nil, errors.New("wasm: an import runs past the end")
		}
		kind := r[p]
		p++
		switch kind {
		case 0: // function: type index
			_, n, err := uleb(r[p:])
			if err != nil {
				return nil, nil, err
			}
			p += n
		case 1: // table: reference type, limits
			if p >= len(r) {
				return nil, nil, errors.New("wasm: a table import runs past the end")
			}
			n, err := limitsLen(r[p+1:])
			if err != nil {
				return nil, nil, err
			}
			p += 1 + n
		case 2: // memory: limits
			n, err := limitsLen(r[p:])
			if err != nil {
				return nil, nil, err
			}
			if mod == "env" && field == "memory" {
				limits = r[p : p+n]
				r = r[p+n:]
				continue
			}
			p += n
		case 3: // global: value type, mutability
			p += 2
		default:
			return nil, nil, fmt.Errorf("wasm: import kind %d", kind)
		}
		if p > len(r) {
			return nil, nil, errors.New("wasm: an import runs past the end")
		}
		kept = append(kept, entry[:p])
		r = r[p:]
	}
	if len(r) != 0 {
		return nil, nil, errors.New("wasm: bytes after the imports")
	}
	out := appendUleb(nil, uint64(len(kept)))
	for _, e := range kept {
		out = append(out, e...)
	}
	return out, limits, nil
}

// addMemoryExport adds the export of memory 0 as "memory" to an export
// section's body, unless it exports the memory already (OPA's modules
// re-export the memory they import).
func addMemoryExport(body []byte) ([]byte, error) {
	count, w, err := uleb(body)
	if err != nil {
		return nil, fmt.Errorf("wasm: exports: %w", err)
	}
	r := body[w:]
	for range count {
		field, n, err := name(r)
		if err != nil {
			return nil, err
		}
		if n >= len(r) {
			return nil, errors.New("wasm: an export runs past the end")
		}
		kind := r[n]
		_, m, err := uleb(r[n+1:])
		if err != nil {
			return nil, err
		}
		if field == "memory" {
			if kind != 2 {
				return nil, errors.New(`wasm: the export "memory" is not a memory`)
			}
			return body, nil
		}
		r = r[n+1+m:]
	}
	out := appendUleb(nil, count+1)
	out = append(out, body[w:]...)
	out = appendUleb(out, uint64(len("memory")))
	out = append(out, "memory"...)
	return append(out, 2, 0), nil
}

// limitsLen is the length of the limits at the start of b: a flag, the
// minimum and, when the flag says so, the maximum.
func limitsLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("wasm: limits run past the end")
	}
	if b[0] > 3 {
		return 0, fmt.Errorf("wasm: limits flag %d", b[0])
	}
	_, n, err := uleb(b[1:])
	if err != nil {
		return 0, err
	}
	p := 1 + n
	if b[0]&1 == 1 {
		_, n, err := uleb(b[p:])
		if err != nil {
			return 0, err
		}
		p += n
	}
	return p, nil
}

func name(b []byte) (string, int, error) {
	n, w, err := uleb(b)
	if err != nil {
		return "", 0, err
	}
	if uint64(len(b)-w) < n {
		return "", 0, errors.New("wasm: a name runs past the end")
	}
	return string(b[w : w+int(n)]), w + int(n), nil
}

// uleb reads an unsigned LEB128 number of at most 32 bits.
func uleb(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("wasm: a number runs past the end")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, errors.New("wasm: a number is too large")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("wasm: a number is too long")
}

func appendUleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
