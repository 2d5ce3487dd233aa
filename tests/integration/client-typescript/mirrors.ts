/**
 * The client suites' mapping, for the TypeScript suite: which Rust test of tests/integration each
 * client test mirrors (tests/integration/client-mirrors.json, shared with the Python suite, whose
 * mirrors.py does the same checks). Instead of a hard-coded pytest id per test (Llama Stack's
 * TypeScript tests), a test is declared with `suite(import.meta.url).test(name, ...)`: its entry
 * gives the Rust test id it sends in X-LlamaStack-Provider-Data and the models of that id.
 *
 * Checked when a test file loads: every test has an entry; every entry names a Rust test that
 * tests/integration/main.rs lists and its file defines; an entry that replays recordings names a
 * test that has some in recordings/; every entry of the file names one of its tests. A problem
 * becomes a failing test named "client-mirrors.json" that says what to change, and the tests it
 * concerns do not run (no silent replay miss).
 */
import { test as nodeTest, type TestContext } from 'node:test';
import { randomUUID } from 'node:crypto';
import { existsSync, openSync, readSync, closeSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import LlamaStackClient from 'llama-stack-client';

const HERE = dirname(fileURLToPath(import.meta.url));
export const INTEGRATION_DIR = resolve(HERE, '..');
const ROOT = resolve(INTEGRATION_DIR, '..', '..');
const MIRRORS_FILE = join(INTEGRATION_DIR, 'client-mirrors.json');
const PROVIDER_DATA_HEADER = 'X-LlamaStack-Provider-Data';
const CLIENT_DIR = 'client-typescript/';

const KINDS = ['txt', 'vis', 'cmpl', 'emb', 'shield', 'judge', 'rerank'] as const;
type Kind = (typeof KINDS)[number];
const ID = /^(?<file>[\w./-]+\.rs)::(?<fn>\w+)(?:\[(?<params>.*)\])?$/;
const PARAM_SPLIT = new RegExp(`:(?=(?:${KINDS.join('|')})=)`);
// A blob is pretty-printed with a fixed field order (docs/recordings.md): test_id is near the top.
const BLOB_TEST_ID = /"test_id":\s*("(?:[^"\\]|\\.)*"|null)/;
const LIST_IDS_HINT =
  'the Rust test ids: `cargo run -q -p harness --bin recordings -- list` (recorded ones) or ' +
  '`scripts/integration-tests.sh --collect-only` (all)';

export type Sdk = 'openai' | 'llama-stack-client';
export const SDKS: Sdk[] = ['openai', 'llama-stack-client'];

export class Mirror {
  constructor(
    readonly key: string,
    readonly rustId: string | null,
    readonly recorded: boolean,
    readonly models: Partial<Record<Kind, string>>,
  ) {}

  /** The model of `kind` (txt, cmpl, emb, shield, ...) in the mirrored test's id. */
  model(kind: Kind): string {
    const m = this.models[kind];
    if (!m) throw new Error(`${this.key} mirrors ${this.rustId}, which has no ${kind}= parameter`);
    return m;
  }

  /** What Llama Stack's clients send in X-LlamaStack-Provider-Data: the test id; with `freshRun`,
   * also a new `__test_run` nonce (the harness's extension): the ids the stack generates for the
   * test (MCP call ids, sent back to the provider) start at 0 again, as in one run of the Rust test. */
  providerData(freshRun = false): Record<string, string> {
    if (this.rustId === null) return {};
    const data: Record<string, string> = { __test_id: this.rustId };
    if (freshRun) data['__test_run'] = `client-${randomUUID()}`;
    return data;
  }
}

function parseModels(rustId: string): Partial<Record<Kind, string>> {
  const params = ID.exec(rustId)?.groups?.['params'];
  const models: Partial<Record<Kind, string>> = {};
  if (!params) return models;
  for (const part of params.split(PARAM_SPLIT)) {
    const at = part.indexOf('=');
    const kind = part.slice(0, at) as Kind;
    if (at < 1 || !KINDS.includes(kind) || at === part.length - 1) {
      throw new Error(`${rustId}: parameter ${part} is not kind=model with a kind of ${KINDS.join(', ')}`);
    }
    models[kind] = part.slice(at + 1);
  }
  return models;
}

function recordingsDir(): string {
  return process.env['LLAMA_STACK_TEST_RECORDING_DIR'] || join(ROOT, 'recordings');
}

