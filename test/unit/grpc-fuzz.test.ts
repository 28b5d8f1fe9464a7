import http from 'node:http';
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
import { WebSocketServer } from 'ws';
import {
  CancelExecutionRequest,
  ExecRequest,
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

jest.setTimeout(120_000);

const NS = 'fuzz';
const ID = '0f0f0f0f-1111-4222-8333-444444444444';
const POD = `workload-${ID}`;
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

// ---------------------------------------------------------------- a fake API server

const labels = {
  'app.kubernetes.io/managed-by': 'k8s-runner',
  'agyn.io/workload-id': ID,
  workload_key: 'k',
};
const objects: Record<string, unknown> = {
  pods: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: NS, uid: 'pod-uid', resourceVersion: '1', labels },
    spec: {
      containers: [{ name: 'main', image: 'alpine' }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
    },
    status: {
      phase: 'Running',
      containerStatuses: [
        { name: 'main', image: 'alpine', restartCount: 0, state: { running: {} } },
      ],
    },
  },
  agentworkloads: {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: POD, namespace: NS, uid: 'aw-uid', resourceVersion: '1', labels },
    spec: {
      workloadId: ID,
      main: { name: 'main', image: 'alpine', mounts: [{ volume: 'data', mountPath: '/d' }] },
      sidecars: [],
      initContainers: [],
      volumes: [{ name: 'data', kind: 'Persistent', persistentName: 'data' }],
      capabilities: [],
      stopped: false,
      restartPolicy: 'Never',
      deleteVolumesWithWorkload: false,
      labels: { workload_key: 'k' },
    },
    status: { phase: 'Running', podName: POD },
  },
  persistentvolumeclaims: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: 'data',
      namespace: NS,
      resourceVersion: '1',
      labels: { 'app.kubernetes.io/managed-by': 'k8s-runner', volume_key: 'v' },
    },
  },
};

const STATUSES: Array<[number, string]> = [
  [404, 'NotFound'],
  [409, 'AlreadyExists'],
  [409, 'Conflict'],
  [422, 'Invalid'],
  [401, 'Unauthorized'],
  [403, 'Forbidden'],
  [400, 'BadRequest'],
  [500, 'InternalError'],
];

function fakeApi(): http.Server {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    const nsIndex = parts.indexOf('namespaces');
    const plural = parts[nsIndex + 2] ?? '';
    const name = parts[nsIndex + 3];
    const sub = parts[nsIndex + 4];
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (): void => {
      const [code, reason] = pick(STATUSES);
      json(code, { kind: 'Status', status: 'Failure', reason, code, message: `fake ${reason}` });
    };
    req.resume();
    if (url.searchParams.get('watch')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (plural !== 'events') return; // informer watches stay open
      const event = {
        metadata: { name: 'e', namespace: NS },
        involvedObject: { kind: 'Pod', name: POD },
        reason: 'Started',
        type: 'Normal',
      };
      res.write(`${JSON.stringify({ type: 'ADDED', object: event })}\n`);
      if (chance(0.2)) res.write('{garbage\n');
      if (chance(0.2))
        res.write(`${JSON.stringify({ type: 'ERROR', object: { code: 410, message: 'gone' } })}\n`);
      setTimeout(() => res.end(), 20);
      return;
    }
    if (req.method === 'GET' && name === undefined) {
      const obj = objects[plural];
      json(200, { metadata: { resourceVersion: '1' }, items: obj ? [obj] : [] });
      return;
    }
    if (sub === 'log') {
      if (chance(0.3)) return fail();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('line 1\n');
      setTimeout(() => res.end('line 2\n'), 5);
      return;
    }
    if (chance(0.5)) {
      const obj = objects[plural] ?? { metadata: { name, namespace: NS } };
      json(req.method === 'POST' ? 201 : 200, obj);
      return;
    }
    fail();
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'v5.channel.k8s.io' });
  server.on('upgrade', (req, socket, head) => {
    if (chance(0.2)) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (raw: Buffer) => {
        if (raw[0] === 0) ws.send(Buffer.concat([Buffer.from([1]), raw.subarray(1)]));
        if (raw[0] === 255) {
          ws.send(
            Buffer.concat([
              Buffer.from([3]),
              Buffer.from(
                JSON.stringify({
                  status: chance(0.5) ? 'Success' : 'Failure',
                  message: 'exit status 3',
                }),
              ),
            ]),
          );
          ws.close();
        }
      });
      ws.on('error', () => {});
    });
  });
  return server;
}

// ---------------------------------------------------------------- the test

let api: http.Server;
let kube: KubeClient;
let caches: ShimCaches;
let server: RunnerGrpcServer;
let client: Client;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

beforeAll(async () => {
  api = fakeApi();
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

it(`answers ${TOTAL_CALLS} random and malformed requests with a status, without crashing`, async () => {
  const methods = Object.values(RunnerServiceService);
  const codes = new Map<number, number>();
  const perMethod = new Map<string, number>();
  // StopWorkload waits for a Pod that never goes until just before its short deadline; on a
  // loaded machine the client's own deadline may fire first. Any other method must answer.
  let stopDeadlines = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < TOTAL_CALLS) {
      next++;
      const method = pick(methods);
      const name = method.path.split('/').pop() ?? '';
      perMethod.set(name, (perMethod.get(name) ?? 0) + 1);
      let code: number;
      if (method.requestStream) {
        const messages = execMessages().map((m) => (chance(0.15) ? mutate(m) : Buffer.from(m)));
        code = await bidiCall(method.path, messages);
      } else {
        const generate = REQUESTS[name];
        if (!generate) throw new Error(`no generator for ${name}`);
        const bytes = generate();
        const payload = chance(0.25) ? mutate(bytes) : Buffer.from(bytes);
        code = method.responseStream
          ? await serverStreamCall(method.path, payload)
          : await unaryCall(method.path, payload);
      }
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
  expect(answered).toBe(TOTAL_CALLS);
  expect((codes.get(status.DEADLINE_EXCEEDED) ?? 0) - stopDeadlines).toBe(0);
  expect(codes.get(status.UNKNOWN) ?? 0).toBe(0);
  expect(codes.get(status.UNAVAILABLE) ?? 0).toBeLessThan(TOTAL_CALLS / 10);
  expect(codes.get(status.RESOURCE_EXHAUSTED) ?? 0).toBeGreaterThan(0);

  // Still serving afterwards.
  expect(await unaryCall(RunnerServiceService.ready.path, Buffer.alloc(0))).toBe(status.OK);
});
