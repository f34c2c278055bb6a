// check.mjs loads k6 scripts as ES modules in node, with k6's modules
// replaced by stubs that export exactly the names k6 documents, and prints
// one JSON line per script: its imports, its exported names, its
// thresholds, or the error that stopped it. With --responses FILE (a JSON
// object: script base name -> canned HTTP response), it also runs the
// script's setup and one iteration against that response with fake k6
// modules and reports every check's outcome; given a list of iterations
// (see runScript) it also evaluates the thresholds over the metric samples
// the run recorded, as k6 would at the end of a test. Run by k6_test.go:
//
//   node --experimental-vm-modules --no-warnings testdata/check.mjs [--responses F] chat.js ...
import fs from 'node:fs';
import vm from 'node:vm';

// The modules and names k6 documents (k6 v0.5x/v1 JavaScript API).
const k6Modules = {
  'k6': ['check', 'fail', 'group', 'randomSeed', 'sleep'],
  'k6/http': ['default', 'asyncRequest', 'batch', 'cookieJar', 'CookieJar', 'del', 'expectedStatuses', 'file', 'FileData',
    'get', 'head', 'options', 'patch', 'post', 'put', 'request', 'setResponseCallback', 'url',
    'TLS_1_0', 'TLS_1_1', 'TLS_1_2', 'TLS_1_3', 'OCSP_STATUS_GOOD', 'OCSP_STATUS_REVOKED', 'OCSP_STATUS_UNKNOWN'],
  'k6/metrics': ['Counter', 'Gauge', 'Rate', 'Trend'],
  'k6/encoding': ['default', 'b64decode', 'b64encode'],
  'k6/crypto': ['default', 'createHash', 'createHMAC', 'hexEncode', 'hmac', 'md4', 'md5', 'randomBytes', 'ripemd160',
    'sha1', 'sha256', 'sha384', 'sha512', 'sha512_224', 'sha512_256'],
  'k6/data': ['SharedArray'],
  'k6/execution': ['default'],
};

// stub is callable, constructible and has every property, each a stub.
function stub() {
  const target = function () {};
  const p = new Proxy(target, {
    get: (t, key) => (key === Symbol.toPrimitive ? () => 0 : key === 'then' ? undefined : p),
    apply: () => p,
    construct: () => p,
  });
  return p;
}

// fakeModules builds working stand-ins for k6's modules: HTTP calls return
// canned responses (run.next() picks them), checks are recorded in checks,
// and every metric sample, k6's own (checks, http_req_failed,
// http_req_duration) included, is appended to run.samples with its tags.
function fakeModules(run, checks) {
  const makeResponse = (resp) => ({
    status: resp.status,
    body: resp.body,
    headers: resp.headers || {},
    timings: { duration: resp.duration ?? 12, waiting: resp.waiting ?? 5 },
    json() { return JSON.parse(resp.body); },
  });
  let expected = null; // statuses set by setResponseCallback, else 200-399
  const sample = (metric, value, tags) => run.samples.push({ metric, value: Number(value), tags: { ...run.tags, ...(tags || {}) } });
  const call = (params) => {
    const r = makeResponse(run.next());
    const ok = expected ? expected.includes(r.status) : r.status >= 200 && r.status < 400;
    const tags = params && params.tags;
    sample('http_req_failed', ok ? 0 : 1, tags);
    sample('http_req_duration', r.timings.duration, tags);
    return r;
  };
  const http = {
    post: (url, body, params) => call(params), get: (url, params) => call(params), request: (m, url, body, params) => call(params),
    setResponseCallback: (cb) => { expected = cb && cb.statuses ? cb.statuses : null; },
    expectedStatuses: (...statuses) => ({ statuses }),
  };
  class Metric {
    constructor(name) { this.name = name; }
    add(value, tags) { sample(this.name, value, tags); }
  }
  return {
    'k6': {
      check(val, sets, tags) {
        let all = true;
        for (const [name, fn] of Object.entries(sets)) {
          const ok = Boolean(fn(val));
          checks[name] = (checks[name] ?? true) && ok;
          sample('checks', ok ? 1 : 0, { ...(tags || {}), check: name });
          all = all && ok;
        }
        return all;
      },
      fail(msg) { throw new Error(msg); }, group: (_, fn) => fn(), randomSeed() {}, sleep() {},
    },
    'k6/http': { default: http, ...http },
    'k6/metrics': { Counter: Metric, Gauge: Metric, Rate: Metric, Trend: Metric },
    'k6/encoding': {
      default: {},
      b64decode: (s) => { const b = Buffer.from(s, 'base64'); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); },
      b64encode: (s) => Buffer.from(s).toString('base64'),
    },
    'k6/crypto': { default: {} },
    'k6/data': { SharedArray: class { constructor(_, fn) { return fn(); } } },
    'k6/execution': { default: { scenario: run.scenario, vu: { idInTest: 1 }, test: {} } },
  };
}

// aggregate computes a threshold's aggregation over sample values, as k6
// does for the metric's type (rate: share of non-zero values).
function aggregate(agg, values) {
  const sorted = [...values].sort((a, b) => a - b);
  const pct = (p) => {
    if (sorted.length === 1) return sorted[0];
    const i = (p / 100) * (sorted.length - 1);
    const lo = Math.floor(i);
    return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (i - lo);
  };
  const sum = values.reduce((a, b) => a + b, 0);
  const m = /^p\((\d+(?:\.\d+)?)\)$/.exec(agg);
  if (m) return pct(parseFloat(m[1]));
  switch (agg) {
    case 'rate': return values.filter((v) => v !== 0).length / values.length;
    case 'count': return sum;
    case 'avg': return sum / values.length;
    case 'min': return sorted[0];
    case 'max': return sorted[sorted.length - 1];
    case 'med': return pct(50);
    case 'value': return values[values.length - 1];
  }
  throw new Error(`threshold aggregation ${agg}: not supported by this checker`);
}

