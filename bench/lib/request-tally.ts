/** The benchmarks' per-resource tally of an operator process's API requests. */
import type { KubeClient } from '../../src/kube/client.ts';

type Request = KubeClient['request'];

/**
 * Counts every `request` of `target` (a KubeClient, or KubeClient.prototype to count the
 * requests of every client in the process) by verb and resource, into the returned map.
 */
export function tallyRequests(target: { request: Request }): Map<string, number> {
  const byResource = new Map<string, number>();
  const original = target.request;
  target.request = function counted<T>(
    this: KubeClient,
    method: string,
    path: string,
    opts?: Parameters<Request>[2],
  ): Promise<T> {
    const key = `${method} ${resourceOf(path)}`;
    byResource.set(key, (byResource.get(key) ?? 0) + 1);
    return original.call(this, method, path, opts) as Promise<T>;
  };
  return byResource;
}

/** `/api/v1/namespaces/ns/pods/name/status` → `pods/status`; collection or object alike. */
export function resourceOf(path: string): string {
  const parts = path.split('?')[0]?.split('/').filter(Boolean) ?? [];
  const start = parts[0] === 'api' ? 2 : 3;
  let rest = parts.slice(start);
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const plural = rest[0] ?? '?';
  const sub = rest[2];
  return sub ? `${plural}/${sub}` : plural;
}

export function snapshot(counts: Map<string, number>): Map<string, number> {
  return new Map(counts);
}

export function diff(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function writesIn(counts: Map<string, number>): number {
  let n = 0;
  for (const [k, v] of counts) if (WRITE_VERBS.has(k.split(' ')[0] ?? '')) n += v;
  return n;
}

export function sortedEntries(counts: Map<string, number>): Array<[string, number]> {
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
