// check.mjs loads k6 scripts as ES modules in node, with k6's modules
// replaced by stubs that export exactly the names k6 documents, and prints
// one JSON line per script: its imports, its exported names, its
// thresholds, or the error that stopped it. With --responses FILE (a JSON
// object: script base name -> canned HTTP response), it also runs the
// script's setup and one iteration against that response with fake k6
// modules and reports every check's outcome. Run by k6_test.go:
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
// the canned response and checks are recorded in checks.
function fakeModules(resp, checks) {
  const response = {
    status: resp.status,
    body: resp.body,
    headers: resp.headers || {},
    timings: { duration: 12, waiting: 5 },
    json() { return JSON.parse(resp.body); },
  };
  const http = {
    post: () => response, get: () => response, request: () => response,
    setResponseCallback: () => {}, expectedStatuses: () => ({}),
  };
  class Metric { add() {} }
  return {
    'k6': {
      check(val, sets) {
        let all = true;
        for (const [name, fn] of Object.entries(sets)) {
          const ok = Boolean(fn(val));
          checks[name] = (checks[name] ?? true) && ok;
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
    'k6/execution': { default: { scenario: { iterationInTest: 0, name: 'test' }, vu: { idInTest: 1 }, test: {} } },
  };
}

// runScript runs setup() and one iteration of a script with fake modules.
async function runScript(file, resp) {
  const checks = {};
  const fakes = fakeModules(resp, checks);
  const context = vm.createContext({ __ENV: {}, __VU: 1, __ITER: 0, console });
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
  ns.default(data);
  return checks;
}

async function checkScript(file, responses) {
  const out = { file, imports: [], exports: [], thresholds: {}, checks: null, error: '' };
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
    if (responses && responses[base]) out.checks = await runScript(file, responses[base]);
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
