// The official OpenAI Node SDK against a Switchyard gateway: every call must
// behave exactly as against OpenAI. Usage: node sdk.mjs BASE_URL
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });

// Embeddings: the Node SDK asks for base64 on the wire and decodes it.
const emb = await client.embeddings.create({ model: "sim-embed", input: ["the cat sat", "a dog ran"] });
assert.equal(emb.data.length, 2);
assert.ok(emb.data[0].embedding.length > 0 && typeof emb.data[0].embedding[0] === "number");
const norm = Math.hypot(...emb.data[0].embedding);
assert.ok(Math.abs(norm - 1) < 1e-3, `unit vector expected, norm ${norm}`);

const chat = await client.chat.completions.create({
  model: "sim-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 5,
});
assert.equal(chat.object, "chat.completion");
assert.equal(chat.choices[0].message.role, "assistant");
assert.ok(chat.choices[0].message.content.length > 0);
assert.equal(chat.usage.completion_tokens, 5);

const stream = await client.chat.completions.create({
  model: "sim-chat", stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "Stream" }], max_tokens: 4,
});
let text = "", usage = null, finish = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length === 0) { usage = chunk.usage; continue; }
  text += chunk.choices[0].delta.content ?? "";
  finish = chunk.choices[0].finish_reason ?? finish;
}
assert.ok(text.length > 0 && chunks >= 5);
assert.equal(finish, "length");
assert.equal(usage.completion_tokens, 4);

const comp = await client.completions.create({ model: "sim-chat", prompt: "Once", max_tokens: 3 });
assert.equal(comp.object, "text_completion");

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
assert.deepEqual(ids, ["sim-chat", "sim-embed"]);

await assert.rejects(
  client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
  (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /does not exist/.test(e.message),
);
// Streams a stage answers itself: a replayed stored answer and a
// synthesized one, with and without usage.
for (const [model, want] of [["canned-replay", "a stored answer"], ["canned-synth", "a synthesized answer"]]) {
  for (const include_usage of [false, true]) {
    const s = await client.chat.completions.create({
      model, stream: true, messages: [{ role: "user", content: "x" }],
      ...(include_usage ? { stream_options: { include_usage } } : {}),
    });
    let got = "", reason = null, u = null;
    for await (const chunk of s) {
      if (chunk.choices.length === 0) { u = chunk.usage; continue; }
      got += chunk.choices[0].delta.content ?? "";
      reason = chunk.choices[0].finish_reason ?? reason;
    }
    assert.equal(got, want, model);
    assert.equal(reason, "stop", model);
    if (include_usage) assert.deepEqual([u.prompt_tokens, u.completion_tokens], [7, 3], model);
    else assert.equal(u, null, model);
  }
  const plain = await client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }] });
  assert.equal(plain.choices[0].message.content, "a stored answer");
}
// The cache stage: a miss, then a hit read plain and as a replayed stream.
{
  const params = { model: "cached-chat", messages: [{ role: "user", content: "cache me" }], max_tokens: 6 };
  const miss = await client.chat.completions.create(params).withResponse();
  assert.equal(miss.response.headers.get("x-switchyard-cache"), "miss");
  const hit = await client.chat.completions.create(params).withResponse();
  assert.equal(hit.response.headers.get("x-switchyard-cache"), "hit");
  assert.equal(hit.data.id, miss.data.id);
  assert.equal(hit.data.choices[0].message.content, miss.data.choices[0].message.content);
  const s = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let got = "", u = null;
  for await (const chunk of s) {
    if (chunk.choices.length === 0) { u = chunk.usage; continue; }
    got += chunk.choices[0].delta.content ?? "";
  }
  assert.equal(got, miss.data.choices[0].message.content);
  assert.equal(u.total_tokens, miss.data.usage.total_tokens);
}
// The Responses API, plain and streamed, and a stored response read back.
const resp = await client.responses.create({ model: "sim-chat", input: "Hello", max_output_tokens: 4 });
assert.equal(resp.object, "response");
assert.ok(resp.output_text.length > 0);
assert.equal(resp.usage.output_tokens, 4);
const again = await client.responses.retrieve(resp.id);
assert.equal(again.output_text, resp.output_text);
const rs = await client.responses.create({ model: "sim-chat", input: "Stream", max_output_tokens: 3, stream: true });
let deltas = "", last = null, seq = 0;
for await (const ev of rs) {
  assert.equal(ev.sequence_number, seq++);
  if (ev.type === "response.output_text.delta") deltas += ev.delta;
  if (ev.type === "response.completed" || ev.type === "response.incomplete") last = ev.response;
}
assert.ok(last && deltas === last.output.map((o) => o.content.map((c) => c.text).join("")).join(""));
assert.equal(last.usage.output_tokens, 3);
console.log("node sdk: ok");
