// cache.js: repeated prompts, to exercise the gateway's response cache.
// setup() sends each prompt once to fill the cache; the test then repeats
// them and reads the x-switchyard-cache response header ("hit" or "miss"
// and so on; any value starting with "hit" counts as a hit). Hit latency
// and miss latency are recorded as separate Trends.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-... MODEL=sim-chat k6 run loadtest/k6/cache.js
//
// Env: BASE_URL, API_KEY, MODEL, PROMPTS (distinct prompts, 5), RATE
// (req/s, 20), DURATION (20s), MAX_VUS (100), MIN_HIT_RATE (0.9),
// HIT_P95_MS (100).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Rate, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';
const PROMPTS = parseInt(__ENV.PROMPTS || '5', 10);

const cacheHit = new Rate('cache_hit');
const hitLatency = new Trend('cache_hit_duration', true);
const missLatency = new Trend('cache_miss_duration', true);

export const options = {
  scenarios: {
    repeat: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '20', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: 5,
      maxVUs: parseInt(__ENV.MAX_VUS || '100', 10),
    },
  },
  thresholds: {
    cache_hit: [`rate>=${__ENV.MIN_HIT_RATE || '0.9'}`],
    cache_hit_duration: [`p(95)<${__ENV.HIT_P95_MS || '100'}`],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

function request(i) {
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: `Cache test prompt number ${i}: what is the capital of France?` }],
    max_tokens: 16,
    temperature: 0,
  });
  return http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '60s' });
}

export function setup() {
  for (let i = 0; i < PROMPTS; i++) {
    const res = request(i);
    if (res.status !== 200) throw new Error(`warming prompt ${i}: status ${res.status}: ${res.body}`);
  }
}

export default function () {
  const res = request(exec.scenario.iterationInTest % PROMPTS);
  const value = String(res.headers['X-Switchyard-Cache'] || '').toLowerCase();
  const hit = value.startsWith('hit');
  cacheHit.add(hit);
  (hit ? hitLatency : missLatency).add(res.timings.duration);
  check(res, {
    'status is 200': (r) => r.status === 200,
    'x-switchyard-cache header present': () => value !== '',
  });
}
