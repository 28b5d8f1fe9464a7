import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadClusterConnection } from '../../src/kube/kubeconfig.ts';

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
  expect(fromFiles?.server).toBe('https://127.0.0.1:6443');
  const opts = await fromFiles?.requestOptions();
  expect(String(opts?.ca)).toBe('CA');
  expect(String(opts?.cert)).toBe('CERT');
  expect(String(opts?.key)).toBe('KEY');
  expect(opts?.rejectUnauthorized).toBe(true);
});

test('bearer tokens, inline or from a file', async () => {
  const inline = await loadClusterConnection(write('token', { token: 'abc' }))?.requestOptions();
  expect(inline?.headers).toEqual({ authorization: 'Bearer abc' });
  writeFileSync(path.join(dir, 'sa-token'), 'from-file\n');
  const fromFile = await loadClusterConnection(
    write('tokenfile', { tokenFile: 'sa-token' }),
  )?.requestOptions();
  expect(fromFile?.headers).toEqual({ authorization: 'Bearer from-file' });
});

test('exec plugins and auth providers are left to the full library', () => {
  expect(loadClusterConnection(write('exec', { exec: { command: 'aws' } }))).toBeUndefined();
  expect(
    loadClusterConnection(write('oidc', { 'auth-provider': { name: 'oidc' } })),
  ).toBeUndefined();
});

test('a missing file or context is a clear error', () => {
  expect(() => loadClusterConnection(path.join(dir, 'nope'))).toThrow(/no kubeconfig at/);
  const file = path.join(dir, 'bad');
  writeFileSync(file, JSON.stringify({ 'current-context': 'x', contexts: [] }));
  expect(() => loadClusterConnection(file)).toThrow(/no context "x"/);
});
