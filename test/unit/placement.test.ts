import {
  placeWorkload,
  type PlacementCandidate,
  type PlacementRequest,
  type PlacementResult,
} from '../../src/runner/placement.ts';
import { runnerSelectorOf } from '../../src/runner/label-selector.ts';

const AGENTS = { name: 'agents', labels: { team: 'a' } };
const accepts = { names: ['agents'] };

const runners: PlacementCandidate[] = (
  [
    {
      name: 'e-org2',
      ready: true,
      organizationId: 'o2',
      labels: { region: 'eu', tier: 'gold' },
      capabilities: ['gpu', 'docker'],
    },
    {
      name: 'c-org1',
      ready: true,
      organizationId: 'o1',
      labels: { region: 'eu', tier: 'gold' },
      capabilities: ['gpu'],
    },
    { name: 'a-cluster', ready: true, labels: { region: 'eu' }, capabilities: ['docker'] },
    {
      name: 'd-org1-down',
      ready: false,
      organizationId: 'o1',
      labels: { region: 'eu' },
      capabilities: ['gpu', 'docker'],
    },
    {
      name: 'b-cluster-gpu',
      ready: true,
      labels: { region: 'us' },
      capabilities: ['docker', 'gpu'],
    },
  ] as Array<Omit<PlacementCandidate, 'accepts'>>
).map((r) => ({ ...r, accepts }));

const first = (): number => 0;
const place = (
  request: Partial<PlacementRequest>,
  list = runners,
  random = first,
): PlacementResult =>
  placeWorkload({ capabilities: [], namespace: AGENTS, ...request }, list, random);

/** Every runner a request can land on, by sweeping the random source over [0, 1). */
function reachable(request: Partial<PlacementRequest>, list = runners): string[] {
  const names = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const result = place(request, list, () => i / 100);
    if (result.placed) names.add(result.runner);
  }
  return [...names].sort();
}

describe('survivors of each filter', () => {
  test.each<[string, Partial<PlacementRequest>, string[]]>([
    [
      'org o1: own runners and cluster-scoped, never o2',
      { organizationId: 'o1' },
      ['a-cluster', 'b-cluster-gpu', 'c-org1'],
    ],
    ['org o2', { organizationId: 'o2' }, ['a-cluster', 'b-cluster-gpu', 'e-org2']],
    ['no org: cluster-scoped only', {}, ['a-cluster', 'b-cluster-gpu']],
    ['blank org counts as none', { organizationId: '' }, ['a-cluster', 'b-cluster-gpu']],
    ['unknown org: cluster-scoped only', { organizationId: 'o9' }, ['a-cluster', 'b-cluster-gpu']],
    [
      'gpu for o1 (not the unready o1 runner)',
      { organizationId: 'o1', capabilities: ['gpu'] },
      ['b-cluster-gpu', 'c-org1'],
    ],
    [
      'gpu and docker for o2',
      { organizationId: 'o2', capabilities: ['gpu', 'docker'] },
      ['b-cluster-gpu', 'e-org2'],
    ],
    [
      'gpu in us',
      { organizationId: 'o2', capabilities: ['gpu'], selector: { matchLabels: { region: 'us' } } },
      ['b-cluster-gpu'],
    ],
    [
      'labels must all match',
      { organizationId: 'o1', selector: { matchLabels: { region: 'eu', tier: 'gold' } } },
      ['c-org1'],
    ],
    [
      'org isolation although labels match',
      { organizationId: 'o2', selector: { matchLabels: { tier: 'gold' } } },
      ['e-org2'],
    ],
    ['duplicate capabilities', { capabilities: ['gpu', 'gpu'] }, ['b-cluster-gpu']],
    [
      'matchExpressions In',
      {
        organizationId: 'o1',
        selector: { matchExpressions: [{ key: 'region', operator: 'In', values: ['us', 'ap'] }] },
      },
      ['b-cluster-gpu'],
    ],
    [
      'matchExpressions NotIn (a Runner without the label passes)',
      {
        organizationId: 'o1',
        selector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gold'] }] },
      },
      ['a-cluster', 'b-cluster-gpu'],
    ],
    [
      'matchExpressions Exists',
      {
        organizationId: 'o1',
        selector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
      },
      ['c-org1'],
    ],
    [
      'matchExpressions DoesNotExist with matchLabels: both hold',
      {
        organizationId: 'o1',
        selector: {
          matchLabels: { region: 'eu' },
          matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }],
        },
      },
      ['a-cluster'],
    ],
    [
      'empty selector matches all',
      { organizationId: 'o1', selector: { matchLabels: {} } },
      ['a-cluster', 'b-cluster-gpu', 'c-org1'],
    ],
  ])('%s', (_name, request, expected) => {
    expect(reachable(request)).toEqual(expected);
  });
});

