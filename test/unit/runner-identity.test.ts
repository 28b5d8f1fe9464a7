import { describe, expect, it } from '@jest/globals';
import { runnerSpecSchema, type RunnerSpecInput } from '../../src/api/runner.ts';
import {
  catalogDigest,
  catalogOf,
  identitySecretName,
  runnerIdOf,
  scopeOf,
  tokenDigest,
} from '../../src/runner/identity.ts';

function spec(input: Partial<RunnerSpecInput> = {}) {
  return runnerSpecSchema.parse({
    gateway: { url: 'grpc://gw:1' },
    serviceToken: { secretRef: { name: 't' } },
    workloadNamespace: 'agents',
    ...input,
  });
}

describe('tokenDigest', () => {
  it('is a hex sha256 that depends on the token and the Runner, and never contains the token', () => {
    const d = tokenDigest('uid-1', 'sekrit-token');
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(d).not.toContain('sekrit');
    expect(tokenDigest('uid-1', 'sekrit-token')).toBe(d);
    expect(tokenDigest('uid-2', 'sekrit-token')).not.toBe(d);
    expect(tokenDigest('uid-1', 'sekrit-token2')).not.toBe(d);
  });
});

describe('catalogOf', () => {
  it('reports docker when an implementation is configured, once', () => {
    expect(
      catalogOf(spec({ capabilityImplementations: { docker: 'rootless' } })).capabilities,
    ).toEqual(['docker']);
    expect(
      catalogOf(
        spec({
          capabilities: ['gpu', 'docker', 'gpu'],
          capabilityImplementations: { docker: 'kata-qemu' },
        }),
      ).capabilities,
    ).toEqual(['gpu', 'docker']);
    expect(catalogOf(spec({ capabilities: ['gpu'] })).capabilities).toEqual(['gpu']);
  });

  it('reports storage classes by catalog name, without the Kubernetes class', () => {
    const c = catalogOf(
      spec({
        catalog: { storageClasses: [{ name: 'fast', storageClassName: 'ssd', default: true }] },
      }),
    );
    expect(c.storageClasses).toEqual([{ name: 'fast', default: true, deprecated: false }]);
  });
});

describe('catalogDigest', () => {
  const base = {
    catalog: {
      flavors: [{ name: 'small', resources: { requests: { cpu: '1', memory: '1Gi' } } }],
      storageClasses: [{ name: 'fast', storageClassName: 'ssd' }],
    },
    capabilities: ['gpu'],
  };

  it('is stable and ignores key order and fields the report does not carry', () => {
    const d = catalogDigest(catalogOf(spec(base)));
    const reordered = {
      capabilities: ['gpu'],
      catalog: {
        storageClasses: [{ storageClassName: 'other', name: 'fast' }],
        flavors: [{ resources: { requests: { memory: '1Gi', cpu: '1' } }, name: 'small' }],
      },
    };
    expect(catalogDigest(catalogOf(spec(reordered)))).toBe(d);
    expect(
      catalogDigest(catalogOf(spec({ ...base, labels: { a: 'b' }, pullSecrets: [{ name: 'p' }] }))),
    ).toBe(d);
  });

  it('changes with anything the report carries', () => {
    const d = catalogDigest(catalogOf(spec(base)));
    const variants: Array<Partial<RunnerSpecInput>> = [
      { ...base, capabilities: ['gpu', 'fuse'] },
      { ...base, capabilityImplementations: { docker: 'rootless' } },
      {
        ...base,
        catalog: {
          ...base.catalog,
          flavors: [{ name: 'small', resources: { requests: { cpu: '2' } } }],
        },
      },
      { ...base, catalog: { ...base.catalog, flavors: [{ name: 'small', deprecated: true }] } },
      { ...base, catalog: { ...base.catalog, storageClasses: [{ name: 'fast', default: true }] } },
      { ...base, catalog: { flavors: base.catalog.flavors, storageClasses: [] } },
    ];
    const digests = variants.map((v) => catalogDigest(catalogOf(spec(v))));
    for (const other of digests) expect(other).not.toBe(d);
    expect(new Set(digests).size).toBe(digests.length);
  });
});

describe('runnerIdOf', () => {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  it.each([
    ['runner_id in the identity', json({ runner_id: 'r-1', runnerId: 'r-2' }), 'r-1'],
    ['runnerId in the identity', json({ runnerId: 'r-2' }), 'r-2'],
    ['no runner id', json({ ztAPI: 'https://z' }), 'ident-9'],
    ['a blank runner id', json({ runner_id: '  ' }), 'ident-9'],
    ['a non-string runner id', json({ runner_id: 7 }), 'ident-9'],
    ['a JSON array', json(['r']), 'ident-9'],
    ['not JSON', Buffer.from('-----BEGIN CERT'), 'ident-9'],
  ])('%s', (_what, identity, expected) => {
    expect(runnerIdOf(identity, 'ident-9')).toBe(expected);
  });
});

describe('names and scope', () => {
  it('names the identity Secret after the Runner', () => {
    expect(identitySecretName('eu-1')).toBe('eu-1-identity');
  });
  it('derives the scope from organizationId', () => {
    expect(scopeOf({})).toBe('cluster');
    expect(scopeOf({ organizationId: ' ' })).toBe('cluster');
    expect(scopeOf({ organizationId: 'org-7' })).toBe('organization:org-7');
  });
});
