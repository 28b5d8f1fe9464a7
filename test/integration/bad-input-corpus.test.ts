/**
 * The checked-in bad-input corpus (test/fixtures/bad-input): every malformed AgentWorkload
 * and Runner is refused by the API server with a message that names the field, every
 * malformed StartWorkload / Exec / PutArchive by the gRPC shim with INVALID_ARGUMENT (or
 * NOT_FOUND where the input names nothing) that names the field, and nothing is written to
 * the cluster (nor extracted or executed) for a refused input.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import {
  ExecRequest,
  PutArchiveRequest,
  StartWorkloadRequest,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { PODS, SECRETS, type ResourceType } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS, RUNNERS } from '../../src/api/resources.ts';
import {
  agentWorkloadCases,
  grpcCases,
  runnerCases,
  withRunning,
  type GrpcCase,
  type ManifestCase,
} from '../fixtures/bad-input/corpus.ts';
import { call, codeOf, collect, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import {
  createTestNamespace,
  eventually,
  simulatedExecRoot,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';

const client = testKubeClient();
let ns: TestNamespace;

/** Every object of the kinds a refused input could have written, by kind/name → resourceVersion. */
async function snapshot(namespace: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const type of [AGENT_WORKLOADS, RUNNERS, SECRETS, PODS]) {
    const list = await client.resource<KubeObject>(type).list(namespace);
    for (const item of list.items)
      out[`${type.kind}/${item.metadata?.name}`] = item.metadata?.resourceVersion ?? '';
  }
  return out;
}

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      out.push(`${path.relative(dir, full)} ${statSync(full).mtimeMs}`);
      if (statSync(full).isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out.sort();
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'bad-cr');
});
afterAll(async () => {
  await ns?.cleanup();
  client.close();
});

async function refusedByApiServer(c: ManifestCase, kind: ResourceType): Promise<void> {
  const before = await snapshot(ns.name);
  const outcome = await client
    .resource<KubeObject>(kind)
    .create(ns.name, c.manifest as KubeObject)
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  expect(outcome).toBeInstanceOf(KubeApiError);
  const err = outcome as KubeApiError;
  expect({ file: c.file, status: err.statusCode, reason: err.reason }).toEqual({
    file: c.file,
    status: 422,
    reason: 'Invalid',
  });
  expect(err.message).toMatch(c.expect);
  expect(await snapshot(ns.name)).toEqual(before);
}

describe('AgentWorkload manifests', () => {
  const cases = agentWorkloadCases();
  test('the corpus holds the kinds of damage the issue lists', () => {
    const names = cases.map((c) => c.file).join(' ');
    for (const kind of [
      'wrong-type',
      'huge-',
      'labels-10000',
      'invalid-name',
      'traversal',
      'unknown-',
      'missing-',
    ]) {
      expect(names).toContain(kind);
    }
  });
  test.each(cases.map((c) => [c.file, c] as const))(
    '%s is refused, naming the field',
    async (_file, c) => {
      await refusedByApiServer(c, AGENT_WORKLOADS);
    },
  );
});

describe('Runner manifests', () => {
  test.each(runnerCases().map((c) => [c.file, c] as const))(
    '%s is refused, naming the field',
    async (_file, c) => {
      await refusedByApiServer(c, RUNNERS);
    },
  );
});

describe('gRPC requests', () => {
  let h: GrpcHarness;
  let runningId: string;
  let runningPod: string;

  beforeAll(async () => {
    h = await startHarness({ prefix: 'bad-grpc', withController: true });
    const started = await call(
      h.client,
      'startWorkload',
      StartWorkloadRequest.fromPartial({ main: { image: 'example.invalid/agent:1' } }),
    );
    runningId = started.id;
    runningPod = `workload-${runningId}`;
    await eventually(
      async () => (await call(h.client, 'inspectWorkload', { workloadId: runningId })).stateRunning,
      { what: 'the target workload Running' },
    );
  });
  afterAll(async () => {
    await h?.close();
  });

  async function send(c: GrpcCase): Promise<{ code: number; details: string }> {
    if (c.rpc === 'StartWorkload') {
      return codeOf(call(h.client, 'startWorkload', StartWorkloadRequest.fromPartial(c.request)));
    }
    if (c.rpc === 'PutArchive') {
      return codeOf(
        call(
          h.client,
          'putArchive',
          PutArchiveRequest.fromPartial(withRunning(c.request, runningId) as object),
        ),
      );
    }
    const stream = h.client.exec();
    const done = collect<ExecResponse>(stream);
    stream.write(ExecRequest.fromPartial(withRunning(c.request, runningPod) as object));
    const outcome = await done;
    stream.end();
    // A refused start is also reported in-band, with the same code.
    const error = outcome.messages.find((m) => m.event?.$case === 'error');
    if (outcome.code !== status.OK && outcome.code !== status.NOT_FOUND)
      expect(error).toBeDefined();
    return { code: outcome.code, details: outcome.details };
  }

  test.each(grpcCases().map((c) => [c.file, c] as const))(
    '%s is refused, naming the field',
    async (_file, c) => {
      const before = await snapshot(h.ns.name);
      const execRoot = files(simulatedExecRoot());
      const { code, details } = await send(c);
      expect({ file: c.file, code: status[code], details }).toEqual({
        file: c.file,
        code: c.expect.code,
        details: expect.stringMatching(c.expect.details),
      });
      expect(await snapshot(h.ns.name)).toEqual(before);
      expect(files(simulatedExecRoot())).toEqual(execRoot);
    },
  );

  test('the shim still serves afterwards', async () => {
    const inspected = await call(h.client, 'inspectWorkload', { workloadId: runningId });
    expect(inspected.stateRunning).toBe(true);
  });
});
