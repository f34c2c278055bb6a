package oip

import (
	"strconv"
	"strings"
	"testing"
)

var sink []byte

// fp32Body returns a request with one FP32 input of rows x cols, flat, with
// values like the output of a float32 formatter.
func fp32Body(rows, cols int, id string) []byte {
	var sb strings.Builder
	sb.WriteString(`{`)
	if id != "" {
		sb.WriteString(`"id":"` + id + `",`)
	}
	sb.WriteString(`"inputs":[{"name":"input__0","shape":[` + strconv.Itoa(rows) + `,` + strconv.Itoa(cols) +
		`],"datatype":"FP32","data":[`)
	for i := range rows * cols {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatFloat(float64(i%977)*0.0137-3.5, 'g', -1, 32))
	}
	sb.WriteString(`]}],"outputs":[{"name":"output__0"}]}`)
	return []byte(sb.String())
}

// fp32Response returns the upstream's answer with one FP32 output of
// rows x cols.
func fp32Response(rows, cols int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"model_name":"resnet","model_version":"1","id":"batch","outputs":[{"name":"output__0","shape":[` +
		strconv.Itoa(rows) + `,` + strconv.Itoa(cols) + `],"datatype":"FP32","data":[`)
	for i := range rows * cols {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatFloat(float64(i%613)*0.0291+1, 'g', -1, 32))
	}
	sb.WriteString(`]}]}`)
	return []byte(sb.String())
}

func BenchmarkParseRequest64x16(b *testing.B) {
	body := fp32Body(64, 16, "42")
	var r Request
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseRequest(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse64x16(b *testing.B) {
	body := fp32Response(64, 16)
	var r Response
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseResponse(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// callers parses n requests of rows x 16 each.
func callers(b *testing.B, n, rows int) []*Request {
	reqs := make([]*Request, n)
	for i := range reqs {
		reqs[i] = new(Request)
		if err := ParseRequest(fp32Body(rows, 16, "c"+strconv.Itoa(i)), reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return reqs
}

// BenchmarkAppendMerged32 merges 32 callers of 2x16 into one 64x16 request.
func BenchmarkAppendMerged32(b *testing.B) {
	reqs := callers(b, 32, 2)
	dst := make([]byte, 0, 64<<10)
	var err error
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = AppendMerged(dst[:0], []byte(`"batch"`), reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
	sink = dst
}

func BenchmarkAppendBatchKey(b *testing.B) {
	reqs := callers(b, 1, 2)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendBatchKey(dst[:0], reqs[0])
	}
	sink = dst
}

// BenchmarkSplit32 splits a 64x16 response among 32 callers of 2 rows: one
// Prepare and 32 Appends per op.
func BenchmarkSplit32(b *testing.B) {
	body := fp32Response(64, 16)
	var resp Response
	if err := ParseResponse(body, &resp); err != nil {
		b.Fatal(err)
	}
	counts := make([]int64, 32)
	for i := range counts {
		counts[i] = 2
	}
	ids := make([][]byte, 32)
	for i := range ids {
		ids[i] = []byte(`"c` + strconv.Itoa(i) + `"`)
	}
	var s Splitter
	dst := make([]byte, 0, 4<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Prepare(&resp, []byte(`"batch"`), counts); err != nil {
			b.Fatal(err)
		}
		for i := range counts {
			var err error
			if dst, err = s.Append(dst[:0], i, ids[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	sink = dst
}
