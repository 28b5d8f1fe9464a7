import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it, jest } from '@jest/globals';
import {
  Client,
  Metadata,
  credentials,
  status,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  CancelExecutionRequest,
  ExecExitReason,
  ExecRequest,
  ExecResponse,
  FindWorkloadsByLabelsRequest,
  GetWorkloadLabelsRequest,
  InspectWorkloadRequest,
  ListVolumesRequest,
  ListWorkloadsByVolumeRequest,
  ListWorkloadsRequest,
  PutArchiveRequest,
  ReadyRequest,
  RemoveVolumeRequest,
  RemoveWorkloadRequest,
  RunnerServiceService,
  StartWorkloadRequest,
  StopWorkloadRequest,
  StreamEventsRequest,
  StreamWorkloadLogsRequest,
  TouchWorkloadRequest,
  type DeepPartial,
} from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { ShimCaches } from '../../src/grpc/caches.ts';
import { InformerCache } from '../../src/kube/cache.ts';
import { WorkloadCaches } from '../../src/workload/caches.ts';
import { startRunnerGrpcServer, type RunnerGrpcServer } from '../../src/grpc/server.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { ID, NS, POD, fakeApi } from './grpc-fuzz-api.ts';
import { CallTimings, summarize } from './grpc-fuzz-timings.ts';

jest.setTimeout(120_000);

const TOTAL_CALLS = 10_500;
const CONCURRENCY = 48;
const MAX_MESSAGE_BYTES = 256 * 1024;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// FUZZ_SEED repeats a run's inputs (not their interleaving); FUZZ_METHODS=Exec,PutArchive
// fuzzes only those; FUZZ_TIMINGS=1 prints every method's slowest calls (a failure always does).
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const rnd = mulberry32(seed);
const chance = (p: number): boolean => rnd() < p;
const int = (max: number): number => Math.floor(rnd() * max);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
const many = <T>(make: () => T, max = 4): T[] => Array.from({ length: int(max + 1) }, make);

const STRINGS = [
  '',
  ' ',
  ID,
  POD,
  ID.toUpperCase(),
  'missing-workload',
  'main',
  'data',
  '/etc/passwd',
  '../x',
  '/tmp/x',
  'label.team',
  'label.',
  'a/b/c',
  'app.kubernetes.io/managed-by',
  'agyn.io/workload-id',
  'NET_ADMIN',
  'docker',
  'Always',
  'Ünïcødé ☃',
  '\u0000nul',
  'x'.repeat(70),
  'y'.repeat(300),
];
const str = (): string =>
  chance(0.8)
    ? pick(STRINGS)
    : Math.random()
        .toString(36)
        .slice(2, 2 + int(20));
const map = (): Record<string, string> =>
  Object.fromEntries(many(() => [str(), str()] as const, 3));
const big = (): number => pick([0, 1, 5, 1000, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER]);

function container(): NonNullable<DeepPartial<StartWorkloadRequest>['main']> {
  return {
    image: chance(0.8) ? 'alpine:3.20' : str(),
    name: chance(0.5) ? '' : str(),
    cmd: many(str, 2),
    entrypoint: chance(0.8) ? '' : str(),
    env: many(() => ({ name: chance(0.7) ? 'A_B' : str(), value: str() }), 2),
    workingDir: chance(0.8) ? '' : str(),
    mounts: many(
      () => ({ volume: str(), mountPath: chance(0.5) ? '/m' : str(), readOnly: chance(0.5) }),
      2,
    ),
    requiredCapabilities: many(str, 1),
    inlineFileMounts: many(() => ({ path: str() }), 1),
    additionalProperties: chance(0.2) ? { restart_policy: 'Always' } : map(),
  };
}

