/**
 * `scripts/test-cluster down` of a cluster with a real node leaves nothing behind: no
 * process, mount, cgroup, network namespace or host-state claim of that cluster. A second
 * cluster with its own real node runs beside the suite's shared one meanwhile (their
 * namespaces, cgroups and bridges are named from their state dirs).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { REAL_NODE } from '../support/real-node.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const script = path.join(root, 'scripts/test-cluster');

function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

function cgroupsNamed(prefix: string): string[] {
  const found: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', h);
    try {
      for (const entry of readdirSync(dir))
        if (entry.startsWith(prefix)) found.push(`${dir}/${entry}`);
    } catch {
      // not a directory
    }
  }
  return found;
}

test('down removes every process, mount, cgroup and namespace of a cluster with a real node', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-runner-down-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    K8S_RUNNER_CLUSTER_DIR: dir,
    K8S_RUNNER_REAL_NODE: '1',
  };
  delete env.KUBECONFIG;
  const kubeconfig = path.join(dir, 'kubeconfig');
  let up = false;
  try {
    await run('bash', [script, 'up'], { env, timeout: 300_000 });
    up = true;
    const state = readFileSync(path.join(dir, 'ports.env'), 'utf8');
    const netnsFile = /NETNS_FILE=(.*)/.exec(state)?.[1] ?? '';
    const kubectlBin = path.join(/BIN_DIR=(.*)/.exec(state)?.[1] ?? '', 'kubectl');
    const netns = path.basename(netnsFile);
    expect(netns).toMatch(/^k8s-runner-[0-9a-f]{10}$/);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: 'default' },
      spec: {
        nodeSelector: { 'agyn.io/real-node': 'true' },
        tolerations: [{ key: 'agyn.io/real-node', operator: 'Exists', effect: 'NoSchedule' }],
        containers: [
          {
            name: 'c',
            image: 'k8s-runner.local/busybox:1',
            command: ['sleep', '3600'],
            volumeMounts: [{ name: 'scratch', mountPath: '/s' }],
          },
        ],
        volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory' } }],
      },
    };
    const kubectl = (...args: string[]) =>
      run(kubectlBin, ['--kubeconfig', kubeconfig, ...args], { env, timeout: 120_000 });
    const apply = kubectl('apply', '-f', '-');
    apply.child.stdin?.end(JSON.stringify(pod));
    await apply;
    await kubectl('wait', '--for=condition=Ready', 'pod/probe', '--timeout=90s');
    const { stdout: node } = await kubectl(
      'get',
      'pod',
      'probe',
      '-o',
      'jsonpath={.spec.nodeName}',
    );
    expect(node).toBe(REAL_NODE);
    // While it runs: a shim, a tmpfs mount under the state dir, the node's cgroups.
    expect(processesMentioning(dir).length).toBeGreaterThan(0);
    expect(mountsUnder(dir).length).toBeGreaterThan(0);
    expect(cgroupsNamed(netns).length).toBeGreaterThan(0);
    expect(existsSync(netnsFile)).toBe(true);

    await run('bash', [script, 'down'], { env, timeout: 120_000 });
    up = false;
    expect(processesMentioning(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(cgroupsNamed(netns)).toEqual([]);
    expect(existsSync(netnsFile)).toBe(false);
    expect(existsSync(`/run/k8s-runner-real-node/clusters/${netns}`)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  } finally {
    if (up) await run('bash', [script, 'down'], { env, timeout: 120_000 }).catch(() => undefined);
  }
});
