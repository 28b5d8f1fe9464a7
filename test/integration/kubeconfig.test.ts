import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { KubeClient } from '../../src/kube/client.ts';
import { NAMESPACES } from '../../src/kube/resources.ts';

// Kubeconfig connection settings against the test cluster's own API server and certificate
// (its SANs: 127.0.0.1, localhost, kubernetes, kubernetes.default[.svc[.cluster.local]]).
type Doc = {
  clusters: Array<{ cluster: Record<string, unknown> }>;
  users: Array<{ user: Record<string, unknown> }>;
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'kubeconfig-it-'));
const base = parse(readFileSync(process.env.KUBECONFIG ?? '', 'utf8')) as Doc;
const apiServer = new URL(String(base.clusters[0]?.cluster.server));

function kubeconfig(
  name: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown> = {},
): string {
  const doc = structuredClone(base);
  Object.assign(doc.clusters[0]!.cluster, cluster);
  Object.assign(doc.users[0]!.user, user);
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

// A loopback address that is not in the API server certificate, forwarding to the API server.
let forwarder: net.Server;
let forwardPort: number;
beforeAll(async () => {
  forwarder = net.createServer((c) => {
    const upstream = net.connect(Number(apiServer.port), apiServer.hostname);
    c.pipe(upstream).pipe(c);
    c.on('error', () => upstream.destroy());
    upstream.on('error', () => c.destroy());
  });
  await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.2', resolve));
  forwardPort = (forwarder.address() as net.AddressInfo).port;
});
afterAll(() => new Promise((resolve) => forwarder.close(resolve)));

async function getDefault(file: string): Promise<string | undefined> {
  const kube = KubeClient.fromEnvironment(file);
  try {
    return (await kube.resource(NAMESPACES).get(undefined, 'default')).metadata?.name;
  } finally {
    kube.close();
  }
}

test('tls-server-name is what the API server certificate is checked against', async () => {
  const server = `https://127.0.0.2:${forwardPort}`;
  await expect(getDefault(kubeconfig('no-name', { server }))).rejects.toThrow(
    /IP: 127\.0\.0\.2 is not in the cert's list/,
  );
  const named = kubeconfig('named', { server, 'tls-server-name': 'kubernetes.default.svc' });
  expect(await getDefault(named)).toBe('default');
  const wrong = kubeconfig('wrong-name', { 'tls-server-name': 'wrong.invalid' });
  await expect(getDefault(wrong)).rejects.toThrow(/Host: wrong\.invalid/);
});

test('impersonation fields reach the API server (SelfSubjectReview answers as the impersonated user)', async () => {
  const file = kubeconfig(
    'impersonate',
    {},
    {
      as: 'alice',
      'as-groups': ['devs', 'ops'],
      'as-uid': 'u-42',
      'as-user-extra': { team: ['a'] },
    },
  );
  const kube = KubeClient.fromEnvironment(file);
  const review = await kube.request<{ status: { userInfo: Record<string, unknown> } }>(
    'POST',
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
  );
  kube.close();
  expect(review.status.userInfo).toEqual({
    username: 'alice',
    uid: 'u-42',
    groups: expect.arrayContaining(['devs', 'ops', 'system:authenticated']),
    extra: { team: ['a'] },
  });
});

test('a field the client cannot honour stops it before any request, naming the field', () => {
  const file = kubeconfig('proxy', { 'proxy-url': 'http://127.0.0.1:3128' });
  expect(() => KubeClient.fromEnvironment(file)).toThrow(
    /clusters\["[^"]+"\]\.cluster\.proxy-url is not supported/,
  );
});
