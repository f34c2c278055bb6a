// ratelimit.js: checks that the gateway's own rate limiter refuses exactly
// the excess over the configured limit. Configure a limit of LIMIT req/s for
// API_KEY first (RATE must be above it). Two phases:
//
//   under: LIMIT/2 req/s for UNDER_DURATION; no request may get 429.
//   over:  RATE req/s for DURATION; about 1 - LIMIT/RATE of them get 429,
//          and about LIMIT/s still pass.
//
// Every 429 must carry the limiter's signature: a numeric retry-after, the
// headers x-ratelimit-limit-requests (numeric) and
// x-ratelimit-remaining-requests ("0"), and an OpenAI error body with code
// "rate_limit_exceeded". An upstream that answers 429 at random fails this:
// its 429s come in the under phase too, and at the wrong share.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-limited MODEL=sim-chat LIMIT=10 RATE=30 k6 run loadtest/k6/ratelimit.js
//
// Env: BASE_URL, API_KEY, MODEL, LIMIT (req/s, 10), RATE (req/s, 30),
// DURATION (20s), UNDER_DURATION (10s), MAX_VUS (200), TOLERANCE (share the
// 429s and passes may fall short of the expected ones, 0.5).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';
const LIMIT = parseFloat(__ENV.LIMIT || '10');
const RATE = parseInt(__ENV.RATE || '30', 10);
const TOLERANCE = parseFloat(__ENV.TOLERANCE || '0.5');
const UNDER_DURATION = __ENV.UNDER_DURATION || '10s';

// seconds reads a k6 duration such as "10s", "1m" or "1m30s".
function seconds(d) {
  let total = 0;
  for (const [, n, unit] of String(d).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += parseFloat(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit];
  }
  return total;
}

// The expected shares in the over phase, less the tolerance.
const minLimited = (1 - LIMIT / RATE) * (1 - TOLERANCE);
const minPassed = (LIMIT / RATE) * (1 - TOLERANCE);

const limited = new Rate('rate_limited');
const passed = new Rate('passed');
const underPhase = new Rate('under_phase');
const limitedResponses = new Counter('limited_responses');
const unexpected = new Counter('unexpected_status');

// 429 is an expected answer here, not a failed request.
http.setResponseCallback(http.expectedStatuses(200, 429));

export const options = {
  scenarios: {
    under: {
      executor: 'constant-arrival-rate',
      rate: Math.max(1, Math.floor(LIMIT / 2)),
      timeUnit: '1s',
      duration: UNDER_DURATION,
      preAllocatedVUs: 5,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
      tags: { phase: 'under' },
    },
    over: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      // Let the limiter's window from the under phase pass first.
      startTime: `${Math.ceil(seconds(UNDER_DURATION)) + 2}s`,
      preAllocatedVUs: 10,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
      tags: { phase: 'over' },
    },
  },
  thresholds: {
    // Both phases ran. (A threshold on a metric without samples may pass,
    // so the guards here are on metrics every iteration adds to.)
    under_phase: ['rate>0', 'rate<1'],
    // Within the limit nothing is refused...
    'rate_limited{phase:under}': ['rate==0'],
    // ...beyond it the excess is, and about the limit still passes.
    'rate_limited{phase:over}': [`rate>=${minLimited}`],
    'passed{phase:over}': [`rate>=${minPassed}`],
    // Every answer is 200 or 429, and every 429 has the limiter's signature.
    unexpected_status: ['count==0'],
    limited_responses: ['count>0'],
    'checks{kind:limited}': ['rate==1'],
    http_req_failed: ['rate<0.01'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

// limiterChecks are the checks of a 429: the gateway limiter's signature.
// It is pure, so the tests run it on recorded responses.
export function limiterChecks(res) {
  let doc = null;
  try {
    doc = JSON.parse(res.body);
  } catch (e) {
    doc = null;
  }
  const h = (name) => (res.headers[name] === undefined ? undefined : String(res.headers[name]).trim());
  const numeric = (v) => v !== undefined && /^\d+(\.\d+)?$/.test(v);
  const err = doc !== null && typeof doc === 'object' ? doc.error : undefined;
  return {
    '429 has a numeric retry-after': numeric(h('Retry-After')),
    '429 has x-ratelimit-limit-requests': numeric(h('X-Ratelimit-Limit-Requests')),
    '429 has x-ratelimit-remaining-requests 0': h('X-Ratelimit-Remaining-Requests') === '0',
    '429 has an OpenAI error body': Boolean(err) && typeof err.message === 'string' && typeof err.type === 'string',
    '429 error code is rate_limit_exceeded': Boolean(err) && err.code === 'rate_limit_exceeded',
  };
}

export default function () {
  const phase = exec.scenario.name === 'under' ? 'under' : 'over';
  const tags = { phase };
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 });
  const res = http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '30s', tags });
  underPhase.add(phase === 'under');
  limitedResponses.add(res.status === 429 ? 1 : 0, tags);
  limited.add(res.status === 429, tags);
  passed.add(res.status === 200, tags);
  if (res.status !== 200 && res.status !== 429) unexpected.add(1, tags);
  if (res.status !== 429) return;
  const results = limiterChecks(res);
  const sets = {};
  for (const [name, ok] of Object.entries(results)) sets[name] = () => ok;
  check(res, sets, { kind: 'limited', phase });
}
