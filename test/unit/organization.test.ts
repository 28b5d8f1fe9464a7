import { workloadOrganization } from '../../src/runner/organization.ts';

const ns = (labels: Record<string, string>) => ({ name: 'team-a', labels });
const ORG_A = { 'agyn.io/organization-id': 'org-a' };

describe('a workload’s organization is its namespace’s', () => {
  test.each<[string, string | undefined, Record<string, string>, string | undefined]>([
    ['from the namespace label', undefined, ORG_A, 'org-a'],
    ['the spec may repeat it', 'org-a', ORG_A, 'org-a'],
    ['a blank spec (proto3 default) is none', '  ', ORG_A, 'org-a'],
    ['no label, no spec: no organization', undefined, {}, undefined],
    ['a blank label is none', '', { 'agyn.io/organization-id': ' ' }, undefined],
  ])('%s', (_name, spec, labels, expected) => {
    expect(workloadOrganization(spec, ns(labels))).toEqual({ ok: true, organizationId: expected });
  });

  test('a spec naming another organization is refused, naming the field', () => {
    expect(workloadOrganization('org-b', ns(ORG_A))).toEqual({
      ok: false,
      field: 'spec.organizationId',
      message:
        'organization "org-b" is not the workload\'s: namespace "team-a" belongs to organization "org-a" (label agyn.io/organization-id)',
    });
    expect(workloadOrganization('org-b', ns({}))).toEqual({
      ok: false,
      field: 'spec.organizationId',
      message:
        'organization "org-b" is not the workload\'s: namespace "team-a" belongs to no organization (label agyn.io/organization-id)',
    });
  });
});
