package pgstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"switchyard/internal/retrieve"
)

// maxVectorBytes bounds a document's vectors (a BYTEA holds up to 1 GB).
const maxVectorBytes = 1 << 30

// encodeDoc returns d without its vectors as JSON (its Seq 0: the column
// is the number) and its vectors as the BYTEA.
func encodeDoc(d *retrieve.StoredDoc) ([]byte, []byte, error) {
	if len(d.Vectors) != len(d.Chunks) {
		return nil, nil, fmt.Errorf("document %q: %d vectors for %d chunks", d.ID, len(d.Vectors), len(d.Chunks))
	}
	if d.Dim <= 0 || len(d.Vectors)*d.Dim*4 > maxVectorBytes {
		return nil, nil, fmt.Errorf("document %q: %d vectors of %d-d", d.ID, len(d.Vectors), d.Dim)
	}
	c := *d
	c.Seq = 0
	js, err := json.Marshal(&c)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding document %q: %w", d.ID, err)
	}
	vecs, err := appendVectors(make([]byte, 0, len(d.Vectors)*d.Dim*4), d.Vectors, d.Dim)
	if err != nil {
		return nil, nil, fmt.Errorf("document %q: %w", d.ID, err)
	}
	return js, vecs, nil
}

// decodeDoc is encodeDoc's inverse: it refuses unknown fields, a document
// under another id, and vectors that do not match its chunks and Dim.
func decodeDoc(id string, js, vecs []byte) (*retrieve.StoredDoc, error) {
	if js == nil || vecs == nil {
		return nil, errors.New("document or vectors missing")
	}
	d := new(retrieve.StoredDoc)
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(d); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if d.ID != id {
		return nil, fmt.Errorf("the row holds document %q", d.ID)
	}
	v, err := decodeVectors(vecs, len(d.Chunks), d.Dim)
	if err != nil {
		return nil, err
	}
	d.Vectors = v
	return d, nil
}

// appendVectors appends vs, each of dim components, as float32 bits,
// little-endian, one after the other.
func appendVectors(b []byte, vs [][]float32, dim int) ([]byte, error) {
	for i, v := range vs {
		if len(v) != dim {
			return nil, fmt.Errorf("vector %d has %d components, want %d", i, len(v), dim)
		}
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b, nil
}

// decodeVectors reads count vectors of dim components from b, which must
// hold exactly that many. The vectors share one block.
func decodeVectors(b []byte, count, dim int) ([][]float32, error) {
	if count < 0 || dim <= 0 || count > maxVectorBytes/4/dim || len(b) != count*dim*4 {
		return nil, fmt.Errorf("vectors: %d bytes for %d vectors of %d-d", len(b), count, dim)
	}
	block := make([]float32, count*dim)
	for i := range block {
		block[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	out := make([][]float32, count)
	for i := range out {
		out[i] = block[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out, nil
}
