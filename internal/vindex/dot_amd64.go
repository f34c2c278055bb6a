//go:build amd64 && !purego

package vindex

// useAVX2 reports whether the CPU and OS support AVX2 and FMA.
var useAVX2 = func() bool {
	_, _, c, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c&(fma|osxsave|avx) != fma|osxsave|avx || xgetbv()&6 != 6 {
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<5) != 0
}()

func cpuid(eax, ecx uint32) (a, b, c, d uint32)
func xgetbv() uint32

// dotAVX2 returns the inner product of the n float32s at a and b; n must be
// a multiple of 8.
//
//go:noescape
func dotAVX2(a, b *float32, n int) float32

// dot returns the inner product of a and b, which must have the same length.
// For L2-normalized vectors it is their cosine similarity.
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	if !useAVX2 || n < 8 {
		return dotGeneric(a, b)
	}
	n8 := n &^ 7
	s := dotAVX2(&a[0], &b[0], n8)
	for i := n8; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

// prefetch hints the n > 0 floats at p into the CPU cache.
//
//go:noescape
func prefetch(p *float32, n int)

// prefetchVec hints v into the CPU cache.
func prefetchVec(v []float32) { prefetch(&v[0], len(v)) }
