import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Brings the loopback control plane up once per run, or reuses the cluster named by
 * KUBECONFIG when it is set. Then installs the project's CRDs.
 */
export default async function globalSetup(): Promise<void> {
  if (!process.env.KUBECONFIG) {
    const out = execFileSync('bash', [path.join(root, 'scripts/test-cluster'), 'up'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = out.split('\n').find((l) => l.startsWith('KUBECONFIG='));
    if (!line) throw new Error(`scripts/test-cluster up printed no KUBECONFIG: ${out}`);
    process.env.KUBECONFIG = line.slice('KUBECONFIG='.length);
    process.env.K8S_RUNNER_TEST_CLUSTER_STARTED = '1';
  }
  process.env.K8S_RUNNER_BIN_DIR = execFileSync(
    'bash',
    [path.join(root, 'scripts/build-control-plane.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  ).trim();
  // kstatus (built from sigs.k8s.io/cli-utils, cached) and lua5.1 for the GitOps health tests.
  process.env.K8S_RUNNER_TEST_TOOLS_DIR = execFileSync(
    'bash',
    [path.join(root, 'scripts/build-test-tools.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  ).trim();
  const kubectl = path.join(process.env.K8S_RUNNER_BIN_DIR, 'kubectl');
  execFileSync(
    kubectl,
    ['apply', '--server-side', '--force-conflicts', '-f', path.join(root, 'crds')],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  execFileSync(kubectl, ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