describe('the random pick', () => {
  const request: Partial<PlacementRequest> = { organizationId: 'o1' };

  test.each([
    [0, 'a-cluster'],
    [0.3333, 'a-cluster'],
    [0.34, 'b-cluster-gpu'],
    [0.67, 'c-org1'],
    [0.9999, 'c-org1'],
    [1, 'c-org1'],
  ])('random() = %p → %s', (value, expected) => {
    expect(place(request, runners, () => value)).toEqual({ placed: true, runner: expected });
  });

  test('is independent of the order of the runners', () => {
    const reversed = [...runners].reverse();
    for (const value of [0, 0.5, 0.9]) {
      expect(place(request, reversed, () => value)).toEqual(place(request, runners, () => value));
    }
  });

  test('draws once, only among survivors', () => {
    let draws = 0;
    const random = (): number => {
      draws++;
      return 0.99;
    };
    expect(place({ organizationId: 'o2', capabilities: ['gpu'] }, runners, random)).toEqual({
      placed: true,
      runner: 'e-org2',
    });
    expect(draws).toBe(1);
  });
});

describe('no candidate', () => {
  const down = runners.map((r) => ({ ...r, ready: false }));
  const onlyOrgs = runners.filter((r) => r.organizationId !== undefined);

  test.each<[string, Partial<PlacementRequest>, PlacementCandidate[], PlacementResult]>([
    [
      'no Runners at all',
      { organizationId: 'o1' },
      [],
      { placed: false, filter: 'ready', message: 'no Runner is Ready (0 Runners)' },
    ],
    [
      'none Ready',
      { organizationId: 'o1' },
      down,
      { placed: false, filter: 'ready', message: 'no Runner is Ready (5 Runners)' },
    ],
    [
      'scope, org workload',
      { organizationId: 'o3' },
      onlyOrgs,
      {
        placed: false,
        filter: 'scope',
        message:
          'no Runner serves organization "o3" or the whole cluster (2 candidates after namespace)',
      },
    ],
    [
      'scope, workload without org',
      {},
      onlyOrgs,
      {
        placed: false,
        filter: 'scope',
        message:
          'no Runner is cluster-scoped, as the workload has no organization (2 candidates after namespace)',
      },
    ],
    [
      'labels',
      { selector: { matchLabels: { tier: 'gold' } } },
      runners,
      {
        placed: false,
        filter: 'labels',
        message: 'no Runner matches labels {tier=gold} (2 candidates after scope)',
      },
    ],
    [
      'capabilities',
      {
        organizationId: 'o1',
        selector: { matchLabels: { region: 'eu' } },
        capabilities: ['gpu', 'docker'],
      },
      runners,
      {
        placed: false,
        filter: 'capabilities',
        message: 'no Runner offers capabilities [gpu, docker] (2 candidates after labels)',
      },
    ],
    [
      'capabilities with labels matching another org only',
      {
        organizationId: 'o1',
        selector: { matchLabels: { tier: 'gold' } },
        capabilities: ['docker'],
      },
      runners,
      {
        placed: false,
        filter: 'capabilities',
        message: 'no Runner offers capabilities [docker] (1 candidate after labels)',
      },
    ],
  ])('%s', (_name, request, list, expected) => {
    expect(place(request, list)).toEqual(expected);
  });
});

