import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import { InformerCache } from '../../src/kube/cache.ts';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { SECRETS } from '../../src/kube/resources.ts';
import { OperatorCaches } from '../../src/caches.ts';

type Secret = ISecret & KubeObject;

// Nothing here starts an informer: no request is made to this address.
function client(): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'http://127.0.0.1:9', skipTLSVerify: true }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return new KubeClient(kc);
}

const logger = pino({ level: 'silent' });
const byName = (s: Secret): string[] => [s.metadata?.name ?? ''];
const dropData = (s: Secret): Secret => ({ ...s, data: undefined });

describe('InformerCache', () => {
  it('gives every request of one declaration the same informer', () => {
    const cache = new InformerCache(client(), logger);
    const declaration = { resource: SECRETS, namespace: 'a', indexes: { byName } };
    const first = cache.informer<Secret>(declaration);
    expect(cache.informer<Secret>({ ...declaration })).toBe(first);
    expect(cache.informer<Secret>({ ...declaration, namespace: 'b' })).not.toBe(first);
  });

  it('keeps one informer per selector: label- and field-selected views of a kind are distinct', () => {
    const cache = new InformerCache(client(), logger);
    const labelled = cache.informer<Secret>({
      resource: SECRETS,
      namespace: 'a',
      labelSelector: 'x=1',
    });
    const named = cache.informer<Secret>({
      resource: SECRETS,
      namespace: 'a',
      fieldSelector: 'metadata.name=s',
    });
    expect(named).not.toBe(labelled);
    expect(
      cache.informer<Secret>({ resource: SECRETS, namespace: 'a', labelSelector: 'x=1' }),
    ).toBe(labelled);
  });

  it('refuses a second declaration that caches the same objects another way', () => {
    const cache = new InformerCache(client(), logger);
    cache.informer<Secret>({ resource: SECRETS, namespace: 'a', transform: dropData });
    expect(() => cache.informer<Secret>({ resource: SECRETS, namespace: 'a' })).toThrow(
      /transforms differ/,
    );
    expect(() =>
      cache.informer<Secret>({
        resource: SECRETS,
        namespace: 'a',
        transform: dropData,
        indexes: { byName },
      }),
    ).toThrow(/indexes \(byName\) differ/);
  });

  it("serves the operator's controllers and shim from one set of informers", () => {
    const caches = new OperatorCaches(client(), logger, { operator: 'op', workload: 'wl' });
    expect(caches.shim.workloads).toBe(caches.workload.workloads);
    expect(caches.shim.pods).toBe(caches.workload.pods);
    expect(caches.operatorSecrets).toBe(caches.runner.secrets);
    expect(caches.workload.secrets).not.toBe(caches.runner.secrets);
  });
});