/** The test ids of every recording, read from the heads of the blobs (the source of truth). */
function recordedTestIds(): Set<string> {
  const dir = join(recordingsDir(), 'responses');
  const ids = new Set<string>();
  if (!existsSync(dir)) return ids;
  const buf = Buffer.alloc(4096);
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;
    const fd = openSync(join(dir, name), 'r');
    const n = readSync(fd, buf, 0, buf.length, 0);
    closeSync(fd);
    const m = BLOB_TEST_ID.exec(buf.toString('utf8', 0, n));
    if (m && m[1] !== 'null') ids.add(JSON.parse(m[1]!) as string);
  }
  return ids;
}

/** Why `rustId` names no test of the Rust suite, or null. */
function rustTestProblem(rustId: string): string | null {
  const g = ID.exec(rustId)?.groups;
  if (!g) return 'not a Rust test id (area/file.rs::test_fn[kind=model:...])';
  const path = join(INTEGRATION_DIR, g['file']!);
  const shown = relative(ROOT, path);
  if (!existsSync(path)) return `${shown} does not exist`;
  if (!new RegExp(`\\bfn\\s+${g['fn']}\\s*\\(`).test(readFileSync(path, 'utf8'))) {
    return `${shown} defines no ${g['fn']}`;
  }
  const modulePath = `${g['file']!.slice(0, -'.rs'.length).replaceAll('/', '::')}::${g['fn']}`;
  if (!readFileSync(join(INTEGRATION_DIR, 'main.rs'), 'utf8').includes(modulePath)) {
    return `not a case of the suite (tests/integration/main.rs does not list ${modulePath})`;
  }
  return null;
}

interface Table {
  mirrors: Map<string, Mirror>;
  /** [entry key, or null for the file itself; what is wrong] */
  problems: [string | null, string][];
  keys: Set<string>;
}

let cached: Table | undefined;

/** Every entry of client-mirrors.json, validated (once per process). */
export function load(): Table {
  if (cached) return cached;
  const table: Table = { mirrors: new Map(), problems: [], keys: new Set() };
  cached = table;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(MIRRORS_FILE, 'utf8'));
  } catch (e) {
    table.problems.push([null, `cannot read ${relative(ROOT, MIRRORS_FILE)}: ${e}`]);
    return table;
  }
  const entries = (raw as { mirrors?: unknown } | null)?.mirrors;
  if (!entries || typeof entries !== 'object' || Array.isArray(entries)) {
    table.problems.push([null, `${relative(ROOT, MIRRORS_FILE)} has no "mirrors" object`]);
    return table;
  }
  const recorded = recordedTestIds();
  for (const [key, value] of Object.entries(entries as Record<string, unknown>)) {
    table.keys.add(key);
    let rustId: string | null;
    let needsRecordings = true;
    if (typeof value === 'string') {
      rustId = value;
    } else if (
      value && typeof value === 'object' && 'rust' in value &&
      Object.keys(value).every((k) => ['rust', 'recorded', 'why'].includes(k))
    ) {
      const v = value as { rust: string | null; recorded?: boolean; why?: string };
      rustId = v.rust;
      needsRecordings = v.recorded ?? true;
      if (rustId === null && !v.why) {
        table.problems.push([key, `${key}: "rust": null needs a "why" (the Rust test it should mirror does not exist yet)`]);
        continue;
      }
    } else {
      table.problems.push([key, `${key}: the value is a Rust test id, or {"rust": ID, "recorded": false} for a test that reaches no provider, or {"rust": null, "why": ...}`]);
      continue;
    }
    if (rustId !== null) {
      const why = rustTestProblem(rustId);
      if (why) {
        table.problems.push([key, `${key} mirrors '${rustId}': ${why}. Fix the entry (${LIST_IDS_HINT})`]);
        continue;
      }
      if (needsRecordings && !recorded.has(rustId)) {
        table.problems.push([key,
          `${key} mirrors '${rustId}', which has no recordings in ${recordingsDir()}: its parameters (models) ` +
          `differ from the recorded ones, or it is not recorded yet. Use a recorded id (${LIST_IDS_HINT}), or ` +
          `record the Rust test with a live provider (scripts/integration-tests.sh --inference-mode ` +
          `record-if-missing --pattern '${rustId}'); if the client test reaches no provider, write ` +
          `{"rust": "${rustId}", "recorded": false}`]);
        continue;
      }
    }
    try {
      table.mirrors.set(key, new Mirror(key, rustId, needsRecordings, rustId ? parseModels(rustId) : {}));
    } catch (e) {
      table.problems.push([key, `${key}: ${(e as Error).message}`]);
    }
  }
  return table;
}

