/**
 * Models and providers through npm `openai` and `llama-stack-client`: nothing here reaches a
 * provider. Entries: tests/integration/client-mirrors.json.
 */
import assert from 'node:assert/strict';
import { suite } from '../mirrors.ts';

const { test } = suite(import.meta.url);

test('models list', {}, async ({ client, sdk, mirror }) => {
  const listed = await client.models.list();
  // npm openai pages ({object: 'list', data}); llama-stack-client returns the list.
  const data: any[] = sdk === 'openai' ? listed.data : listed;
  const ids = data.map((m) => m.id);
  assert.ok(ids.includes(mirror.model('txt')) && ids.includes(mirror.model('emb')), JSON.stringify(ids));
  for (const m of data) {
    assert.equal(m.object, 'model');
    assert.match(m.id, /^[^/]+\/.+$/);
  }
});

test('models retrieve', {}, async ({ client, sdk, mirror, t }) => {
  // npm openai percent-encodes the id's slash; llama-stack-client 0.7.3 sends it as is
  // (GET /v1/models/llamacpp/qwen2.5-coder-0.5b). llama-stack-client reads Llama Stack's model
  // resource (identifier, provider_resource_id, ...), npm openai OpenAI's model object (id,
  // object): one answer can carry both.
  const model = mirror.model('txt');
  const [provider, name] = [model.split('/')[0], model.slice(model.indexOf('/') + 1)];
  const m = await client.models.retrieve(model);
  await assert.rejects(client.models.retrieve('nope/not-a-model'), (e: any) => e.status === 404);
  if (sdk === 'llama-stack-client') {
    assert.equal(m.identifier, model);
    assert.equal(m.provider_id, provider);
    assert.equal(m.provider_resource_id, name);
    assert.equal(m.model_type, 'llm');
  } else {
    assert.equal(m.id, model);
    assert.equal(m.object, 'model');
  }
});

test('providers list', { sdks: ['llama-stack-client'] }, async ({ client, mirror, t }) => {
  const providers = await client.providers.list();
  for (const p of providers) {
    assert.ok(p.api && p.provider_id && p.provider_type && typeof p.config === 'object', JSON.stringify(p));
    assert.ok([undefined, null, '********'].includes(p.config.api_key), JSON.stringify(p));
  }
  const wanted = mirror.model('txt').split('/')[0];
  const inference = providers.find((p: any) => p.provider_id === wanted);
  assert.equal(inference?.api, 'inference');
  assert.equal(inference?.health?.status, 'OK');
  assert.ok(providers.some((p: any) => p.api === 'safety'), JSON.stringify(providers));
});

test('provider inspect', { sdks: ['llama-stack-client'] }, async ({ client, mirror, t }) => {
  const wanted = mirror.model('txt').split('/')[0];
  const one = await client.providers.retrieve(wanted);
  const listed = (await client.providers.list()).find((p: any) => p.provider_id === wanted);
  assert.deepEqual(one, listed);
  await assert.rejects(client.providers.retrieve('no-such-provider'), (e: any) => {
    assert.equal(e.status, 404);
    assert.match(String(e.message), new RegExp(wanted));
    return true;
  });
});
