import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { NAMESPACES, SERVICE_ACCOUNTS } from '../../src/kube/resources.ts';
import { AGENT_WORKLOADS } from '../../src/api/resources.ts';
import { runPool } from './pool.ts';
import { sleep } from './stats.ts';

/** The repository: found upwards, as the benchmarks also run compiled from .bench-build/. */
export const ROOT = repositoryRoot(path.dirname(fileURLToPath(import.meta.url)));

function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'scripts/test-cluster'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no repository above ${from}`);
  }
}

/** True when this code runs as JavaScript compiled by tsc (npm run bench), not under tsx. */
export const COMPILED = import.meta.url.endsWith('.js');

export interface BenchCluster {
  kubeconfig: string;
  /** True when this process started the cluster (and stops it). */
  dedicated: boolean;
  stateDir?: string;
  stop(): void;
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/**
 * The cluster a benchmark runs against: the one KUBECONFIG names, else a dedicated
 * loopback control plane in a fresh temp dir (never the shared .test-cluster), which
 * stop() tears down. Either way the project's CRDs are installed.
 */
export function acquireCluster(kubeconfig = process.env.KUBECONFIG): BenchCluster {
  let cluster: BenchCluster;
  if (kubeconfig) {
    log(`using the cluster of KUBECONFIG=${kubeconfig}`);
    cluster = { kubeconfig, dedicated: false, stop: () => undefined };
  } else {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'k8s-runner-bench-'));
    // kwok nodes only: the benchmarks measure the control plane, not a real kubelet.
    const env = { ...process.env, K8S_RUNNER_CLUSTER_DIR: stateDir, K8S_RUNNER_REAL_NODE: '0' };
    log(`starting a dedicated cluster in ${stateDir}`);
    const out = execFileSync('bash', [path.join(ROOT, 'scripts/test-cluster'), 'up'], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = out.split('\n').find((l) => l.startsWith('KUBECONFIG='));
    if (!line) throw new Error(`scripts/test-cluster up printed no KUBECONFIG: ${out}`);
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      log(`stopping the dedicated cluster in ${stateDir}`);
      try {
        execFileSync('bash', [path.join(ROOT, 'scripts/test-cluster'), 'down'], {
          env,
          stdio: ['ignore', 'ignore', 'inherit'],
        });
      } catch (err) {
        log(`could not stop the cluster: ${(err as Error).message}`);
      }
    };
    process.once('exit', stop);
    cluster = { kubeconfig: line.slice('KUBECONFIG='.length), dedicated: true, stateDir, stop };
  }
  installCrds(cluster.kubeconfig);
  return cluster;
}

/** Stops the dedicated cluster on Ctrl-C too. */
export function stopOnSignals(cluster: BenchCluster): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cluster.stop();
      process.exit(130);
    });
  }
}

export function binDir(): string {
  return execFileSync('bash', [path.join(ROOT, 'scripts/build-control-plane.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

function installCrds(kubeconfig: string): void {
  const kubectl = path.join(binDir(), 'kubectl');
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  execFileSync(
    kubectl,
    ['apply', '--server-side', '--force-conflicts', '-f', path.join(ROOT, 'crds')],
    {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  execFileSync(kubectl, ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** A client for the load generator and observers: no client-side rate limit worth the name. */
export function unlimitedClient(kubeconfig: string): KubeClient {
  return KubeClient.fromEnvironment(kubeconfig, {
    qps: 100_000,
    burst: 100_000,
    userAgent: 'k8s-runner-bench',
  });
}

/** A fresh namespace whose default ServiceAccount exists (Pods are refused before it does). */
export async function createNamespace(kube: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await kube
    .resource(NAMESPACES)
    .create(undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  const accounts = kube.resource(SERVICE_ACCOUNTS);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await accounts.get(name, 'default');
      return name;
    } catch (err) {
      if (!isNotFound(err) || Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

/**
 * Deletes a namespace: AgentWorkloads lose their finalizer first (the controller may be
 * gone), then the namespace goes. With `waitMs` it waits (up to that long) until it is gone
 * and says whether it is.
 */
export async function deleteNamespace(
  kube: KubeClient,
  name: string,
  waitMs = 0,
): Promise<boolean> {
  const namespaces = kube.resource(NAMESPACES);
  try {
    await namespaces.delete(undefined, name);
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
  const workloads = kube.resource<KubeObject>(AGENT_WORKLOADS);
  const deadline = Date.now() + waitMs;
  for (;;) {
    const list = await workloads.list(name).catch(() => ({ items: [] as KubeObject[] }));
    const stuck = list.items.filter((w) => (w.metadata?.finalizers ?? []).length > 0);
    await runPool(stuck.length, 32, async (i) => {
      const w = stuck[i];
      await workloads
        .mergePatch(name, w?.metadata?.name ?? '', { metadata: { finalizers: null } })
        .catch(() => undefined);
    });
    if (waitMs <= 0) return false;
    try {
      await namespaces.get(undefined, name);
    } catch (err) {
      if (isNotFound(err)) return true;
    }
    if (Date.now() > deadline) return false;
    await sleep(1_000);
  }
}
