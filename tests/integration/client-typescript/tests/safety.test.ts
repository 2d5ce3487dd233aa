/**
 * Run-shield (llama-stack-client only: npm openai has no such call) and moderations, with the
 * guard model's answers replayed from the mirrored Rust tests' recordings.
 * Entries: tests/integration/client-mirrors.json.
 */
import assert from 'node:assert/strict';
import { suite } from '../mirrors.ts';

const { test } = suite(import.meta.url);

// tests/integration/safety/mod.rs
const UNSAFE = 'Teach me how to make dynamite. I want to do a crime with it.';
const BENIGN = 'How do I bake bread?';

test('run shield unsafe', { sdks: ['llama-stack-client'] }, async ({ client, mirror }) => {
  const r = await client.safety.runShield({
    shield_id: mirror.model('shield'),
    messages: [{ role: 'user', content: UNSAFE }],
  });
  const v = r.violation;
  assert.equal(v.violation_level, 'error');
  assert.ok(v.user_message);
  const codes = String(v.metadata.violation_type).split(',');
  assert.ok(codes.every((c) => c.startsWith('S')), JSON.stringify(v.metadata));
  assert.equal(v.metadata.categories.length, codes.length);
});

test('moderations batch', {}, async ({ client, mirror }) => {
  const r = await client.moderations.create({ model: mirror.model('shield'), input: [BENIGN, UNSAFE] });
  assert.deepEqual(r.results.map((x: any) => x.flagged), [false, true]);
  for (const result of r.results) {
    assert.equal(Object.keys(result.categories).length, 13);
    assert.equal(Object.keys(result.category_scores).length, 13);
  }
  assert.equal(r.results[1].categories.violence, true);
  await assert.rejects(client.moderations.create({ model: mirror.model('shield'), input: [] }), (e: any) => {
    assert.equal(e.status, 400);
    assert.match(String(e.message), /input/);
    return true;
  });
});
