// Package loadtest is Switchyard's load generator: open-loop (constant
// arrival rate) and closed-loop (N users) load against any OpenAI-compatible
// endpoint, with chat, streamed chat, completions, embeddings and weighted
// mixes; prompt and output length distributions, a shared long system
// prompt, repeated and paraphrased prompts, and several API keys. It reports
// throughput, status and error counts, latency percentiles from HDR
// histograms, time to first token and inter-token latency for streams, and
// token rates from the servers' usage.
//
// It is a library first: "switchyard load" and the bench harness both call
// Run in-process. Requests go through one fasthttp.HostClient; streamed
// answers are read with StreamResponseBody and their SSE events are timed
// as they arrive.
//
// In open loop every request has an intended send time, start + i/Rate, and
// its latency is measured from that time, not from when it was actually
// sent. A stalled target (or a stalled generator) therefore shows up in the
// percentiles instead of silently lowering the request rate (coordinated
// omission). Each request runs on its own goroutine, bounded by
// Config.MaxInflight; a request due while the bound is reached is not sent
// and counts as the error "dropped".
package loadtest
