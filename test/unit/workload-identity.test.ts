import type { AgentWorkload } from '../../src/api/agentworkload.ts';
import { workloadIdOf, claimKeys } from '../../src/workload/identity.ts';

const ID = '11111111-2222-4333-8444-555555555555';

function aw(
  name: string,
  created: string,
  workloadId?: string,
  recorded?: string,
  namespace = 'w',
): AgentWorkload {
  return {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name, namespace, uid: `uid-${name}`, creationTimestamp: created },
    spec: { workloadId, main: { name: 'm', image: 'i' } } as AgentWorkload['spec'],
    status: recorded === undefined ? undefined : { workloadId: recorded },
  };
}

function idOf(target: AgentWorkload, all: AgentWorkload[]): string {
  return workloadIdOf(target, (id) => all.filter((w) => claimKeys(w).includes(id)));
}

describe('workloadIdOf', () => {
  it('uses spec.workloadId when no one else holds it, else the uid', () => {
    const alone = aw('a', '2030-01-01T00:00:00Z', ID);
    expect(idOf(alone, [alone])).toBe(ID);
    expect(idOf(aw('b', '2030-01-01T00:00:00Z'), [])).toBe('uid-b');
  });

  it('gives a later duplicate its own uid, whether the first recorded the id or not yet', () => {
    const victim = aw('victim', '2030-01-01T00:00:00Z', ID);
    const thief = aw('thief', '2030-01-01T00:00:05Z', ID);
    expect(idOf(thief, [victim, thief])).toBe('uid-thief');
    expect(idOf(victim, [victim, thief])).toBe(ID);
    const recorded = aw('victim', '2030-01-01T00:00:09Z', ID, ID);
    const earlyThief = aw('thief', '2030-01-01T00:00:00Z', ID);
    expect(idOf(earlyThief, [recorded, earlyThief])).toBe('uid-thief');
  });

  it("refuses another workload's uid, and ignores other namespaces", () => {
    const victim = aw('victim', '2030-01-01T00:00:00Z');
    const thief = aw('thief', '2030-01-01T00:00:05Z', 'uid-victim');
    expect(idOf(thief, [victim, thief])).toBe('uid-thief');
    const elsewhere = aw('x', '2029-01-01T00:00:00Z', ID, ID, 'other');
    const here = aw('y', '2030-01-01T00:00:00Z', ID);
    expect(idOf(here, [elsewhere, here])).toBe(ID);
  });

  it('keeps the id it recorded', () => {
    const thief = aw('thief', '2030-01-01T00:00:05Z', ID, 'uid-thief');
    expect(idOf(thief, [thief])).toBe('uid-thief');
  });
});

describe('workloadIdOf without claimants (the gRPC shim)', () => {
  it('agrees with the controller once it recorded the id, and takes spec.workloadId before', () => {
    expect(workloadIdOf(aw('a', '2030-01-01T00:00:00Z', ID))).toBe(ID);
    expect(workloadIdOf(aw('a', '2030-01-01T00:00:00Z', ID, 'uid-a'))).toBe('uid-a');
    expect(workloadIdOf(aw('b', '2030-01-01T00:00:00Z'))).toBe('uid-b');
  });

  it('does not believe a status.workloadId that is neither its uid nor its spec.workloadId', () => {
    const forged = aw('a', '2030-01-01T00:00:00Z', ID, 'someone-elses-id');
    expect(workloadIdOf(forged)).toBe(ID);
    expect(idOf(forged, [forged])).toBe(ID);
  });
});
