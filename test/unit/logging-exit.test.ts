import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@jest/globals';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('the default logger writes asynchronously, yet every line is out when the process exits', () => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'test/fixtures/log-then-exit.ts')],
    { cwd: root, env: { ...process.env, LINES: '5000' }, encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  expect(r.status).toBe(3);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(5000);
  const last = JSON.parse(lines.at(-1) ?? '{}') as { i?: number; token?: string; msg?: string };
  expect(last).toMatchObject({ i: 4999, token: '[redacted]', msg: 'line' });
});
