import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadClusterConnection } from '../../src/kube/kubeconfig.ts';
import { execPlugin } from '../support/exec-plugin.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kubeconfig-'));

function write(
  name: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      'current-context': 'c',
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
      users: [{ name: 'u', user }],
    }),
  );
  return file;
}

function writeDoc(name: string, doc: Record<string, unknown>): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

let savedKubeconfig: string | undefined;
beforeEach(() => {
  savedKubeconfig = process.env.KUBECONFIG;
});
afterEach(() => {
  if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedKubeconfig;
});

test('client certificates from files (relative to the kubeconfig) and from inline data', async () => {
  writeFileSync(path.join(dir, 'ca.crt'), 'CA');
  writeFileSync(path.join(dir, 'admin.crt'), 'CERT');
  const fromFiles = loadClusterConnection(
    write(
      'files',
      {
        'client-certificate': 'admin.crt',
        'client-key-data': Buffer.from('KEY').toString('base64'),
      },
      {
        'certificate-authority': 'ca.crt',
      },
    ),
  );
  expect(fromFiles.server).toBe('https://127.0.0.1:6443');
  const opts = await fromFiles.requestOptions();
  expect(String(opts.ca)).toBe('CA');
  expect(String(opts.cert)).toBe('CERT');
  expect(String(opts.key)).toBe('KEY');
  expect(opts.rejectUnauthorized).toBe(true);
});

test('bearer tokens, inline or from a tokenFile (relative, trimmed)', async () => {
  const inline = await loadClusterConnection(write('token', { token: 'abc' })).requestOptions();
  expect(inline.headers).toEqual({ Authorization: 'Bearer abc' });
  writeFileSync(path.join(dir, 'sa-token'), 'from-file\n');
  const fromFile = await loadClusterConnection(
    write('tokenfile', { tokenFile: 'sa-token' }),
  ).requestOptions();
  expect(fromFile.headers).toEqual({ Authorization: 'Bearer from-file' });
});

test('a merged KUBECONFIG takes the current-context from the second file', async () => {
  const first = writeDoc('first', {
    clusters: [{ name: 'one', cluster: { server: 'https://127.0.0.1:1111' } }],
    users: [{ name: 'u1', user: { token: 'one' } }],
    contexts: [{ name: 'one', context: { cluster: 'one', user: 'u1' } }],
  });
  const second = writeDoc('second', {
    'current-context': 'two',
    clusters: [{ name: 'two', cluster: { server: 'https://127.0.0.1:2222' } }],
    users: [{ name: 'u2', user: { token: 'two' } }],
    contexts: [{ name: 'two', context: { cluster: 'two', user: 'u2' } }],
  });
  process.env.KUBECONFIG = [first, path.join(dir, 'absent'), second].join(path.delimiter);
  const connection = loadClusterConnection();
  expect(connection.server).toBe('https://127.0.0.1:2222');
  expect((await connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer two' });
});

test('in a merged list the first current-context and the first entry of a name win (kubectl)', async () => {
  const first = writeDoc('first-wins', {
    'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:1111' } }],
  });
  const second = writeDoc('second-loses', {
    'current-context': 'other',
    clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:2222' } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [
      { name: 'c', context: { cluster: 'k', user: 'u' } },
      { name: 'other', context: { cluster: 'k', user: 'nobody' } },
    ],
  });
  const connection = loadClusterConnection([first, second].join(path.delimiter));
  expect(connection.server).toBe('https://127.0.0.1:1111');
  expect((await connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer t' });
});

test('tls-server-name and insecure-skip-tls-verify reach the TLS options', async () => {
  const opts = await loadClusterConnection(
    write(
      'tls',
      { token: 't' },
      { 'tls-server-name': 'kubernetes', 'insecure-skip-tls-verify': true },
    ),
  ).requestOptions();
  expect(opts.servername).toBe('kubernetes');
  expect(opts.rejectUnauthorized).toBe(false);
});

test('impersonation: as, as-groups, as-uid and as-user-extra become Impersonate-* headers', async () => {
  const opts = await loadClusterConnection(
    write('impersonate', {
      token: 't',
      as: 'alice',
      'as-groups': ['devs', 'ops'],
      'as-uid': '42',
      'as-user-extra': { scopes: ['read', 'write'] },
    }),
  ).requestOptions();
  expect(opts.headers).toEqual({
    Authorization: 'Bearer t',
    'Impersonate-User': 'alice',
    'Impersonate-Group': ['devs', 'ops'],
    'Impersonate-Uid': '42',
    'Impersonate-Extra-scopes': ['read', 'write'],
  });
});

test('an exec plugin runs once, its credential is cached, and invalidate() runs it again', async () => {
  const connection = loadClusterConnection(write('exec', { exec: execPlugin(dir) }));
  expect((await connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer exec-1' });
  expect((await connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer exec-1' });
  connection.invalidate?.();
  expect((await connection.requestOptions()).headers).toEqual({ Authorization: 'Bearer exec-2' });
});

test.each([
  [
    'proxy-url',
    write('proxy', { token: 't' }, { 'proxy-url': 'http://127.0.0.1:3128' }),
    /clusters\["k"\]\.cluster\.proxy-url is not supported/,
  ],
  [
    'basic auth',
    write('basic', { username: 'a', password: 'b' }),
    /users\["u"\]\.user\.username is not supported/,
  ],
  [
    'an unknown user field',
    write('unknown', { token: 't', 'as-everyone': true }),
    /users\["u"\]\.user\.as-everyone is not supported/,
  ],
  [
    'an unknown auth provider',
    write('provider', { 'auth-provider': { name: 'keystone' } }),
    /auth-provider\.name "keystone" is not supported/,
  ],
  [
    'exec provideClusterInfo',
    write('execinfo', { exec: { command: 'x', provideClusterInfo: true } }),
    /exec\.provideClusterInfo is not supported/,
  ],
])('%s is refused at load time, naming the field', (_what, file, message) => {
  expect(() => loadClusterConnection(file)).toThrow(message);
});

test('in a cluster: the service account token (re-read after invalidate) and CA', async () => {
  const sa = mkdtempSync(path.join(os.tmpdir(), 'sa-'));
  writeFileSync(path.join(sa, 'ca.crt'), 'SA-CA');
  writeFileSync(path.join(sa, 'token'), 'first');
  const saved = { ...process.env };
  process.env.KUBECONFIG = '';
  process.env.HOME = sa;
  process.env.KUBERNETES_SERVICE_HOST = 'fd00::1';
  process.env.KUBERNETES_SERVICE_PORT = '6443';
  try {
    const connection = loadClusterConnection(undefined, sa);
    expect(connection.server).toBe('https://[fd00::1]:6443');
    const opts = await connection.requestOptions();
    expect(String(opts.ca)).toBe('SA-CA');
    expect(opts.headers).toEqual({ Authorization: 'Bearer first' });
    writeFileSync(path.join(sa, 'token'), 'rotated');
    connection.invalidate?.();
    expect((await connection.requestOptions()).headers).toEqual({
      Authorization: 'Bearer rotated',
    });
  } finally {
    for (const key of ['HOME', 'KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'])
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
  }
});

test('a missing file or context is a clear error', () => {
  expect(() => loadClusterConnection(path.join(dir, 'nope'))).toThrow(/no kubeconfig at/);
  const file = path.join(dir, 'bad');
  writeFileSync(file, JSON.stringify({ 'current-context': 'x', contexts: [] }));
  expect(() => loadClusterConnection(file)).toThrow(/no context "x"/);
});
