import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { KubeClient } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/errors.ts';
import { NAMESPACES } from '../../src/kube/resources.ts';

export const testLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export function testKubeClient(): KubeClient {
  const kubeconfig = process.env.KUBECONFIG;
  if (!kubeconfig)
    throw new Error('KUBECONFIG is not set: the integration global setup did not run');
  return KubeClient.fromEnvironment(kubeconfig);
}

/**
 * The Kubernetes version `helm template` renders for: the helm built by
 * scripts/build-control-plane.sh defaults to v1.20.0, below the charts' kubeVersion.
 */
export const HELM_KUBE_VERSION = 'v1.36.4';

export function binDir(): string {
  const dir = process.env.K8S_RUNNER_BIN_DIR;
  if (!dir) throw new Error('K8S_RUNNER_BIN_DIR is not set');
  return dir;
}

export function clusterStateDir(): string {
  return path.dirname(process.env.KUBECONFIG ?? '');
}

/** Appends CRI-format lines to the file kwok serves as every container's log. */
export function simulatedLogFile(): string {
  return path.join(clusterStateDir(), 'sim', 'container.log');
}

export function simulatedExecRoot(): string {
  return path.join(clusterStateDir(), 'sim', 'exec-root');
}

export interface TestNamespace {
  name: string;
  cleanup(): Promise<void>;
}

/** A fresh namespace per test file, deleted (and awaited) by cleanup. */
export async function createTestNamespace(
  client: KubeClient,
  prefix = 't',
): Promise<TestNamespace> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  const namespaces = client.resource(NAMESPACES);
  await namespaces.create(undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return {
    name,
    async cleanup() {
      try {
        await namespaces.delete(undefined, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

/** Test-side polling (the operator itself never polls). */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const suffix = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}${suffix}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}

export function readKubeconfigServer(): string {
  const text = readFileSync(process.env.KUBECONFIG ?? '', 'utf8');
  return /server:\s*(\S+)/.exec(text)?.[1] ?? '';
}

/** Compacts the test cluster's etcd at its current revision (expires older watches). */
export async function compactEtcd(): Promise<number> {
  const ports = readFileSync(path.join(clusterStateDir(), 'ports.env'), 'utf8');
  const port = /ETCD_PORT=(\d+)/.exec(ports)?.[1];
  if (!port) throw new Error('ETCD_PORT not found in ports.env');
  const base = `http://127.0.0.1:${port}/v3/kv`;
  const range = (await (
    await fetch(`${base}/range`, { method: 'POST', body: '{"key":"AA=="}' })
  ).json()) as {
    header: { revision: string };
  };
  const revision = Number(range.header.revision);
  const res = await fetch(`${base}/compaction`, {
    method: 'POST',
    body: JSON.stringify({ revision: String(revision), physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
  return revision;
}
