//go:build !amd64 || purego

package vindex

const useAVX2 = false

// dot returns the inner product of a and b, which must have the same length.
// For L2-normalized vectors it is their cosine similarity.
func dot(a, b []float32) float32 { return dotGeneric(a, b) }

func prefetchVec([]float32) {}