const comparisons = {
  '<': (a, b) => a < b, '<=': (a, b) => a <= b, '>': (a, b) => a > b, '>=': (a, b) => a >= b,
  '==': (a, b) => a === b, '===': (a, b) => a === b, '!=': (a, b) => a !== b,
};

// evalThresholds evaluates thresholds ({"metric{tag:value,...}": [rule]})
// over samples. Like k6, a metric (or sub-metric) without samples passes
// every rule; that is why the scripts guard their thresholds with count>0.
function evalThresholds(thresholds, samples) {
  const out = {};
  for (const [key, rules] of Object.entries(thresholds)) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key);
    const name = m[1].trim();
    const want = (m[2] || '').split(',').filter((t) => t.trim() !== '').map((t) => {
      const i = t.indexOf(':');
      return [t.slice(0, i).trim(), t.slice(i + 1).trim()];
    });
    const values = samples
      .filter((x) => x.metric === name && want.every(([k, v]) => String(x.tags[k]) === v))
      .map((x) => x.value);
    out[key] = { samples: values.length, rules: {} };
    for (const rule of rules) {
      const text = typeof rule === 'string' ? rule : rule.threshold;
      const r = /^\s*([a-z]+(?:\([\d.]+\))?)\s*(===|==|!=|<=|>=|<|>)\s*(-?[\d.]+(?:e-?\d+)?)\s*$/.exec(text);
      if (!r) throw new Error(`threshold ${key}: rule ${JSON.stringify(text)} not understood by this checker`);
      out[key].rules[text] = values.length === 0 || comparisons[r[2]](aggregate(r[1], values), parseFloat(r[3]));
    }
  }
  return out;
}

// runScript runs a script with fake modules against spec, either one
// canned response ({status, body, headers}: setup and one iteration) or
// {env, setup: [response...], iterations: [{scenario, response}...]}:
// setup's HTTP calls take the setup responses in turn (the last repeats),
// then each iteration runs the default function against its response, in
// its scenario (tagged with the scenario's tags). It reports every check's
// outcome and, for the iterations form, each threshold's.
async function runScript(file, spec) {
  const checks = {};
  const multi = Array.isArray(spec.iterations);
  const run = { samples: [], tags: {}, scenario: { iterationInTest: 0, name: 'test' } };
  let queue = multi ? [...(spec.setup || [])] : [spec];
  run.next = () => {
    if (queue.length === 0) throw new Error('no canned response left for an HTTP call');
    return queue.length > 1 ? queue.shift() : queue[0];
  };
  const fakes = fakeModules(run, checks);
  const context = vm.createContext({ __ENV: { ...(spec.env || {}) }, __VU: 1, __ITER: 0, console });
  const mod = new vm.SourceTextModule(fs.readFileSync(file, 'utf8'), { identifier: file, context });
  await mod.link((specifier) => {
    const names = k6Modules[specifier];
    return new vm.SyntheticModule(names, function () {
      for (const n of names) this.setExport(n, fakes[specifier][n]);
    }, { identifier: specifier, context });
  });
  await mod.evaluate();
  const ns = mod.namespace;
  const data = typeof ns.setup === 'function' ? ns.setup() : undefined;
  if (!multi) {
    ns.default(data);
    return { checks };
  }
  const scenarios = (ns.options && ns.options.scenarios) || {};
  spec.iterations.forEach((it, i) => {
    const name = it.scenario || Object.keys(scenarios)[0] || 'default';
    run.scenario.name = name;
    run.scenario.iterationInTest = i;
    run.tags = { scenario: name, ...((scenarios[name] && scenarios[name].tags) || {}) };
    queue = [it.response];
    ns.default(data);
  });
  return { checks, thresholds: evalThresholds(ns.options.thresholds || {}, run.samples) };
}

async function checkScript(file, responses) {
  const out = { file, imports: [], exports: [], thresholds: {}, checks: null, thresholdResults: null, error: '' };
  try {
    const context = vm.createContext({ __ENV: {}, __VU: 1, __ITER: 0, console });
    const mod = new vm.SourceTextModule(fs.readFileSync(file, 'utf8'), { identifier: file, context });
    out.imports = mod.dependencySpecifiers;
    await mod.link((specifier) => {
      const names = k6Modules[specifier];
      if (!names) throw new Error(`import of ${JSON.stringify(specifier)}: not one of k6's documented modules`);
      return new vm.SyntheticModule(names, function () {
        for (const n of names) this.setExport(n, stub());
      }, { identifier: specifier, context });
    });
    await mod.evaluate();
    const ns = mod.namespace;
    out.exports = Object.keys(ns).sort();
    if (typeof ns.default !== 'function') throw new Error('no default export function');
    const opts = ns.options;
    if (!opts || typeof opts !== 'object') throw new Error('no exported options');
    for (const [metric, rules] of Object.entries(opts.thresholds || {})) {
      out.thresholds[metric] = Array.isArray(rules) ? rules.map((r) => (typeof r === 'string' ? r : r.threshold)) : [];
    }
    const base = file.split('/').pop();
    if (responses && responses[base]) {
      const r = await runScript(file, responses[base]);
      out.checks = r.checks;
      out.thresholdResults = r.thresholds || null;
    }
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  }
  return out;
}

let args = process.argv.slice(2);
let responses = null;
if (args[0] === '--responses') {
  responses = JSON.parse(fs.readFileSync(args[1], 'utf8'));
  args = args.slice(2);
}
for (const file of args) {
  console.log(JSON.stringify(await checkScript(file, responses)));
}