const REQUESTS: Record<string, () => Uint8Array> = {
  Ready: () => ReadyRequest.encode({}).finish(),
  StartWorkload: () =>
    StartWorkloadRequest.encode(
      StartWorkloadRequest.fromPartial({
        main: chance(0.9) ? container() : undefined,
        sidecars: many(container, 2),
        initContainers: many(container, 2),
        volumes: many(
          () => ({
            name: chance(0.6) ? 'data' : str(),
            kind: int(4),
            persistentName: str(),
            labels: map(),
            additionalProperties: map(),
          }),
          2,
        ),
        dnsConfig: chance(0.3)
          ? { nameservers: many(() => pick(['10.0.0.1', str()]), 4), searches: many(str, 2) }
          : undefined,
        imagePullCredentials: many(
          () => ({ registry: str(), username: str(), password: str() }),
          2,
        ),
        labels: map(),
        workloadId: pick(['', ID, str(), '11111111-2222-4333-8444-555555555555']),
        capabilities: many(str, 2),
        inlineFiles: Object.fromEntries(
          many(() => [pick(['/etc/a', str()]), Buffer.from(str())] as const, 2),
        ),
        additionalProperties: map(),
      }),
    ).finish(),
  StopWorkload: () =>
    StopWorkloadRequest.encode({
      workloadId: pick([ID, str()]),
      timeoutSec: pick([0, 1, 2 ** 32 - 1]),
    }).finish(),
  RemoveWorkload: () =>
    RemoveWorkloadRequest.encode({
      workloadId: pick([ID, str()]),
      force: chance(0.5),
      removeVolumes: chance(0.5),
    }).finish(),
  InspectWorkload: () => InspectWorkloadRequest.encode({ workloadId: pick([ID, str()]) }).finish(),
  GetWorkloadLabels: () =>
    GetWorkloadLabelsRequest.encode({ workloadId: pick([ID, str()]) }).finish(),
  ListWorkloads: () => ListWorkloadsRequest.encode({}).finish(),
  FindWorkloadsByLabels: () =>
    FindWorkloadsByLabelsRequest.encode({ labels: map(), all: chance(0.5) }).finish(),
  ListWorkloadsByVolume: () => ListWorkloadsByVolumeRequest.encode({ volumeName: str() }).finish(),
  ListVolumes: () => ListVolumesRequest.encode({}).finish(),
  RemoveVolume: () =>
    RemoveVolumeRequest.encode({ volumeName: str(), force: chance(0.5) }).finish(),
  TouchWorkload: () => TouchWorkloadRequest.encode({ workloadId: pick([ID, str()]) }).finish(),
  PutArchive: () =>
    PutArchiveRequest.encode({
      workloadId: pick([ID, str()]),
      path: str(),
      tarPayload: pick([
        Buffer.alloc(0),
        Buffer.alloc(1024),
        Buffer.from(str()),
        Buffer.from([0x1f, 0x8b, 1, 2]),
      ]),
    }).finish(),
  StreamWorkloadLogs: () =>
    StreamWorkloadLogsRequest.encode(
      StreamWorkloadLogsRequest.fromPartial({
        workloadId: pick([ID, str()]),
        containerName: pick(['main', '', str()]),
        follow: chance(0.5),
        since: chance(0.2) ? big() : 0,
        tail: int(10),
        tailLines: int(10),
        timestamps: chance(0.5),
        sinceTime: chance(0.2) ? new Date(int(2 ** 40)) : undefined,
      }),
    ).finish(),
  StreamEvents: () =>
    StreamEventsRequest.encode({
      since: chance(0.3) ? big() : 0,
      filters: many(
        () => ({
          key: pick(['reason', 'type', 'involvedObject.name', str()]),
          values: many(str, 2),
        }),
        2,
      ),
    }).finish(),
  CancelExecution: () =>
    CancelExecutionRequest.encode({ executionId: str(), force: chance(0.5) }).finish(),
};

function execMessages(): Uint8Array[] {
  const messages: DeepPartial<ExecRequest>[] = [];
  if (chance(0.85)) {
    messages.push({
      msg: {
        $case: 'start',
        start: {
          targetId: pick([POD, ID, str()]),
          commandArgv: chance(0.6) ? ['cat'] : many(str, 2),
          commandShell: chance(0.2) ? str() : '',
          options: chance(0.6)
            ? {
                tty: chance(0.3),
                separateStderr: chance(0.5),
                timeoutMs: pick([0, 5, 100, big()]),
                idleTimeoutMs: pick([0, 5, 100]),
                killOnTimeout: chance(0.3),
                exitTailBytes: pick([0, 3, big()]),
                env: many(() => ({ name: pick(['A', str()]), value: str() }), 1),
                workdir: chance(0.2) ? str() : '',
              }
            : undefined,
        },
      },
    });
  }
  for (let i = int(4); i > 0; i--) {
    messages.push(
      pick<DeepPartial<ExecRequest>>([
        { msg: { $case: 'stdin', stdin: { data: Buffer.from(str()), eof: chance(0.3) } } },
        { msg: { $case: 'resize', resize: { cols: int(300), rows: int(100) } } },
        { msg: { $case: 'start', start: { targetId: POD, commandArgv: ['x'] } } },
        {},
      ]),
    );
  }
  return messages.map((m) => ExecRequest.encode(ExecRequest.fromPartial(m)).finish());
}

