import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/errors.ts';
import { CONFIGMAPS } from '../../src/kube/resources.ts';
import { execPlugin } from '../support/exec-plugin.ts';
import { generateTestPki, type TestPki } from '../support/tls.ts';

// A loopback HTTPS server that answers with whatever status the test queues: it exercises
// the client's retry rules, not the Kubernetes API.
interface Answer {
  status: number;
  retryAfter?: string;
  /** Never answered (until the client gives up). */
  hold?: boolean;
}

let pki: TestPki;
let server: https.Server;
let port: number;
const queued: Answer[] = [];
const seen: Array<{ method: string; auth?: string }> = [];

beforeAll(async () => {
  pki = await generateTestPki();
  server = https.createServer({ cert: pki.server.cert, key: pki.server.key }, (req, res) => {
    seen.push({ method: req.method ?? '', auth: req.headers.authorization });
    req.resume();
    const answer = queued.shift() ?? { status: 200 };
    if (answer.hold) return;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
    res.writeHead(answer.status, headers);
    res.end(
      answer.status < 400
        ? JSON.stringify({ metadata: { name: 'a', resourceVersion: '5' } })
        : JSON.stringify({ kind: 'Status', reason: `Status${answer.status}`, message: 'no' }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await pki.cleanup();
});

beforeEach(() => {
  queued.length = 0;
  seen.length = 0;
});

let tokens = 0;
function client(): KubeClient {
  return new KubeClient({
    server: `https://127.0.0.1:${port}`,
    requestOptions: () =>
      Promise.resolve({ ca: pki.ca.cert, headers: { authorization: `Bearer t${++tokens}` } }),
  });
}

const obj = (rv?: string): KubeObject => ({ metadata: { name: 'a', resourceVersion: rv } });

test('GET retries 429 (after Retry-After) and 503 until it succeeds', async () => {
  const c = client();
  queued.push({ status: 429, retryAfter: '0' }, { status: 503 }, { status: 500 });
  const got = await c.resource(CONFIGMAPS).get('ns', 'a');
  expect(got.metadata?.resourceVersion).toBe('5');
  expect(seen.map((s) => s.method)).toEqual(['GET', 'GET', 'GET', 'GET']);
  c.close();
});

test('DELETE and a PUT pinned to a resourceVersion retry; a PUT without one is surfaced', async () => {
  const c = client();
  const cms = c.resource(CONFIGMAPS);
  queued.push({ status: 503, retryAfter: '0' });
  await cms.delete('ns', 'a');
  queued.push({ status: 429, retryAfter: '0' });
  await cms.replace('ns', 'a', obj('4'));
  expect(seen.map((s) => s.method)).toEqual(['DELETE', 'DELETE', 'PUT', 'PUT']);
  seen.length = 0;
  queued.push({ status: 503, retryAfter: '0' });
  await expect(cms.replace('ns', 'a', obj())).rejects.toMatchObject({ statusCode: 503 });
  expect(seen).toHaveLength(1);
  c.close();
});

test('POST and PATCH answered 429 are surfaced with the server’s Retry-After', async () => {
  const c = client();
  const cms = c.resource(CONFIGMAPS);
  queued.push({ status: 429, retryAfter: '7' });
  const err = await cms.create('ns', obj()).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(KubeApiError);
  expect(err).toMatchObject({ statusCode: 429, retryAfterSeconds: 7 });
  queued.push({ status: 500 });
  await expect(cms.mergePatch('ns', 'a', { data: {} })).rejects.toMatchObject({ statusCode: 500 });
  expect(seen.map((s) => s.method)).toEqual(['POST', 'PATCH']);
  c.close();
});

test('a GET that keeps failing gives up after a bounded number of attempts', async () => {
  const c = client();
  for (let i = 0; i < 20; i++) queued.push({ status: 503, retryAfter: '0' });
  await expect(c.resource(CONFIGMAPS).get('ns', 'a')).rejects.toMatchObject({ statusCode: 503 });
  expect(seen.length).toBeGreaterThan(1);
  expect(seen.length).toBeLessThan(20);
  c.close();
});

test('401 drops the cached credentials and retries once with fresh ones, even a POST', async () => {
  const c = client();
  const cms = c.resource(CONFIGMAPS);
  await cms.get('ns', 'a');
  queued.push({ status: 401 });
  await cms.create('ns', obj());
  expect(seen.map((s) => s.method)).toEqual(['GET', 'POST', 'POST']);
  expect(seen[2]?.auth).not.toBe(seen[1]?.auth);
  seen.length = 0;
  queued.push({ status: 401 }, { status: 401 });
  await expect(cms.get('ns', 'a')).rejects.toMatchObject({ statusCode: 401 });
  expect(seen).toHaveLength(2);
  c.close();
});

test('401 runs the kubeconfig exec plugin again for a fresh credential (issue 17 item 4)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'client-retry-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      'current-context': 'c',
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      clusters: [
        {
          name: 'k',
          cluster: {
            server: `https://127.0.0.1:${port}`,
            'certificate-authority-data': Buffer.from(pki.ca.cert).toString('base64'),
          },
        },
      ],
      users: [{ name: 'u', user: { exec: execPlugin(dir) } }],
    }),
  );
  const c = await KubeClient.connect(kubeconfig);
  const cms = c.resource(CONFIGMAPS);
  await cms.get('ns', 'a');
  await cms.get('ns', 'a');
  queued.push({ status: 401 });
  await cms.create('ns', obj());
  expect(seen.map((s) => `${s.method} ${s.auth}`)).toEqual([
    'GET Bearer exec-1',
    'GET Bearer exec-1',
    'POST Bearer exec-1',
    'POST Bearer exec-2',
  ]);
  c.close();
});

test('a WebSocket upgrade the server never answers fails after the request timeout', async () => {
  const held: Array<import('node:stream').Duplex> = [];
  const hold = (_req: unknown, socket: import('node:stream').Duplex): void =>
    void held.push(socket);
  server.on('upgrade', hold);
  try {
    const c = new KubeClient(
      {
        server: `https://127.0.0.1:${port}`,
        requestOptions: () => Promise.resolve({ ca: pki.ca.cert }),
      },
      { requestTimeoutMs: 300 },
    );
    await expect(
      c.webSocket('/api/v1/namespaces/ns/pods/p/exec', [], ['v5.channel.k8s.io']),
    ).rejects.toThrow(/handshake has timed out/);
    c.close();
  } finally {
    server.off('upgrade', hold);
    for (const socket of held) socket.destroy();
  }
});

test('every write is released from the fence when it ends; closing the fence aborts one in flight', async () => {
  const c = client();
  const cms = c.resource(CONFIGMAPS);
  await Promise.all([cms.create('ns', obj()), cms.create('ns', obj()), cms.get('ns', 'a')]);
  queued.push({ status: 409 });
  await expect(cms.create('ns', obj())).rejects.toThrow();
  expect(c.fence.writesInFlight).toBe(0);
  queued.push({ status: 200, hold: true });
  const before = seen.length;
  const held = cms.create('ns', obj());
  await new Promise<void>((resolve) => {
    const poll = (): void => (seen.length > before ? resolve() : void setTimeout(poll, 5));
    poll();
  });
  expect(c.fence.writesInFlight).toBe(1);
  c.fence.close('leader election lost');
  await expect(held).rejects.toThrow();
  expect(c.fence.writesInFlight).toBe(0);
  await expect(cms.create('ns', obj())).rejects.toThrow('write refused: leader election lost');
  c.close();
});
