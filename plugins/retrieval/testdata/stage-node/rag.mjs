// docs/retrieval.md's Node SDK walkthrough, run by
// plugins/retrieval/stage_node_test.go against a gateway serving
// configs/retrieval.yaml's collection and route. Usage:
//   node rag.mjs BASE_URL OPENAI_PACKAGE_DIR
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [, , baseURL, pkg] = process.argv;
const { default: OpenAI, toFile } = await import(pathToFileURL(join(pkg, "index.mjs")).href);
const client = new OpenAI({ baseURL, apiKey: "unused-on-an-open-gateway", maxRetries: 0 });

// Upload, attach with attributes.
const file = await client.files.create({
  file: await toFile(Buffer.from("# Holidays\n\nThe office is closed on the first Monday of May.\n"), "holidays.md"),
  purpose: "assistants",
});
const attached = await client.vectorStores.files.create("docs", { file_id: file.id, attributes: { team: "office" } });
assert.equal(attached.status, "completed");

// Search with a filter on the attributes.
const page = await client.vectorStores.search("docs", {
  query: "when is the office closed",
  filters: { type: "eq", key: "team", value: "office" },
  max_num_results: 3,
});
assert.equal(page.data.length, 1);
assert.equal(page.data[0].filename, "holidays.md");
assert.ok(page.data[0].score > 0);

// Chat with the stage: the answer cites the file.
const answer = await client.chat.completions.create({
  model: "sim-chat-rag",
  messages: [{ role: "user", content: "When is the office closed?" }],
});
const anns = answer.choices[0].message.annotations ?? [];
assert.ok(anns.length > 0, "no annotations");
assert.ok(anns.some((a) => a.type === "url_citation" && a.url_citation.url.endsWith(`/v1/files/${file.id}/content`)),
  JSON.stringify(anns));

// The same, streamed: the final delta carries the annotations.
const stream = await client.chat.completions.create({
  model: "sim-chat-rag", stream: true,
  messages: [{ role: "user", content: "When is the office closed?" }],
});
let streamed = [];
for await (const chunk of stream) {
  for (const c of chunk.choices) if (c.delta.annotations) streamed = streamed.concat(c.delta.annotations);
}
assert.ok(streamed.length > 0, "no annotations in the stream");
console.log("ok");
