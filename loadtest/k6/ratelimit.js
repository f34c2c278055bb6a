// ratelimit.js: drives one key beyond its rate limit and expects the
// gateway to answer the excess with 429, a retry-after header and an
// OpenAI-style error body, while the requests within the limit succeed.
// Configure a limit for API_KEY below RATE first, e.g. 10 req/s against
// the default RATE of 30.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-limited MODEL=sim-chat RATE=30 k6 run loadtest/k6/ratelimit.js
//
// Env: BASE_URL, API_KEY, MODEL, RATE (req/s, 30), DURATION (20s),
// MAX_VUS (200), MIN_LIMITED (share of requests that must get 429, 0.1).
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';

const limited = new Rate('rate_limited');
const passed = new Rate('passed');
const unexpected = new Counter('unexpected_status');

// 429 is an expected answer here, not a failed request.
http.setResponseCallback(http.expectedStatuses(200, 429));

export const options = {
  scenarios: {
    burst: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '30', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: 10,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
    },
  },
  thresholds: {
    // Beyond the limit some requests must be refused...
    rate_limited: [`rate>=${__ENV.MIN_LIMITED || '0.1'}`],
    // ...but not all of them: the limit lets some through.
    passed: ['rate>0'],
    // Every answer is 200 or 429, and every 429 is well formed.
    unexpected_status: ['count==0'],
    'checks{kind:limited}': ['rate==1'],
    http_req_failed: ['rate<0.01'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

export default function () {
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 });
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '30s' });
  limited.add(res.status === 429);
  if (res.status !== 200 && res.status !== 429) unexpected.add(1);
  passed.add(res.status === 200);
  if (res.status !== 429) return;

  let doc = null;
  try {
    doc = res.json();
  } catch (e) {
    doc = null;
  }
  const retryAfter = res.headers['Retry-After'];
  check(
    res,
    {
      '429 has a numeric retry-after': () => retryAfter !== undefined && /^\d+(\.\d+)?$/.test(String(retryAfter).trim()),
      '429 has an OpenAI error body': () => doc !== null && doc.error && typeof doc.error.message === 'string' && typeof doc.error.type === 'string',
    },
    { kind: 'limited' },
  );
}
