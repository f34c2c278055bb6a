// cache.js: repeated prompts, to exercise the gateway's response cache.
// setup() sends each prompt once to fill the cache and keeps each answer
// (the miss); the test then repeats them and reads the x-switchyard-cache
// response header ("hit" or "miss" and so on; any value starting with "hit"
// counts as a hit). A hit must replay its miss: the same id and the same
// message content, so a stage that only stamps "hit" on fresh answers fails
// (a real upstream gives every answer a new id). Hit latency and miss
// latency are recorded as separate Trends.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-... MODEL=sim-chat k6 run loadtest/k6/cache.js
//
// Env: BASE_URL, API_KEY, MODEL, PROMPTS (distinct prompts, 5), RATE
// (req/s, 20), DURATION (20s), MAX_VUS (100), MIN_HIT_RATE (0.9),
// HIT_P95_MS (100).
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-chat';
const PROMPTS = parseInt(__ENV.PROMPTS || '5', 10);

const cacheHit = new Rate('cache_hit');
const cacheHits = new Counter('cache_hits');
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
    // There were hits (every iteration adds to cache_hits, 0 or 1: a
    // threshold on a metric without samples may pass)...
    cache_hits: ['count>0'],
    cache_hit_duration: [`p(95)<${__ENV.HIT_P95_MS || '100'}`],
    // ...and every hit replayed its miss.
    'checks{kind:hit}': ['rate==1'],
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
    // Room for the whole answer: one cut off by max_tokens (finish_reason
    // length) is not stored by Switchyard's cache.
    max_tokens: 128,
    temperature: 0,
  });
  return http.post(`${BASE_URL}/v1/chat/completions`, body, { headers: headers(), timeout: '60s' });
}

// answer is what a hit must replay of a response: its id and content.
function answer(res) {
  try {
    const doc = JSON.parse(res.body);
    return { id: doc.id, content: doc.choices[0].message.content };
  } catch (e) {
    return null;
  }
}

export function setup() {
  const misses = [];
  for (let i = 0; i < PROMPTS; i++) {
    const res = request(i);
    if (res.status !== 200) throw new Error(`warming prompt ${i}: status ${res.status}: ${res.body}`);
    misses.push(answer(res));
  }
  return { misses };
}

// cacheChecks are the checks of one answer to prompt i, given the misses
// seen for it. It is pure, so the tests run it on recorded responses.
export function cacheChecks(res, misses) {
  const value = String(res.headers['X-Switchyard-Cache'] || '').toLowerCase();
  const hit = value.startsWith('hit');
  const got = answer(res);
  const checks = {
    'status is 200': res.status === 200,
    'x-switchyard-cache header present': value !== '',
  };
  const hitChecks = hit
    ? {
        'a hit replays its miss (same id and content)': got !== null &&
          misses.some((m) => m !== null && m.id === got.id && m.content === got.content),
      }
    : {};
  return { hit, got, checks, hitChecks };
}

// seen holds, per prompt, the answers this VU saw as misses: setup's, then
// any later miss, which refills the cache.
let seen = null;

export default function (data) {
  if (seen === null) seen = data.misses.map((m) => [m]);
  const i = exec.scenario.iterationInTest % PROMPTS;
  const res = request(i);
  const r = cacheChecks(res, seen[i]);
  cacheHit.add(r.hit);
  (r.hit ? hitLatency : missLatency).add(res.timings.duration);
  cacheHits.add(r.hit ? 1 : 0);
  if (!r.hit && r.got !== null && res.status === 200 && seen[i].length < 16) seen[i].push(r.got);
  const sets = (m) => Object.fromEntries(Object.entries(m).map(([k, ok]) => [k, () => ok]));
  check(res, sets(r.checks));
  if (r.hit) check(res, sets(r.hitChecks), { kind: 'hit' });
}
