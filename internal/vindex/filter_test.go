package vindex

import (
	"slices"
	"testing"
)

// TestSearchFunc checks the filtered search against the brute force over the
// admitted ids, on the exact path and on the graph, and that admitting
// everything gives what Search gives.
func TestSearchFunc(t *testing.T) {
	const n, dim, k = 3000, 64, 10
	data := clusteredData(7, n+100, dim, 30, 0.6)
	data, queries := data[:n], data[n:]
	for _, tc := range []struct {
		name   string
		o      Options
		minRec float64 // recall@k against the filtered brute force
	}{
		{"exact", Options{ExactBelow: n + 1}, 1},
		{"graph", Options{ExactBelow: -1}, 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := build(t, data, tc.o)
			// Delete some ids, so that tombstones and refusals mix.
			for id := uint64(1); id <= n; id += 17 {
				ix.Delete(id)
			}
			live := func(id uint64) bool { return (id-1)%17 != 0 }
			for _, mod := range []uint64{1, 3, 50} {
				allow := func(id uint64) bool { return id%mod == 0 }
				var ids []uint64
				var vecs [][]float32
				for i, v := range data {
					id := uint64(i) + 1
					if live(id) && allow(id) {
						ids = append(ids, id)
						vecs = append(vecs, v)
					}
				}
				found, total := 0, 0
				for _, q := range queries {
					want := bruteForce(ids, vecs, q, k)
					got := ix.SearchFunc(q, k, allow, nil)
					for _, h := range got {
						if !allow(h.ID) || !live(h.ID) {
							t.Fatalf("mod %d: id %d returned, not admitted", mod, h.ID)
						}
					}
					if len(got) != len(want) {
						t.Fatalf("mod %d: %d hits, want %d", mod, len(got), len(want))
					}
					set := map[uint64]bool{}
					for _, h := range got {
						set[h.ID] = true
					}
					for _, h := range want {
						if set[h.ID] {
							found++
						}
					}
					total += len(want)
				}
				if rec := float64(found) / float64(total); rec < tc.minRec {
					t.Errorf("mod %d: recall@%d %.3f, want >= %.3f", mod, k, rec, tc.minRec)
				}
			}
			for _, q := range queries {
				all := ix.SearchFunc(q, k, func(uint64) bool { return true }, nil)
				if plain := ix.Search(q, k, nil); !slices.Equal(all, plain) {
					t.Fatalf("admit-all SearchFunc %v, Search %v", all, plain)
				}
			}
		})
	}
}

// TestSearchIDs checks the exact search among given ids, with absent,
// deleted and repeated ids.
func TestSearchIDs(t *testing.T) {
	const n, dim, k = 500, 32, 7
	data := randomData(3, n+20, dim)
	data, queries := data[:n], data[n:]
	ix := build(t, data, Options{ExactBelow: -1})
	ix.Delete(5)
	var ids []uint64
	var vecs [][]float32
	for i := 0; i < n; i += 3 {
		id := uint64(i) + 1
		if id == 5 {
			continue
		}
		ids = append(ids, id)
		vecs = append(vecs, data[i])
	}
	query := append(slices.Clone(ids), 5, 99999, ids[0], ids[1])
	for _, q := range queries {
		want := bruteForce(ids, vecs, q, k)
		got := ix.SearchIDs(q, query, k, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("SearchIDs = %v, want %v", got, want)
		}
	}
	if got := ix.SearchIDs(queries[0], nil, k, nil); len(got) != 0 {
		t.Errorf("no ids: %v", got)
	}
	if got := ix.SearchIDs(queries[0][:3], ids, k, nil); len(got) != 0 {
		t.Errorf("wrong dimension: %v", got)
	}
}
