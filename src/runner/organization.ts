/**
 * A workload's organization is its namespace's: the Namespace label below, which only those
 * who may patch Namespaces (cluster admins) can set. `spec.organizationId` may repeat it, never
 * choose another.
 */
export const ORGANIZATION_LABEL = 'agyn.io/organization-id';

export type WorkloadOrganization =
  | { ok: true; organizationId?: string }
  | { ok: false; field: 'spec.organizationId'; message: string };

export function namespaceOrganization(labels: Record<string, string>): string | undefined {
  const org = labels[ORGANIZATION_LABEL]?.trim();
  return org ? org : undefined;
}

/** The organization of a workload in `namespace`; a spec that claims another one is refused. */
export function workloadOrganization(
  specOrganizationId: string | undefined,
  namespace: { name: string; labels: Record<string, string> },
): WorkloadOrganization {
  const derived = namespaceOrganization(namespace.labels);
  const claimed = specOrganizationId?.trim() ? specOrganizationId.trim() : undefined;
  if (claimed === undefined || claimed === derived) return { ok: true, organizationId: derived };
  const actual =
    derived === undefined
      ? `namespace "${namespace.name}" belongs to no organization`
      : `namespace "${namespace.name}" belongs to organization "${derived}"`;
  return {
    ok: false,
    field: 'spec.organizationId',
    message: `organization "${claimed}" is not the workload's: ${actual} (label ${ORGANIZATION_LABEL})`,
  };
}
