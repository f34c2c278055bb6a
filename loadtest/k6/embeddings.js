// embeddings.js: embeddings requests with a batch of inputs, in float or
// base64 encoding (the Node SDK's default).
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=sk-... MODEL=sim-embed k6 run loadtest/k6/embeddings.js
//
// Env: BASE_URL, API_KEY, MODEL (the embeddings model), RATE (req/s, 20),
// DURATION (30s), MAX_VUS (200), BATCH (inputs per request, 4),
// ENCODING (float or base64, float), P95_MS (1000).
import http from 'k6/http';
import { check } from 'k6';
import encoding from 'k6/encoding';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '').replace(/\/v1$/, '');
const API_KEY = __ENV.API_KEY || '';
const MODEL = __ENV.MODEL || 'sim-embed';
const BATCH = parseInt(__ENV.BATCH || '4', 10);
const ENCODING = __ENV.ENCODING || 'float';

export const options = {
  scenarios: {
    embeddings: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '20', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 10,
      maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(95)<${__ENV.P95_MS || '1000'}`],
    checks: ['rate>0.99'],
  },
};

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

// vectorOK reports whether one embedding is a non-empty vector in the
// requested encoding (base64: little-endian float32s).
function vectorOK(e) {
  if (ENCODING === 'base64') {
    if (typeof e !== 'string') return false;
    const bytes = encoding.b64decode(e);
    return bytes.byteLength > 0 && bytes.byteLength % 4 === 0;
  }
  return Array.isArray(e) && e.length > 0 && e.every((x) => typeof x === 'number');
}

export default function () {
  const input = [];
  for (let i = 0; i < BATCH; i++) input.push(`document ${__VU}-${__ITER}-${i} about rivers and mountains`);
  const res = http.post(`${BASE_URL}/v1/embeddings`, JSON.stringify({ model: MODEL, input, encoding_format: ENCODING }), {
    headers: headers(),
    timeout: '60s',
  });
  let doc = null;
  try {
    doc = res.json();
  } catch (e) {
    doc = null;
  }
  check(res, {
    'status is 200': (r) => r.status === 200,
    'object is list': () => doc !== null && doc.object === 'list',
    'one embedding per input, in order': () =>
      doc !== null && Array.isArray(doc.data) && doc.data.length === BATCH && doc.data.every((d, i) => d.index === i && d.object === 'embedding'),
    'vectors in the requested encoding': () => doc !== null && Array.isArray(doc.data) && doc.data.every((d) => vectorOK(d.embedding)),
    'has usage.prompt_tokens': () => doc !== null && doc.usage && doc.usage.prompt_tokens > 0,
  });
}
