import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { Informer, type InformerControl } from '../../src/kube/informer.ts';
import { CONFIGMAPS } from '../../src/kube/resources.ts';
import {
  compactEtcd,
  createTestNamespace,
  eventually,
  testLogger,
  type TestNamespace,
} from '../support/kube.ts';

type ConfigMap = KubeObject & { data?: Record<string, string> };
const client = KubeClient.fromEnvironment(process.env.KUBECONFIG);
const configMaps = client.resource<ConfigMap>(CONFIGMAPS);
let ns: TestNamespace;

beforeAll(async () => {
  ns = await createTestNamespace(client, 'inf');
});
afterAll(async () => {
  await ns.cleanup();
  client.close();
});

const cm = (name: string, value: string): ConfigMap =>
  ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: value } }) as ConfigMap;

test('lists, then follows adds, updates and deletes through the watch', async () => {
  await configMaps.create(ns.name, cm('before', '1'));
  const informer = new Informer(configMaps, { namespace: ns.name, logger: testLogger });
  const seen: string[] = [];
  informer.addHandler({
    onAdd: (o, initial) => seen.push(`add:${o.metadata?.name}:${initial}`),
    onUpdate: (_o, n) => seen.push(`update:${n.metadata?.name}:${n.data?.v}`),
    onDelete: (o) => seen.push(`delete:${o.metadata?.name}`),
  });
  informer.start();
  await informer.waitForSync();
  await configMaps.create(ns.name, cm('after', '1'));
  await configMaps.mergePatch(ns.name, 'after', { data: { v: '2' } });
  await configMaps.delete(ns.name, 'before');
  await eventually(() => seen.includes('delete:before'));
  expect(seen).toEqual(
    expect.arrayContaining([
      'add:before:true',
      'add:after:false',
      'update:after:2',
      'delete:before',
    ]),
  );
  expect(informer.get(ns.name, 'after')?.metadata?.managedFields).toBeUndefined();
  await informer.stop();
});

test('a watch expired by etcd compaction (410 Gone) relists and keeps going', async () => {
  const informer = new Informer(configMaps, { namespace: ns.name, logger: testLogger });
  informer.start();
  await informer.waitForSync();
  const listsBefore = informer.stats.lists;
  await informer.stop();
  await configMaps.create(ns.name, cm('while-away', 'w'));
  await configMaps.mergePatch(ns.name, 'while-away', { data: { v: 'w2' } });
  await compactEtcd();
  informer.start();
  await eventually(() => informer.stats.relistsOnGone > 0, { what: 'a relist after 410' });
  expect(informer.stats.lists).toBeGreaterThan(listsBefore);
  await configMaps.create(ns.name, cm('after-gone', 'x'));
  await eventually(() => informer.get(ns.name, 'after-gone'), { what: 'the watch to resume' });
  expect(informer.get(ns.name, 'while-away')).toBeDefined();
  await informer.stop();
});

test('a silent watch is presumed dead and restarted, and events still arrive', async () => {
  const informer = new Informer(configMaps, {
    namespace: ns.name,
    logger: testLogger,
    idleTimeoutMs: 300,
  });
  informer.start();
  await informer.waitForSync();
  await eventually(() => informer.stats.idleRestarts >= 2, { what: 'idle restarts' });
  await configMaps.create(ns.name, cm('after-idle', 'y'));
  await eventually(() => informer.get(ns.name, 'after-idle'), { what: 'events after the restart' });
  await informer.stop();
});

test('objects deleted while the informer was not watching are removed on relist', async () => {
  let control: InformerControl | undefined;
  const informer = new Informer(configMaps, {
    namespace: ns.name,
    logger: testLogger,
    control: (c) => (control = c),
  });
  const deleted: string[] = [];
  informer.addHandler({ onDelete: (o) => deleted.push(o.metadata?.name ?? '') });
  await configMaps.create(ns.name, cm('ghost', 'z'));
  informer.start();
  await informer.waitForSync();
  expect(informer.get(ns.name, 'ghost')).toBeDefined();
  await informer.stop();
  await configMaps.delete(ns.name, 'ghost');
  if (!control) throw new Error('the informer handed out no control');
  control.restartWatch('1');
  informer.start();
  await eventually(() => deleted.includes('ghost'), { what: 'the relist to notice the deletion' });
  expect(informer.get(ns.name, 'ghost')).toBeUndefined();
  await informer.stop();
});

test('a throwing handler neither loses the event nor stops the informer', async () => {
  const informer = new Informer(configMaps, { namespace: ns.name, logger: testLogger });
  const seen: string[] = [];
  let throwOnce = true;
  informer.addHandler({
    onAdd: (o) => {
      if (o.metadata?.name === 'boom' && throwOnce) {
        throwOnce = false;
        throw new Error('handler failure');
      }
    },
  });
  informer.addHandler({
    onAdd: (o) => seen.push(`add:${o.metadata?.name}`),
    onUpdate: (_o, n) => seen.push(`update:${n.metadata?.name}:${n.data?.v}`),
  });
  informer.start();
  await informer.waitForSync();
  const created = await configMaps.create(ns.name, cm('boom', '1'));
  await eventually(() => informer.get(ns.name, 'boom'), { what: 'the add in the store' });
  await configMaps.mergePatch(ns.name, 'boom', { data: { v: '2' } });
  await eventually(() => seen.includes('update:boom:2'), { what: 'the update after the throw' });
  expect(seen).toContain('add:boom');
  expect(informer.stats.handlerErrors).toBe(1);
  expect(informer.stats.watchRestarts).toBe(0);
  expect(Number(informer.lastResourceVersion)).toBeGreaterThan(
    Number(created.metadata?.resourceVersion),
  );
  await informer.stop();
});
