// stream.js: streamed chat completions. Checks the SSE format (every line
// is an SSE field, data, event, id or retry, or a comment; every event's
// data holds a chat.completion.chunk, a usage chunk when
// stream_options.include_usage is set, and a final "data: [DONE]") and
// records time to first chunk as the Trend "ttft".
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-... MODEL=sim-chat k6 run loadtest/k6/stream.js
//
// k6 reads the whole response before a script sees it, so ttft is the
// time to the first response byte (res.timings.waiting): for a server that
// sends the headers with the first chunk, as Switchyard does, that is the
// time to the first chunk.
//
// Env: BASE_URL, API_KEY, MODEL, RATE (req/s, 5), DURATION (30s),
// MAX_VUS (200), MAX_TOKENS (64), TTFT_P95_MS (1000), P95_MS (10000).
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';
const MAX_TOKENS = parseInt(__ENV.MAX_TOKENS || '64', 10);

const ttft = new Trend('ttft', true);
const chunksPerStream = new Trend('chunks_per_stream');
const completionTokens = new Counter('completion_tokens');

export const options = {
  scenarios: {
    stream: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '5', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 10,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(95)<${__ENV.P95_MS || '10000'}`],
    ttft: [`p(95)<${__ENV.TTFT_P95_MS || '1000'}`],
    checks: ['rate>0.99'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json', Accept: 'text/event-stream' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

// parseSSE splits an SSE body into the data of its events, as the SSE
// format defines them: lines are "field: value" (or "field" alone), blank
// lines end events, lines starting with ":" are comments. data lines make
// up the event's data; event, id and retry lines are valid and carry no
// data. It returns null if a line names another field (the body is not
// SSE). It is exported for the tests.
export function parseSSE(text) {
  const events = [];
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  for (const block of blocks) {
    if (block.trim() === '') continue;
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field !== 'event' && field !== 'id' && field !== 'retry') return null;
    }
    if (data.length > 0) events.push(data.join('\n'));
  }
  return events;
}

export default function () {
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: `Write a short story, take ${__VU}-${__ITER}.` }],
    max_tokens: MAX_TOKENS,
    stream: true,
    stream_options: { include_usage: true },
  });
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '120s' });
  if (res.status === 200) ttft.add(res.timings.waiting);

  const events = res.status === 200 && typeof res.body === 'string' ? parseSSE(res.body) : null;
  const chunks = [];
  let jsonOK = events !== null;
  if (events !== null) {
    for (const data of events.filter((e) => e !== '[DONE]')) {
      try {
        chunks.push(JSON.parse(data));
      } catch (e) {
        jsonOK = false;
      }
    }
  }
  const tokenChunks = chunks.filter((c) => Array.isArray(c.choices) && c.choices.length > 0);
  const usageChunk = chunks.find((c) => c.usage && Array.isArray(c.choices) && c.choices.length === 0);
  chunksPerStream.add(tokenChunks.length);
  if (usageChunk) completionTokens.add(usageChunk.usage.completion_tokens || 0);

  check(res, {
    'status is 200': (r) => r.status === 200,
    'content-type is text/event-stream': (r) => (r.headers['Content-Type'] || '').startsWith('text/event-stream'),
    'every line is an SSE field line': () => events !== null && events.length > 0,
    'ends with data: [DONE]': () => events !== null && events.length > 0 && events[events.length - 1] === '[DONE]',
    'every chunk is JSON': () => jsonOK,
    'chunks are chat.completion.chunk with id and model': () =>
      chunks.length > 0 && chunks.every((c) => c.object === 'chat.completion.chunk' && typeof c.id === 'string' && typeof c.model === 'string'),
    'first delta has role assistant': () =>
      tokenChunks.length > 0 && tokenChunks[0].choices[0].delta && tokenChunks[0].choices[0].delta.role === 'assistant',
    'a finish_reason is set': () => tokenChunks.some((c) => c.choices.some((ch) => ch.finish_reason)),
    'usage chunk with choices []': () => usageChunk !== undefined && usageChunk.usage.completion_tokens >= 0,
    'no error event': () => chunks.every((c) => c.error === undefined),
  });
}