describe('runnerRef', () => {
  test.each<[string, Partial<PlacementRequest>, PlacementResult]>([
    [
      'own org runner',
      { organizationId: 'o1', runnerRef: 'c-org1' },
      { placed: true, runner: 'c-org1' },
    ],
    [
      'cluster runner for an org',
      { organizationId: 'o1', runnerRef: 'a-cluster' },
      { placed: true, runner: 'a-cluster' },
    ],
    [
      'cluster runner without org',
      { runnerRef: 'b-cluster-gpu', capabilities: ['gpu'] },
      { placed: true, runner: 'b-cluster-gpu' },
    ],
    [
      'not found',
      { organizationId: 'o1', runnerRef: 'nope' },
      { placed: false, filter: 'runnerRef', message: 'Runner "nope" not found' },
    ],
    [
      'not Ready',
      { organizationId: 'o1', runnerRef: 'd-org1-down' },
      { placed: false, filter: 'ready', message: 'Runner "d-org1-down" is not Ready' },
    ],
    [
      "another org's runner",
      { organizationId: 'o1', runnerRef: 'e-org2' },
      {
        placed: false,
        filter: 'scope',
        message: 'Runner "e-org2" serves organization "o2", not "o1"',
      },
    ],
    [
      'an org runner for a workload without org',
      { runnerRef: 'c-org1' },
      {
        placed: false,
        filter: 'scope',
        message: 'Runner "c-org1" serves organization "o1" and the workload has no organization',
      },
    ],
    [
      'missing capability',
      { organizationId: 'o1', runnerRef: 'a-cluster', capabilities: ['docker', 'gpu'] },
      {
        placed: false,
        filter: 'capabilities',
        message: 'Runner "a-cluster" does not offer capabilities [gpu]',
      },
    ],
    [
      'blank runnerRef means placement',
      { organizationId: 'o2', runnerRef: '', selector: { matchLabels: { tier: 'gold' } } },
      { placed: true, runner: 'e-org2' },
    ],
  ])('%s', (_name, request, expected) => {
    expect(place(request)).toEqual(expected);
  });

  test('does not draw', () => {
    const random = (): number => {
      throw new Error('random must not be called');
    };
    expect(place({ organizationId: 'o1', runnerRef: 'c-org1' }, runners, random)).toEqual({
      placed: true,
      runner: 'c-org1',
    });
  });
});

describe('runnerSelector as a LabelSelector', () => {
  test('the deprecated labels join matchLabels', () => {
    expect(runnerSelectorOf({ labels: { region: 'eu' }, matchLabels: { tier: 'gold' } })).toEqual({
      matchLabels: { region: 'eu', tier: 'gold' },
      matchExpressions: [],
    });
    expect(
      reachable({
        organizationId: 'o1',
        selector: runnerSelectorOf({ labels: { region: 'eu', tier: 'gold' } }),
      }),
    ).toEqual(['c-org1']);
  });

  test('a refusal names the selector in kubectl syntax', () => {
    expect(
      place({
        selector: {
          matchLabels: { region: 'eu' },
          matchExpressions: [
            { key: 'tier', operator: 'In', values: ['gold', 'silver'] },
            { key: 'legacy', operator: 'DoesNotExist' },
            { key: 'gpu', operator: 'Exists' },
            { key: 'zone', operator: 'NotIn', values: ['a'] },
          ],
        },
      }),
    ).toEqual({
      placed: false,
      filter: 'labels',
      message:
        'no Runner matches labels {region=eu, tier in (gold, silver), !legacy, gpu, zone notin (a)} (2 candidates after scope)',
    });
  });
});

describe('accepted namespaces (scope)', () => {
  const other = { name: 'other', labels: { 'agyn.io/organization-id': 'o1' } };
  const bySelector: PlacementCandidate = {
    name: 'f-by-selector',
    ready: true,
    accepts: { names: [], selector: { matchLabels: { 'agyn.io/organization-id': 'o1' } } },
    labels: {},
    capabilities: [],
  };

  test('a Runner takes only the namespaces it names or selects', () => {
    expect(reachable({ namespace: other }, [...runners, bySelector])).toEqual(['f-by-selector']);
    expect(reachable({ namespace: AGENTS }, [...runners, bySelector])).toEqual([
      'a-cluster',
      'b-cluster-gpu',
    ]);
    expect(place({ namespace: { name: 'nobody', labels: {} } })).toEqual({
      placed: false,
      filter: 'namespace',
      message: 'no Runner accepts namespace "nobody" (4 candidates after ready)',
    });
  });

  test('a runnerRef to a Runner that does not accept the namespace is refused', () => {
    expect(place({ namespace: other, runnerRef: 'a-cluster' })).toEqual({
      placed: false,
      filter: 'namespace',
      message: 'Runner "a-cluster" does not accept namespace "other"',
    });
  });

  test('acceptance comes before organization: an accepted namespace of another organization is still refused', () => {
    const orgRunner = { ...bySelector, name: 'g-org2', organizationId: 'o2' };
    expect(
      place({ namespace: other, organizationId: 'o1', runnerRef: 'g-org2' }, [orgRunner]),
    ).toEqual({
      placed: false,
      filter: 'scope',
      message: 'Runner "g-org2" serves organization "o2", not "o1"',
    });
  });
});