function mutate(bytes: Uint8Array): Buffer {
  const out = Buffer.from(bytes);
  switch (int(5)) {
    case 0:
      return out.subarray(0, int(out.length + 1));
    case 1:
      for (let i = 0; i < 1 + int(4) && out.length > 0; i++) out[int(out.length)] = int(256);
      return out;
    case 2:
      return Buffer.from(Array.from({ length: int(64) }, () => int(256)));
    case 3:
      return Buffer.concat([out, Buffer.from([int(256), int(256), int(256)])]);
    default:
      return Buffer.alloc(MAX_MESSAGE_BYTES + 16, int(256));
  }
}

// ---------------------------------------------------------------- the test

let api: http.Server;
let kube: KubeClient;
let caches: ShimCaches;
let server: RunnerGrpcServer;
let client: Client;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

beforeAll(async () => {
  api = fakeApi(rnd);
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'fake',
        server: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  kube = new KubeClient(kc, { qps: 100_000, burst: 100_000 });
  caches = new ShimCaches(new WorkloadCaches(new InformerCache(kube, logger), NS));
  caches.start();
  await caches.waitForSync();
  server = await startRunnerGrpcServer({
    host: '127.0.0.1',
    port: 0,
    kube,
    caches,
    workloadNamespace: NS,
    auth: { mode: 'insecure' },
    logger,
    maxMessageBytes: MAX_MESSAGE_BYTES,
  });
  client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
  });
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  await caches?.stop();
  kube?.close();
  api?.closeAllConnections();
  await new Promise((resolve) => api?.close(resolve));
});

const identity = (b: Buffer): Buffer => b;

/** StopWorkload waits for the Pod (which never goes here) until just before the deadline. */
function deadlineFor(path: string): number {
  return Date.now() + (path.endsWith('/StopWorkload') ? 2_500 : 15_000);
}

function unaryCall(path: string, payload: Buffer): Promise<number> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      identity,
      identity,
      payload,
      new Metadata(),
      { deadline: deadlineFor(path) },
      (err: ServiceError | null) => resolve(err ? err.code : status.OK),
    );
  });
}

function serverStreamCall(path: string, payload: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, identity, identity, payload, new Metadata(), {
      deadline: deadlineFor(path),
    });
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', (s: StatusObject) => resolve(s.code));
    if (chance(0.1)) setTimeout(() => call.cancel(), int(20));
  });
}

function bidiCall(path: string, payloads: Buffer[]): Promise<number> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, identity, identity, new Metadata(), {
      deadline: deadlineFor(path),
    });
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', (s: StatusObject) => resolve(s.code));
    for (const p of payloads) call.write(p);
    if (chance(0.1)) setTimeout(() => call.cancel(), int(20));
    else setTimeout(() => call.end(), int(30));
  });
}

const execPath = RunnerServiceService.exec.path;
const execRequest = (m: DeepPartial<ExecRequest>): Buffer =>
  Buffer.from(ExecRequest.encode(ExecRequest.fromPartial(m)).finish());
const startCat = execRequest({
  msg: { $case: 'start', start: { targetId: POD, commandArgv: ['cat'] } },
});
/** An ExecRequest cut short: it does not decode. */
const undecodable = startCat.subarray(0, 9);

/** An Exec that never half-closes: `first` at once, `afterStarted` once `started` came. */
function execExchange(
  first: Buffer[],
  afterStarted: Buffer[] = [],
): Promise<{ events: ExecResponse['event'][]; code: number }> {
  return new Promise((resolve) => {
    const events: ExecResponse['event'][] = [];
    const call = client.makeBidiStreamRequest(
      execPath,
      identity,
      (b: Buffer) => ExecResponse.decode(b),
      new Metadata(),
      { deadline: deadlineFor(execPath) },
    );
    call.on('data', (response: ExecResponse) => {
      events.push(response.event);
      if (response.event?.$case === 'started') for (const p of afterStarted) call.write(p);
    });
    call.on('error', () => {});
    call.on('status', (s: StatusObject) => resolve({ events, code: s.code }));
    for (const p of first) call.write(p);
  });
}

it('answers an Exec whose first message does not decode with INVALID_ARGUMENT', async () => {
  const { events, code } = await execExchange([undecodable]);
  expect(events).toEqual([
    { $case: 'error', error: expect.objectContaining({ code: 'invalid_request' }) },
  ]);
  expect(code).toBe(status.INVALID_ARGUMENT);
});

