import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Stops the control plane only when this run started it (K8S_RUNNER_KEEP_CLUSTER=1 keeps it). */
export default async function globalTeardown(): Promise<void> {
  if (process.env.K8S_RUNNER_TEST_CLUSTER_STARTED !== '1') return;
  if (process.env.K8S_RUNNER_KEEP_CLUSTER === '1') return;
  execFileSync('bash', [path.join(root, 'scripts/test-cluster'), 'down'], { stdio: 'inherit' });
}
