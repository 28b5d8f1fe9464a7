/** zod refuses what the CRD's CEL rules refuse, with the same entry-naming messages. */
import { describe, expect, it } from '@jest/globals';
import { agentWorkloadSpecSchema } from '../../src/api/agentworkload.ts';

const main = { name: 'main', image: 'example.invalid/agent:1' };
const issues = (spec: object): string[] => {
  const r = agentWorkloadSpecSchema.safeParse(spec);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('AgentWorkload spec rules (zod twins of the CEL rules)', () => {
  it.each([
    [
      'a sidecar named like main',
      {
        main,
        sidecars: [
          { name: 'x', image: 'i' },
          { name: 'main', image: 'i' },
        ],
      },
      'sidecars: spec.sidecars[1].name: duplicate container name "main"',
    ],
    [
      'two sidecars with one name',
      {
        main,
        sidecars: [
          { name: 'a', image: 'i' },
          { name: 'a', image: 'i' },
        ],
      },
      'sidecars.1.name: duplicate container name "a"',
    ],
    [
      'an init container named like a sidecar',
      { main, sidecars: [{ name: 'a', image: 'i' }], initContainers: [{ name: 'a', image: 'i' }] },
      'initContainers: spec.initContainers[0].name: duplicate container name "a"',
    ],
    [
      'a duplicate volume',
      {
        main,
        volumes: [
          { name: 'v', kind: 'Ephemeral' },
          { name: 'v', kind: 'Ephemeral' },
        ],
      },
      'volumes.1.name: duplicate volume name "v"',
    ],
    [
      'a sidecar mount of an undeclared volume',
      {
        main,
        volumes: [{ name: 'v', kind: 'Ephemeral' }],
        sidecars: [
          { name: 'a', image: 'i' },
          {
            name: 'b',
            image: 'i',
            mounts: [
              { volume: 'v', mountPath: '/v' },
              { volume: 'g', mountPath: '/g' },
            ],
          },
        ],
      },
      'sidecars: spec.sidecars[1].mounts[1].volume: volume "g" is not declared in spec.volumes',
    ],
    [
      'runnerRef with runnerSelector',
      { main, runnerRef: { name: 'r' }, runnerSelector: { matchLabels: { a: 'b' } } },
      'runnerSelector: runnerRef and runnerSelector are mutually exclusive',
    ],
  ])('%s', (_name, spec, message) => {
    expect(issues(spec)).toContain(message);
  });

  it('accepts a standard LabelSelector and the deprecated labels', () => {
    expect(
      issues({
        main,
        runnerSelector: {
          matchLabels: { region: 'eu' },
          matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold'] }],
        },
      }),
    ).toEqual([]);
    expect(issues({ main, runnerSelector: { labels: { region: 'eu' } } })).toEqual([]);
  });
});
