/**
 * `npm run test:unit` needs no Go, helm or cluster: no unit test builds the control plane,
 * starts the test cluster or runs one of its binaries (those tests live in test/integration).
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const unitDir = path.dirname(fileURLToPath(import.meta.url));
const FORBIDDEN = [
  'build-control-plane',
  'scripts/test-cluster',
  'K8S_RUNNER_BIN_DIR',
  'support/kube',
  'binDir(',
];

describe('unit tests', () => {
  it('need no Go toolchain, helm, kubectl or cluster', () => {
    const offenders = readdirSync(unitDir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => {
        const text = readFileSync(path.join(unitDir, f), 'utf8');
        return FORBIDDEN.filter((needle) => text.includes(needle)).map((n) => `${f}: ${n}`);
      })
      .filter((o) => !o.startsWith('unit-isolation.test.ts'));
    expect(offenders).toEqual([]);
  });
});
