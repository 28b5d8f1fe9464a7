import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import type { KubeObject } from '../../src/kube/client.ts';
import { LEASES } from '../../src/kube/resources.ts';
import {
  createTestNamespace,
  eventually,
  readKubeconfigServer,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import {
  httpGet,
  parseMetrics,
  startOperator,
  type OperatorProcess,
} from '../support/operator-process.ts';

const client = testKubeClient();
const LEASE = `readiness-${randomBytes(4).toString('hex')}`;
let ns: TestNamespace;
/** The workload namespace: never the operator's. */
let wns: TestNamespace;
let tmp: string;
let proxy: GatedProxy;
const operators: OperatorProcess[] = [];

interface GatedProxy {
  port: number;
  /** Connections made before open() wait, unanswered, until it is called. */
  open(): void;
  close(): Promise<void>;
}

/** A TCP proxy to the API server that holds every connection until opened. */
async function startGatedProxy(target: URL): Promise<GatedProxy> {
  let opened = false;
  const held: net.Socket[] = [];
  const sockets = new Set<net.Socket>();
  const forward = (socket: net.Socket): void => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    socket.pipe(upstream).pipe(socket);
    const end = (): void => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    socket.resume();
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    if (opened) forward(socket);
    else {
      socket.pause();
      held.push(socket);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    open() {
      opened = true;
      for (const socket of held.splice(0)) forward(socket);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function kubeconfigVia(port: number): string {
  const file = path.join(tmp, 'kubeconfig');
  const text = readFileSync(process.env.KUBECONFIG ?? '', 'utf8');
  writeFileSync(file, text.replace(/server:\s*\S+/, `server: https://127.0.0.1:${port}`));
  return file;
}

function replicaEnv(name: string): Record<string, string> {
  return {
    OPERATOR_NAMESPACE: ns.name,
    WORKLOAD_NAMESPACE: wns.name,
    LEADER_ELECTION: 'true',
    LEADER_ELECTION_ID: LEASE,
    POD_NAME: name,
    GRPC_AUTH_MODE: 'insecure',
  };
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = await client
    .resource<KubeObject & { spec?: { holderIdentity?: string } }>(LEASES)
    .get(ns.name, LEASE);
  return lease.spec?.holderIdentity;
}

function metric(text: string, name: string, labels: Record<string, string>): number | undefined {
  return parseMetrics(text).find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

beforeAll(async () => {
  ns = await createTestNamespace(client, 'op-ready');
  wns = await createTestNamespace(client, 'op-ready-wl');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'op-ready-'));
  proxy = await startGatedProxy(new URL(readKubeconfigServer()));
});

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop('SIGKILL')));
  await proxy?.close();
  rmSync(tmp, { recursive: true, force: true });
  await ns?.cleanup();
  await wns?.cleanup();
  client.close();
});

test('/healthz answers at once; /readyz is 503 until the caches sync, then 200', async () => {
  const a = await startOperator({
    name: 'ready-a',
    env: { ...replicaEnv('ready-a'), KUBECONFIG: kubeconfigVia(proxy.port) },
  });
  operators.push(a);

  expect(await httpGet(`${a.httpUrl}/healthz`)).toEqual({ status: 200, body: 'ok' });
  const before: { status: number; body: string }[] = [];
  for (let i = 0; i < 10; i++) {
    before.push(await httpGet(`${a.httpUrl}/readyz`));
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(new Set(before.map((r) => `${r.status} ${r.body}`))).toEqual(
    new Set(['503 caches not synced']),
  );
  expect(a.logs().some((l) => l.msg === 'became leader')).toBe(false);

  const openedAt = Date.now();
  proxy.open();
  const seen: string[] = [];
  await eventually(
    async () => {
      const r = await httpGet(`${a.httpUrl}/readyz`);
      if (seen.at(-1) !== `${r.status} ${r.body}`) seen.push(`${r.status} ${r.body}`);
      return r.status === 200;
    },
    { timeoutMs: 20_000, intervalMs: 20, what: 'ready-a ready' },
  );
  console.log(
    `readiness after the API became reachable: ${Date.now() - openedAt} ms; /readyz went ${seen.join(' -> ')}`,
  );
  expect(seen.at(-1)).toBe('200 ok');
  expect(seen.slice(0, -1).every((s) => s.startsWith('503 '))).toBe(true);
  expect(await httpGet(`${a.httpUrl}/healthz`)).toEqual({ status: 200, body: 'ok' });

  // The only replica leads, and /readyz said 200 only once its controllers ran.
  const became = await a.waitForLog((l) => l.msg === 'became leader', 'leadership');
  // The runner controller starts last; its line may land in the log a moment after leadership's.
  await a.waitForLog(
    (l) => l.msg === 'controller started' && l.controller === 'runner',
    'controllers started',
  );
  const started = a.logs().filter((l) => l.msg === 'controller started');
  expect(started.map((l) => l.controller).sort()).toEqual([
    'agentworkload',
    'orphan-secrets',
    'runner',
  ]);
  expect(became.time).toBeGreaterThanOrEqual(openedAt);
  expect(await leaseHolder()).toBe('ready-a');
});

test('a follower with synced caches is ready without reconciling', async () => {
  const b = await startOperator({ name: 'ready-b', env: replicaEnv('ready-b') });
  operators.push(b);
  await eventually(async () => (await httpGet(`${b.httpUrl}/readyz`)).status === 200, {
    timeoutMs: 20_000,
    what: 'ready-b ready',
  });
  // Give the follower a few retry periods to (wrongly) take the lease.
  await new Promise((r) => setTimeout(r, 3_000));
  expect(await leaseHolder()).toBe('ready-a');
  expect(b.logs().some((l) => l.msg === 'became leader' || l.msg === 'controller started')).toBe(
    false,
  );
  expect((await httpGet(`${b.httpUrl}/readyz`)).status).toBe(200);

  const followerMetrics = (await httpGet(`${b.httpUrl}/metrics`)).body;
  expect(metric(followerMetrics, 'leader_election_master_status', { name: LEASE })).toBe(0);
  expect(
    metric(followerMetrics, 'controller_runtime_reconcile_total', { controller: 'agentworkload' }),
  ).toBeUndefined();
  const leaderMetrics = (await httpGet(`${operators[0]!.httpUrl}/metrics`)).body;
  expect(metric(leaderMetrics, 'leader_election_master_status', { name: LEASE })).toBe(1);
});

test('a leader that shuts down releases the Lease and the follower takes over at once', async () => {
  const [a, b] = operators as [OperatorProcess, OperatorProcess];
  const stoppedAt = Date.now();
  await a.stop('SIGTERM');
  expect(await a.exited).toEqual({ code: 0, signal: null });
  const became = await b.waitForLog((l) => l.msg === 'became leader', 'ready-b leadership', 10_000);
  console.log(`handover after a graceful shutdown: ${became.time - stoppedAt} ms`);
  expect(became.time - stoppedAt).toBeLessThan(5_000);
  expect(await leaseHolder()).toBe('ready-b');
  await eventually(async () => (await httpGet(`${b.httpUrl}/readyz`)).status === 200, {
    what: 'ready-b ready as leader',
  });
});