it('ends an Exec session on a message that does not decode: exit RUNNER_ERROR, then OK', async () => {
  // Several sessions: the fake API refuses some exec connections, which end the same way.
  for (let i = 0; i < 5; i++) {
    const { events, code } = await execExchange([startCat], [undecodable]);
    expect(events.map((e) => e?.$case)).toEqual(['started', 'exit']);
    const exit = events[1]?.$case === 'exit' ? events[1].exit : undefined;
    expect(exit?.reason).toBe(ExecExitReason.EXEC_EXIT_REASON_RUNNER_ERROR);
    expect(code).toBe(status.OK);
  }
});

it('answers every Exec whose undecodable message comes with an event being written', async () => {
  // The fuzz test's stall: grpc-js ended such a call itself while the handler wrote
  // `exec_already_started`, and the status never went out (exec-decode.ts).
  const messages = [
    execRequest({
      msg: {
        $case: 'start',
        start: {
          targetId: POD,
          commandArgv: ['x'],
          options: { tty: true, timeoutMs: 5, idleTimeoutMs: 100, killOnTimeout: true },
        },
      },
    }),
    execRequest({ msg: { $case: 'start', start: { targetId: POD, commandArgv: ['x'] } } }),
    undecodable,
  ];
  const codes: number[] = [];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (codes.length < 1_000) codes.push(await bidiCall(execPath, messages));
    }),
  );
  expect(codes.filter((c) => c === status.DEADLINE_EXCEEDED)).toEqual([]);
});

it(`answers ${TOTAL_CALLS} random and malformed requests with a status, without crashing`, async () => {
  const only = process.env.FUZZ_METHODS?.split(',');
  const methods = Object.values(RunnerServiceService).filter(
    (m) => !only || only.includes(m.path.split('/').pop() ?? ''),
  );
  const codes = new Map<number, number>();
  const perMethod = new Map<string, number>();
  // StopWorkload waits for a Pod that never goes until just before its short deadline; on a
  // loaded machine the client's own deadline may fire first. Any other method must answer.
  let stopDeadlines = 0;
  let next = 0;
  const timings = new CallTimings();
  const worker = async (): Promise<void> => {
    while (next < TOTAL_CALLS) {
      next++;
      const method = pick(methods);
      const name = method.path.split('/').pop() ?? '';
      perMethod.set(name, (perMethod.get(name) ?? 0) + 1);
      let code: number;
      const startedAt = performance.now();
      let describe: () => string;
      if (method.requestStream) {
        const messages = execMessages().map((m) => (chance(0.15) ? mutate(m) : Buffer.from(m)));
        describe = () => messages.map((m) => summarize(method, m)).join(' | ');
        code = await bidiCall(method.path, messages);
      } else {
        const generate = REQUESTS[name];
        if (!generate) throw new Error(`no generator for ${name}`);
        const bytes = generate();
        const payload = chance(0.25) ? mutate(bytes) : Buffer.from(bytes);
        describe = () => summarize(method, payload);
        code = method.responseStream
          ? await serverStreamCall(method.path, payload)
          : await unaryCall(method.path, payload);
      }
      timings.record(name, performance.now() - startedAt, code, describe);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (name === 'StopWorkload' && code === status.DEADLINE_EXCEEDED) stopDeadlines++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  const summary = Object.fromEntries([...codes].map(([c, n]) => [status[c] ?? String(c), n]));
  console.log(
    `fuzz seed ${seed}: ${JSON.stringify(summary)} across ${JSON.stringify(Object.fromEntries(perMethod))}`,
  );
  const answered = [...codes.values()].reduce((a, b) => a + b, 0);
  if ((codes.get(status.DEADLINE_EXCEEDED) ?? 0) > stopDeadlines || process.env.FUZZ_TIMINGS)
    console.log(timings.report());
  expect(answered).toBe(TOTAL_CALLS);
  expect((codes.get(status.DEADLINE_EXCEEDED) ?? 0) - stopDeadlines).toBe(0);
  expect(codes.get(status.UNKNOWN) ?? 0).toBe(0);
  expect(codes.get(status.UNAVAILABLE) ?? 0).toBeLessThan(TOTAL_CALLS / 10);
  expect(codes.get(status.RESOURCE_EXHAUSTED) ?? 0).toBeGreaterThan(0);

  // Still serving afterwards.
  expect(await unaryCall(RunnerServiceService.ready.path, Buffer.alloc(0))).toBe(status.OK);
});
