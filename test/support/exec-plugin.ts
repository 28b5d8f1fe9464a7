import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A kubeconfig `exec` entry for a credential plugin (a small node script in `dir`) that hands
 * out a new token on every run: exec-1, exec-2 … Its credential expires in 2999, so only a
 * dropped cache makes the client run it again.
 */
export function execPlugin(dir: string): { command: string; args: string[] } {
  const script = path.join(dir, 'exec-plugin.mjs');
  const counter = path.join(dir, `exec-plugin-${Math.random().toString(36).slice(2)}.count`);
  writeFileSync(
    script,
    `import fs from 'node:fs';
const file = process.argv[2];
const n = (fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0) + 1;
fs.writeFileSync(file, String(n));
process.stdout.write(JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1',
  kind: 'ExecCredential',
  status: { token: 'exec-' + n, expirationTimestamp: '2999-01-01T00:00:00Z' },
}));
`,
  );
  return { command: process.execPath, args: [script, counter] };
}
