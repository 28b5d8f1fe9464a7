/**
 * The typed CRUD path through the project's KubeClient and through kubernetes-fluent-client
 * (KFC), same requests against the same API server, interleaved rounds, plus the RSS at rest
 * of a process that imports each client and makes one request (issue 18 item 5).
 *
 * KFC is not a dependency: install it apart and name its directory, e.g.
 *   mkdir /tmp/kfc && cd /tmp/kfc && npm i kubernetes-fluent-client@3.11.11
 *   KUBECONFIG=... npm run bench:client -- /tmp/kfc/node_modules/kubernetes-fluent-client [rounds] [items]
 * KFC reads only $KUBECONFIG (loadFromDefault on every request), so KUBECONFIG must be set.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KubeClient, type KubeObject } from '../src/kube/client.ts';
import { isNotFound } from '../src/kube/errors.ts';
import { CRDS, NAMESPACES, type ResourceType } from '../src/kube/resources.ts';
import { runPool } from './lib/pool.ts';

const GROUP = 'bench.k8s-runner.test';
const ITEMS: ResourceType = {
  group: GROUP,
  version: 'v1',
  plural: 'crudbenches',
  kind: 'CrudBench',
  namespaced: true,
};
const NS = 'client-crud-bench';
const FIELD_MANAGER = 'k8s-runner';
const CONCURRENCY = 8;
const RUN = Date.now().toString(36);

interface Crud {
  name: string;
  /** create, get, list by label, apply, JSON patch, patch status, delete: seven requests. */
  item(name: string): Promise<void>;
}

const body = (name: string): KubeObject & Record<string, unknown> => ({
  apiVersion: `${GROUP}/v1`,
  kind: 'CrudBench',
  metadata: { name, namespace: NS, labels: { bench: 'crud' } },
  spec: { n: 1 },
});

function ours(kube: KubeClient): Crud {
  const items = kube.resource<KubeObject & { spec?: unknown }>(ITEMS);
  return {
    name: 'KubeClient',
    async item(name) {
      await items.create(NS, body(name));
      await items.get(NS, name);
      await items.list(NS, { labelSelector: 'bench=crud', limit: 5 });
      await items.apply(
        NS,
        name,
        { ...body(name), spec: { n: 2 } },
        {
          fieldManager: FIELD_MANAGER,
          force: true,
        },
      );
      await items.jsonPatch(NS, name, [{ op: 'replace', path: '/spec/n', value: 3 }]);
      await items.mergePatch(NS, name, { status: { seen: 1 } }, 'status');
      await items.delete(NS, name);
    },
  };
}

interface KfcQuery {
  Create(obj: unknown): Promise<unknown>;
  Get(name?: string): Promise<unknown>;
  Apply(obj: unknown, cfg: { force: boolean }): Promise<unknown>;
  Patch(ops: unknown[]): Promise<unknown>;
  PatchStatus(obj: unknown): Promise<unknown>;
  Delete(name: string): Promise<void>;
}

interface KfcModule {
  K8s(model: unknown, filters: Record<string, unknown>): KfcQuery;
  GenericKind: unknown;
}

function kfc(mod: KfcModule): Crud {
  const kindOverride = { group: GROUP, version: 'v1', kind: 'CrudBench', plural: 'crudbenches' };
  const k = (filters: Record<string, unknown> = {}) =>
    mod.K8s(mod.GenericKind, { kindOverride, ...filters });
  return {
    name: 'KFC',
    async item(name) {
      await k().Create(body(name));
      await k({ namespace: NS }).Get(name);
      await k({ namespace: NS, labels: { bench: 'crud' } }).Get();
      // KFC's Apply always sends fieldManager=pepr (it cannot take the operator's own).
      await k().Apply({ ...body(name), spec: { n: 2 } }, { force: true });
      await k({ namespace: NS, name }).Patch([{ op: 'replace', path: '/spec/n', value: 3 }]);
      await k().PatchStatus({ ...body(name), status: { seen: 1 } });
      await k({ namespace: NS }).Delete(name);
    },
  };
}

