// chat.js: plain (non-streamed) chat completions against any Switchyard or
// OpenAI-compatible endpoint, at a constant arrival rate.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-... MODEL=sim-chat k6 run loadtest/k6/chat.js
//
// Env: BASE_URL, API_KEY, MODEL, RATE (req/s, 10), DURATION (30s),
// MAX_VUS (200), MAX_TOKENS (64), P95_MS (2000).
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';
const MAX_TOKENS = parseInt(__ENV.MAX_TOKENS || '64', 10);

const completionTokens = new Counter('completion_tokens');

export const options = {
  scenarios: {
    chat: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '10', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 10,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(95)<${__ENV.P95_MS || '2000'}`],
    checks: ['rate>0.99'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

export default function () {
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: `Say something about load test iteration ${__VU}-${__ITER}.` }],
    max_tokens: MAX_TOKENS,
  });
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '60s' });
  let doc = null;
  try {
    doc = res.json();
  } catch (e) {
    doc = null;
  }
  check(res, {
    'status is 200': (r) => r.status === 200,
    'object is chat.completion': () => doc !== null && doc.object === 'chat.completion',
    'has id, created, model': () => doc !== null && typeof doc.id === 'string' && typeof doc.created === 'number' && typeof doc.model === 'string',
    'first choice has an assistant message': () =>
      doc !== null && Array.isArray(doc.choices) && doc.choices.length > 0 &&
      doc.choices[0].message && doc.choices[0].message.role === 'assistant',
    'has usage': () => doc !== null && doc.usage && doc.usage.completion_tokens >= 0,
  });
  if (doc && doc.usage) completionTokens.add(doc.usage.completion_tokens || 0);
}
