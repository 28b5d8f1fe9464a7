/** `kubectl explain` has something to say at every level of both CRDs. */
import { describe, expect, it } from '@jest/globals';
import { agentWorkloadCrd, runnerCrd } from '../../src/api/crd.ts';

type Node = { description?: string; properties?: Record<string, Node>; items?: Node };

function undescribed(node: Node, path: string): string[] {
  const own = node.description?.trim() ? [] : [path];
  const props = Object.entries(node.properties ?? {}).flatMap(([k, v]) =>
    undescribed(v, `${path}.${k}`),
  );
  const items = Object.entries(node.items?.properties ?? {}).flatMap(([k, v]) =>
    undescribed(v, `${path}[].${k}`),
  );
  return [...own, ...props, ...items];
}

describe.each([
  ['AgentWorkload', agentWorkloadCrd],
  ['Runner', runnerCrd],
])('the %s CRD', (_kind, crd) => {
  it('describes every field at every level', () => {
    const schema = (crd() as { spec: { versions: Array<{ schema: { openAPIV3Schema: Node } }> } })
      .spec.versions[0]!.schema.openAPIV3Schema;
    // The API server forbids anything on metadata but its type.
    expect(undescribed(schema, '')).toEqual(['.metadata']);
  });
});