async function setUp(kube: KubeClient): Promise<void> {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `crudbenches.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { plural: 'crudbenches', singular: 'crudbench', kind: 'CrudBench' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          },
        },
      ],
    },
  };
  await kube.resource(CRDS).apply(undefined, crd.metadata.name, crd, {
    fieldManager: FIELD_MANAGER,
    force: true,
  });
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } };
  await kube.resource(NAMESPACES).apply(undefined, NS, ns, { fieldManager: FIELD_MANAGER });
  for (let i = 0; ; i++) {
    try {
      await kube.resource(ITEMS).list(NS, { limit: 1 });
      return;
    } catch (err) {
      if (!isNotFound(err) || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function batch(crud: Crud, round: number, items: number): Promise<number> {
  const start = performance.now();
  const { errors, firstErrors } = await runPool(items, CONCURRENCY, (i) =>
    crud.item(`${crud.name.toLowerCase()}-${RUN}-${round}-${i}`),
  );
  if (errors > 0) throw new Error(`${crud.name}: ${errors} failed: ${firstErrors.join('; ')}`);
  return (items * 7) / ((performance.now() - start) / 1000);
}

/** A child process: imports one client, makes one request, then reports its RSS at rest. */
async function rssChild(which: string, kfcDir: string): Promise<void> {
  if (which === 'KFC') {
    const mod = (await import(kfcDir + '/dist/index.js')) as KfcModule;
    const kindOverride = { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces' };
    await mod.K8s(mod.GenericKind, { kindOverride }).Get('default');
  } else if (which === 'KubeClient') {
    const kube = await KubeClient.connect(process.env.KUBECONFIG);
    await kube.resource(NAMESPACES).get(undefined, 'default');
  }
  await new Promise((r) => setTimeout(r, 500));
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 500));
  process.stdout.write(`${process.memoryUsage().rss}\n`);
  process.exit(0);
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const [kfcDir, roundsArg, itemsArg, child] = process.argv.slice(2);
  if (!kfcDir || !process.env.KUBECONFIG)
    throw new Error('usage: KUBECONFIG=... client-crud KFC_DIR [rounds] [items]');
  if (child) return rssChild(child, kfcDir);
  const rounds = Number(roundsArg ?? 6);
  const items = Number(itemsArg ?? 60);
  const kube = await KubeClient.connect(process.env.KUBECONFIG, { qps: 1e6, burst: 1e6 });
  await setUp(kube);
  const clients = [ours(kube), kfc((await import(kfcDir + '/dist/index.js')) as KfcModule)];
  await batch(clients[0]!, -1, 10);
  await batch(clients[1]!, -1, 10);
  const rates: Record<string, number[]> = { KubeClient: [], KFC: [] };
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? clients : [...clients].reverse();
    const got: Record<string, number> = {};
    for (const c of order) got[c.name] = await batch(c, r, items);
    rates.KubeClient!.push(got.KubeClient!);
    rates.KFC!.push(got.KFC!);
    ratios.push(got.KFC! / got.KubeClient!);
    process.stderr.write(
      `round ${r}: KubeClient ${got.KubeClient!.toFixed(0)} req/s, KFC ${got.KFC!.toFixed(0)} req/s\n`,
    );
  }
  kube.close();
  const self = fileURLToPath(import.meta.url);
  const rss: Record<string, number[]> = { none: [], KubeClient: [], KFC: [] };
  for (let i = 0; i < 3; i++) {
    for (const which of Object.keys(rss)) {
      const out = execFileSync(process.execPath, ['--expose-gc', self, kfcDir, '0', '0', which], {
        encoding: 'utf8',
        env: process.env,
      });
      rss[which]!.push(Number(out.trim()) / 2 ** 20);
    }
  }
  const report = {
    concurrency: CONCURRENCY,
    rounds,
    requestsPerRound: items * 7,
    medianReqPerSec: { KubeClient: median(rates.KubeClient!), KFC: median(rates.KFC!) },
    medianRatioKfcToKubeClient: median(ratios),
    ratios,
    rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, median(v)])),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
