// Issue 13 attack 6: one Exec pushing 400 MiB of stdin into a process that does not read it
// yet, and three concurrent gzip bombs; the operator process's RSS must stay under the
// chart's memory limit (a bound on memory, not a timing).
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { parse } from 'yaml';
import {
  ExecRequest,
  RunnerServiceClient,
  StartWorkloadRequest,
  type ExecResponse,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { call, codeOf, collect } from '../fixtures/grpc-harness.ts';
import {
  createTestNamespace,
  eventually,
  simulatedExecRoot,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { startOperator, type OperatorProcess } from '../support/operator-process.ts';
import { gzipBomb } from '../support/archives.ts';

const MiB = 1024 * 1024;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const kube = testKubeClient();
let operatorNs: TestNamespace;
let workloadNs: TestNamespace;
let operator: OperatorProcess;
let grpc: RunnerServiceClient;

function chartMemoryLimitBytes(): number {
  const values = parse(readFileSync(path.join(root, 'charts/k8s-runner/values.yaml'), 'utf8')) as {
    operator: { resources: { limits: { memory: string } } };
  };
  const text = values.operator.resources.limits.memory;
  const match = /^(\d+)(Mi|Gi)$/.exec(text);
  if (!match) throw new Error(`unexpected memory limit ${text}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1) * MiB;
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) * 1024;
}

beforeAll(async () => {
  operatorNs = await createTestNamespace(kube, 'sec-mem-op');
  workloadNs = await createTestNamespace(kube, 'sec-mem-wl');
  operator = await startOperator({
    name: 'sec-memory',
    env: {
      OPERATOR_NAMESPACE: operatorNs.name,
      WORKLOAD_NAMESPACE: workloadNs.name,
      LEADER_ELECTION: 'false',
      STANDALONE: 'true',
      GRPC_AUTH_MODE: 'insecure',
    },
  });
  grpc = new RunnerServiceClient(`127.0.0.1:${operator.grpcPort}`, credentials.createInsecure());
  // "started" is logged before the caches sync; until then every call is UNAVAILABLE.
  await eventually(async () => (await codeOf(call(grpc, 'ready', {}))).code === 0, {
    what: 'the shim serving',
  });
});

afterAll(async () => {
  grpc?.close();
  await operator?.stop();
  await workloadNs?.cleanup();
  await operatorNs?.cleanup();
  kube.close();
});

test('400 MiB of unread Exec stdin and three concurrent gzip bombs keep the operator under its chart memory limit', async () => {
  const limit = chartMemoryLimitBytes();
  const workloadId = randomUUID();
  await call(
    grpc,
    'startWorkload',
    StartWorkloadRequest.fromPartial({ workloadId, main: { image: 'a' } }),
  );
  await eventually(async () => (await call(grpc, 'inspectWorkload', { workloadId })).stateRunning, {
    what: 'the workload Running',
    timeoutMs: 60_000,
  });
  // Just under the 256 MiB the shim used to unpack in memory, compressed to about 250 KiB.
  const bomb = await gzipBomb(255 * MiB);

  const before = rssBytes(operator.pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(operator.pid))), 20);
  const flag = path.join(simulatedExecRoot(), `read-now-${workloadId}`);
  try {
    // The process reads its stdin only once the flag exists.
    const exec = grpc.exec();
    const done = collect<ExecResponse>(exec);
    const started = new Promise<void>((resolve) =>
      exec.on('data', (e: ExecResponse) => e.event?.$case === 'started' && resolve()),
    );
    const write = async (m: ExecRequest): Promise<void> => {
      if (!exec.write(m)) await once(exec, 'drain');
    };
    await write(
      ExecRequest.fromPartial({
        msg: {
          $case: 'start',
          start: {
            targetId: `workload-${workloadId}`,
            commandArgv: [
              '/bin/sh',
              '-c',
              'while [ ! -e "$0" ]; do sleep 0.1; done; exec cat >/dev/null',
              flag,
            ],
          },
        },
      }),
    );
    await started;
    const chunk = Buffer.alloc(MiB, 0x61);
    const sent = (async () => {
      for (let i = 0; i < 400; i++) {
        await write(ExecRequest.fromPartial({ msg: { $case: 'stdin', stdin: { data: chunk } } }));
      }
      await write(
        ExecRequest.fromPartial({
          msg: { $case: 'stdin', stdin: { data: Buffer.alloc(0), eof: true } },
        }),
      );
    })();

    const bombs = await Promise.all(
      [1, 2, 3].map(() =>
        codeOf(call(grpc, 'putArchive', { workloadId, path: '.', tarPayload: bomb })),
      ),
    );
    writeFileSync(flag, '');
    await sent;
    const outcome = await done;
    exec.end();
    const exit = outcome.messages.find((m) => m.event?.$case === 'exit')?.event;
    console.log(
      `operator RSS: ${(before / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB, chart limit ${limit / MiB} MiB; bombs: ${bombs.map((b) => b.code).join(',')}`,
    );
    expect(exit?.$case === 'exit' && exit.exit.exitCode).toBe(0);
    expect(peak).toBeLessThan(limit);
  } finally {
    clearInterval(sampler);
    rmSync(flag, { force: true });
  }
});
