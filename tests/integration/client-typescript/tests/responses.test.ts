/**
 * The Responses API through npm `openai` and `llama-stack-client`: text, and an MCP tool the stack
 * lists and calls, its MCP traffic replayed from the mirrored Rust test's recordings too.
 * Entries: tests/integration/client-mirrors.json.
 */
import assert from 'node:assert/strict';
import { suite } from '../mirrors.ts';

const { test } = suite(import.meta.url);

// As in tests/integration/responses/mod.rs: the MCP server and the fake token the recordings were
// made with (the host and port are not part of the request key; the path is).
const MCP_TOKEN = 'ghp_llamastackrsTESTtoken0000000000000000';
const mcpTool = () => ({
  type: 'mcp' as const,
  server_label: 'github',
  server_url: process.env['MCP_SERVER_URL'] || 'http://127.0.0.1:8765/mcp',
  authorization: MCP_TOKEN,
  require_approval: 'never' as const,
});

const outputText = (r: any): string =>
  r.output
    .filter((i: any) => i.type === 'message')
    .flatMap((i: any) => i.content)
    .filter((p: any) => p.type === 'output_text')
    .map((p: any) => p.text)
    .join('');

/** `expected` appear in `kinds` in this order (others may come between). */
function inOrder(kinds: string[], expected: string[]): boolean {
  let at = 0;
  for (const kind of expected) {
    const found = kinds.indexOf(kind, at);
    if (found < 0) return false;
    at = found + 1;
  }
  return true;
}

test('response text non-streaming', {}, async ({ client, mirror }) => {
  const r = await client.responses.create({
    model: mirror.model('txt'),
    input: 'Which planet do humans live on? Answer in one word.',
    temperature: 0,
    max_output_tokens: 16,
  });
  assert.equal(r.status, 'completed');
  assert.equal(r.model, mirror.model('txt'));
  assert.equal(r.output.filter((i: any) => i.type === 'message').length, 1);
  assert.ok(outputText(r).trim(), JSON.stringify(r.output));
});

test('mcp tool call', { freshRun: true }, async ({ client, mirror }) => {
  const r = await client.responses.create({
    model: mirror.model('txt'),
    input: 'What is the weather in Paris?',
    tools: [mcpTool()],
    temperature: 0,
    max_output_tokens: 96,
  });
  assert.equal(r.status, 'completed', JSON.stringify(r.error));
  const kinds = r.output.map((i: any) => i.type);
  assert.deepEqual([kinds[0], kinds.at(-1)], ['mcp_list_tools', 'message'], kinds.join());
  const call = r.output.find((i: any) => i.type === 'mcp_call');
  assert.equal(call.name, 'get_weather');
  assert.equal(call.error ?? null, null);
  assert.match(call.output, /Paris/);
  assert.ok(outputText(r).trim());
});

test('mcp tool call streaming', { freshRun: true }, async ({ client, mirror }) => {
  const stream = await client.responses.create({
    model: mirror.model('txt'),
    input: 'What is the weather in Paris?',
    tools: [mcpTool()],
    temperature: 0,
    max_output_tokens: 96,
    stream: true,
  });
  const events: any[] = [];
  for await (const e of stream) events.push(e);
  const kinds = events.map((e) => e.type);
  assert.ok(
    inOrder(kinds, [
      'response.mcp_list_tools.in_progress',
      'response.mcp_list_tools.completed',
      'response.mcp_call.in_progress',
      'response.mcp_call_arguments.delta',
      'response.mcp_call_arguments.done',
      'response.mcp_call.completed',
      'response.output_text.delta',
      'response.completed',
    ]),
    kinds.join(),
  );
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const completed = events.at(-1).response;
  assert.deepEqual(completed.output.map((i: any) => i.type), ['mcp_list_tools', 'mcp_call', 'message']);
});
