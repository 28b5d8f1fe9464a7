import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload } from '../api/agentworkload.ts';
import { LABELS } from '../api/common.ts';

type Secret = ISecret;

/** A Secret the workload's spec references, with the field that names it. */
export interface SecretRef {
  name: string;
  field: string;
}

export function secretRefsOf(workload: AgentWorkload): SecretRef[] {
  const refs: SecretRef[] = [];
  const pull = workload.spec.imagePullSecretRef?.name;
  if (pull) refs.push({ name: pull, field: 'spec.imagePullSecretRef.name' });
  const files = workload.spec.inlineFiles?.secretRef.name;
  if (files) refs.push({ name: files, field: 'spec.inlineFiles.secretRef.name' });
  return refs;
}

/**
 * Whether a Secret was made for this workload: it carries the workload's id
 * (agyn.io/workload-id, as the gRPC shim labels its Secrets) or its name
 * (agyn.io/workload-name). Any other Secret of the namespace is out of its reach.
 */
export function madeFor(secret: Secret, workload: AgentWorkload, workloadId: string): boolean {
  const labels = secret.metadata?.labels ?? {};
  return (
    (workloadId !== '' && labels[LABELS.workloadId] === workloadId) ||
    labels[LABELS.workloadName] === workload.metadata.name
  );
}

export type SecretAccess =
  { ok: true } | { ok: false; final: boolean; field: string; message: string };

/**
 * Checks every Secret the spec references: `read` returns the Secret (from a cache or the
 * API) or undefined when it does not exist. A missing Secret is waited for (not final); one
 * made for someone else is refused (final).
 */
export async function checkSecretAccess(
  workload: AgentWorkload,
  workloadId: string,
  read: (name: string) => Promise<Secret | undefined>,
): Promise<SecretAccess> {
  for (const ref of secretRefsOf(workload)) {
    const secret = await read(ref.name);
    if (!secret) {
      return {
        ok: false,
        final: false,
        field: ref.field,
        message: `waiting for Secret ${JSON.stringify(ref.name)} (${ref.field})`,
      };
    }
    if (!madeFor(secret, workload, workloadId)) {
      return {
        ok: false,
        final: true,
        field: ref.field,
        message: `secret_not_allowed: Secret ${JSON.stringify(ref.name)} is not labelled ${LABELS.workloadId}=${workloadId} or ${LABELS.workloadName}=${workload.metadata.name} (${ref.field})`,
      };
    }
  }
  return { ok: true };
}
