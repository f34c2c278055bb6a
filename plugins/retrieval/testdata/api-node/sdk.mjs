// The official OpenAI Node SDK against the gateway's Files and Vector
// Stores APIs (plugins/retrieval/api_node_test.go). Usage:
//   node sdk.mjs BASE_URL API_KEY OPENAI_PACKAGE_DIR
// The SDK is the one gateway/testdata/node installs (npm ci there).
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [, , baseURL, apiKey, pkg] = process.argv;
const { default: OpenAI, toFile } = await import(pathToFileURL(join(pkg, "index.mjs")).href);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

// Files.
const f1 = await client.files.create({
  file: await toFile(Buffer.from("# Tides\n\nSpring tides happen at new and full moon.\n"), "tides.md"),
  purpose: "assistants",
});
assert.match(f1.id, /^file-/);
assert.equal(f1.object, "file");
assert.equal(f1.filename, "tides.md");
assert.equal((await client.files.retrieve(f1.id)).bytes, f1.bytes);
const listed = [];
for await (const f of client.files.list({ limit: 1 })) listed.push(f.id);
assert.ok(listed.includes(f1.id));
const content = await (await client.files.content(f1.id)).text();
assert.match(content, /Spring tides/);
await assert.rejects(client.files.retrieve("file-missing"),
  (e) => e instanceof OpenAI.NotFoundError && /No such File object: file-missing/.test(e.message));
await assert.rejects(
  client.files.create({ file: await toFile(Buffer.from("x"), "x.txt"), purpose: "fine-tune" }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === "purpose");

// Vector stores.
const vs = await client.vectorStores.create({ name: "ocean", metadata: { team: "sea" }, file_ids: [f1.id] });
assert.match(vs.id, /^vs_/);
assert.equal(vs.file_counts.completed, 1);
assert.equal((await client.vectorStores.retrieve(vs.id)).name, "ocean");
assert.equal((await client.vectorStores.update(vs.id, { name: "sea" })).name, "sea");
const stores = [];
for await (const s of client.vectorStores.list()) stores.push(s.id);
assert.ok(stores.includes(vs.id) && stores.includes("docs"));

// Attach with attributes, the poll helpers.
const f2 = await client.files.create({
  file: await toFile(Buffer.from("# Currents\n\nThe Gulf Stream carries warm water north.\n"), "currents.md"),
  purpose: "assistants",
});
const vf = await client.vectorStores.files.createAndPoll(vs.id, { file_id: f2.id, attributes: { region: "atlantic", depth: 200 } });
assert.equal(vf.status, "completed");
assert.equal(vf.attributes.region, "atlantic");
const up = await client.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from("Kelp forests grow fast."), "kelp.txt"));
assert.equal(up.status, "completed");
const bad = await client.vectorStores.files.uploadAndPoll(vs.id, await toFile(Buffer.from(""), "empty.txt"));
assert.equal(bad.status, "failed");
assert.equal(bad.last_error.code, "invalid_file");
const got = await client.vectorStores.files.retrieve(f2.id, { vector_store_id: vs.id });
assert.equal(got.attributes.depth, 200);
const upd = await client.vectorStores.files.update(f2.id, { vector_store_id: vs.id, attributes: { region: "pacific" } });
assert.equal(upd.attributes.region, "pacific");
const parts = [];
for await (const p of client.vectorStores.files.content(f2.id, { vector_store_id: vs.id })) parts.push(p.text);
assert.match(parts.join(" "), /Gulf Stream/);
const vfiles = [];
for await (const x of client.vectorStores.files.list(vs.id, { filter: "completed" })) vfiles.push(x.id);
assert.equal(vfiles.length, 3);

// File batches.
const batch = await client.vectorStores.fileBatches.uploadAndPoll(vs.id, {
  files: [await toFile(Buffer.from("Coral reefs need sunlight."), "coral.txt"), await toFile(Buffer.from("Krill feed whales."), "krill.txt")],
});
assert.equal(batch.status, "completed");
assert.equal(batch.file_counts.completed, 2);
const bfiles = [];
for await (const x of client.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: vs.id })) bfiles.push(x.id);
assert.equal(bfiles.length, 2);
assert.equal((await client.vectorStores.fileBatches.retrieve(batch.id, { vector_store_id: vs.id })).id, batch.id);
assert.equal((await client.vectorStores.fileBatches.cancel(batch.id, { vector_store_id: vs.id })).status, "completed");
const b2 = await client.vectorStores.fileBatches.createAndPoll(vs.id, { file_ids: [f1.id], attributes: { region: "arctic" } });
assert.equal(b2.file_counts.total, 1);

// Search with filters.
const hits = [];
for await (const h of client.vectorStores.search(vs.id, { query: "warm water current", max_num_results: 3 })) hits.push(h);
assert.equal(hits[0].file_id, f2.id);
assert.equal(hits[0].filename, "currents.md");
assert.equal(hits[0].content[0].type, "text");
const filtered = [];
for await (const h of client.vectorStores.search(vs.id, {
  query: ["tides", "current"],
  filters: { type: "or", filters: [{ type: "eq", key: "region", value: "arctic" }, { type: "gt", key: "depth", value: 1000 }] },
})) filtered.push(h.file_id);
assert.deepEqual([...new Set(filtered)], [f1.id]);
await assert.rejects(client.vectorStores.search(vs.id, { query: "x", filters: { type: "between", key: "a", value: 1 } }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === "filters.type");

// Deletes.
assert.equal((await client.vectorStores.files.delete(f2.id, { vector_store_id: vs.id })).deleted, true);
assert.equal((await client.files.delete(f1.id)).deleted, true);
await assert.rejects(client.vectorStores.delete("docs"), (e) => e instanceof OpenAI.BadRequestError);
assert.equal((await client.vectorStores.delete(vs.id)).deleted, true);
await assert.rejects(client.vectorStores.retrieve(vs.id), (e) => e instanceof OpenAI.NotFoundError);
console.log("node sdk: files and vector stores ok");
