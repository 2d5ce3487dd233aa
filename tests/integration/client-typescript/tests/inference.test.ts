/**
 * Chat completions, completions and embeddings through npm `openai` and `llama-stack-client`,
 * each sending the request of the Rust test it mirrors (tests/integration/inference/), so that
 * test's recordings answer it. Entries: tests/integration/client-mirrors.json.
 */
import assert from 'node:assert/strict';
import { suite } from '../mirrors.ts';

const { test } = suite(import.meta.url);

const user = (content: string) => [{ role: 'user' as const, content }];

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const events: T[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

test('chat completion non-streaming', {}, async ({ client, mirror }) => {
  const r = await client.chat.completions.create({
    model: mirror.model('txt'),
    messages: user('Which planet do humans live on? Answer in one word.'),
    temperature: 0,
    max_tokens: 16,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, mirror.model('txt'));
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.trim(), JSON.stringify(r));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
});

test('chat completion streaming', {}, async ({ client, mirror }) => {
  const body = { model: mirror.model('txt'), messages: user('Name three colors.'), temperature: 0, max_tokens: 24 };
  const plain = await client.chat.completions.create(body);
  const chunks = await collect<any>(await client.chat.completions.create({ ...body, stream: true }));
  assert.ok(chunks.length > 2, `${chunks.length} chunks`);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, plain.choices[0].message.content);
});

test('chat completion streaming usage', {}, async ({ client, mirror }) => {
  const chunks = await collect<any>(
    await client.chat.completions.create({
      model: mirror.model('txt'),
      messages: user('Say yes.'),
      temperature: 0,
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    }),
  );
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0, JSON.stringify(last));
});

test('completion non-streaming', {}, async ({ client, mirror }) => {
  const r = await client.completions.create({
    model: mirror.model('cmpl'),
    prompt: 'The capital of France is',
    temperature: 0,
    max_tokens: 8,
  });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text && r.choices[0].finish_reason, JSON.stringify(r));
  assert.ok(r.usage.completion_tokens > 0);
});

// npm openai always sends encoding_format (base64 unless told otherwise, then decodes it), which
// the stack forwards as "float"; the Rust test sends none. Both replay the same recording: the
// recorder's default rules hash an explicit "float" like no format at all.

test('embeddings batch', {}, async ({ client, mirror }) => {
  const r = await client.embeddings.create({
    model: mirror.model('emb'),
    input: ['cats purr', 'dogs bark', 'the stock market fell'],
  });
  assert.deepEqual(r.data.map((d: any) => d.index), [0, 1, 2]);
  assert.ok(r.data[0].embedding.length > 0);
  assert.notDeepEqual(r.data[0].embedding, r.data[2].embedding);
});

test('embeddings base64 matches float', {}, async ({ client, sdk, mirror }) => {
  const body = { model: mirror.model('emb'), input: 'hello world' };
  const floats: number[] = (await client.embeddings.create({ ...body, encoding_format: 'float' })).data[0].embedding;
  let decoded: number[];
  if (sdk === 'openai') {
    // The SDK's default: it asks for base64 and decodes it to floats itself.
    decoded = Array.from((await client.embeddings.create(body)).data[0].embedding as ArrayLike<number>);
  } else {
    const b64 = (await client.embeddings.create({ ...body, encoding_format: 'base64' })).data[0].embedding;
    assert.equal(typeof b64, 'string');
    const bytes = Buffer.from(b64, 'base64');
    decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(4 * i));
  }
  assert.ok(floats.length > 0);
  assert.equal(decoded.length, floats.length);
  decoded.forEach((x, i) => assert.ok(Math.abs(x - floats[i]!) < 1e-6, `${x} vs ${floats[i]} at ${i}`));
});

test('inference store', {}, async ({ client, mirror, t }) => {
  const plainMessages = user('Name one primary color. Answer in one word.');
  const plain = await client.chat.completions.create({
    model: mirror.model('txt'),
    messages: plainMessages,
    temperature: 0,
    max_tokens: 8,
  });
  const streamedMessages = user('Name one ocean. Answer in one word.');
  const chunks = await collect<any>(
    await client.chat.completions.create({
      model: mirror.model('txt'),
      messages: streamedMessages,
      temperature: 0,
      max_tokens: 8,
      stream: true,
    }),
  );
  const streamedText = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  for (const [id, messages, text] of [
    [plain.id, plainMessages, plain.choices[0].message.content],
    [chunks[0].id, streamedMessages, streamedText],
  ]) {
    const stored = await client.chat.completions.retrieve(id);
    assert.equal(stored.id, id);
    assert.equal(stored.model, mirror.model('txt'));
    assert.equal(stored.choices[0].message.content, text);
    assert.deepEqual(
      stored.input_messages.map((m: any) => ({ role: m.role, content: m.content })),
      messages,
    );
  }
  // The first page (npm openai's pages iterate on; llama-stack-client's list is one object).
  const listed = await client.chat.completions.list({ model: mirror.model('txt'), limit: 100 });
  const ids: string[] = listed.data.map((c: any) => c.id);
  assert.ok(ids.includes(plain.id) && ids.includes(chunks[0].id), JSON.stringify(ids));
  await assert.rejects(client.chat.completions.retrieve('chatcmpl-does-not-exist'), (e: any) => e.status === 404);
});

test('completion logprobs', {}, async ({ client, mirror }) => {
  // OpenAI's completions shape. llama-stack-client 0.7.3 types it otherwise (the chat shape) but
  // passes the fields through.
  const prompt = 'The capital of France is';
  const r = await client.completions.create({
    model: mirror.model('cmpl'),
    prompt,
    temperature: 0,
    max_tokens: 4,
    logprobs: 2,
  });
  const lp = r.choices[0].logprobs;
  const tokens: string[] = lp.tokens;
  assert.ok(tokens.length > 0, JSON.stringify(lp));
  for (const field of ['token_logprobs', 'top_logprobs', 'text_offset']) assert.equal(lp[field].length, tokens.length);
  assert.ok(lp.token_logprobs.every((x: number) => x <= 0));
  assert.equal(tokens.join(''), r.choices[0].text);
  const offsets: number[] = [];
  let at = prompt.length;
  for (const token of tokens) {
    offsets.push(at);
    at += token.length;
  }
  assert.deepEqual(lp.text_offset, offsets);
});