function describe(problems: string[]): string {
  return [
    `${relative(ROOT, MIRRORS_FILE)}: ${problems.length} problem(s):`,
    ...problems.map((p) => `  - ${p}`),
    "See docs/testing.md, 'Client suites'.",
  ].join('\n');
}

export function baseUrl(): string {
  const url = (process.env['TEST_API_BASE_URL'] ?? '').replace(/\/+$/, '');
  if (!url) {
    throw new Error(
      'TEST_API_BASE_URL is not set: run `scripts/integration-tests.sh --client typescript`, or point it ' +
        'at a stack that replays recordings/ (http://127.0.0.1:PORT)',
    );
  }
  return url;
}

/** A client of `sdk` that sends `providerData` as Llama Stack's TypeScript tests do (a default header). */
export function makeClient(sdk: Sdk, providerData: Record<string, string>): OpenAI | LlamaStackClient {
  const defaultHeaders: Record<string, string> = Object.keys(providerData).length
    ? { [PROVIDER_DATA_HEADER]: JSON.stringify(providerData) }
    : {};
  const common = { maxRetries: 0, timeout: 60_000, defaultHeaders };
  return sdk === 'openai'
    ? new OpenAI({ baseURL: `${baseUrl()}/v1`, apiKey: 'not-needed', ...common })
    : new LlamaStackClient({ baseURL: baseUrl(), ...common });
}

export interface Ctx {
  /** The client under test. Both SDKs serve the calls the tests make with OpenAI's shapes. */
  client: any;
  sdk: Sdk;
  mirror: Mirror;
  t: TestContext;
}

export interface Options {
  /** The SDKs the test runs with (default: both). */
  sdks?: Sdk[];
  /** Also send a new __test_run nonce (see Mirror.providerData). */
  freshRun?: boolean;
}

/**
 * The tests of one file: `const { test } = suite(import.meta.url)`, then
 * `test('name', { sdks }, async ({ client, mirror }) => ...)` registers `name [sdk]` per SDK, each
 * replaying the recordings of the Rust test that client-mirrors.json names for `<file>::name`.
 */
export function suite(fileUrl: string) {
  const file = relative(INTEGRATION_DIR, fileURLToPath(fileUrl)).replaceAll('\\', '/');
  const table = load();
  const problems: string[] = table.problems
    .filter(([key]) => key === null || key.startsWith(`${file}::`) || !key.startsWith('client-'))
    .map(([, p]) => p);
  const names = new Set<string>();
  const collectOnly = process.env['CLIENT_SUITE_COLLECT_ONLY'] === '1';

  queueMicrotask(() => {
    // After the file's top-level code: entries of this file that name none of its tests.
    for (const key of table.keys) {
      if (key.startsWith(`${file}::`) && !names.has(key.slice(file.length + 2))) {
        problems.push(`${key}: ${file} has no test named '${key.slice(file.length + 2)}': rename or remove the entry`);
      }
      const keyFile = key.split('::')[0]!;
      if (keyFile.startsWith(CLIENT_DIR) && !existsSync(join(INTEGRATION_DIR, keyFile))) {
        problems.push(`${key}: ${keyFile} does not exist: rename or remove the entry`);
      }
    }
    if (problems.length) {
      nodeTest('client-mirrors.json', () => {
        throw new Error(describe(problems));
      });
    }
  });

  function test(name: string, options: Options, fn: (ctx: Ctx) => Promise<void>): void {
    names.add(name);
    const key = `${file}::${name}`;
    if (!table.keys.has(key)) {
      problems.push(
        `${key} has no entry: add "${key}": "<id of the Rust test whose recordings it replays>" to "mirrors" (${LIST_IDS_HINT})`,
      );
      return;
    }
    const mirror = table.mirrors.get(key);
    if (!mirror) return; // its problem is already listed
    for (const sdk of options.sdks ?? SDKS) {
      nodeTest(`${name} [${sdk}]`, collectOnly ? { skip: 'collect only' } : {}, async (t) => {
        const client = makeClient(sdk, mirror.providerData(options.freshRun));
        await fn({ client, sdk, mirror, t });
      });
    }
  }

  return { test };
}
