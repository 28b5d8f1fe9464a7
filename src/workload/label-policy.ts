import { LABELS } from '../api/common.ts';

/**
 * Label prefixes a workload may not set on its Pod or claims: Kubernetes' own
 * (kubernetes.io, k8s.io, with their subdomains) and the operator's (agyn.io, agyn.dev).
 * Those are what Services, NetworkPolicies, Pod Security and the operator select on; a
 * workload claiming them could pose as something else. Unprefixed keys (the orchestrator's
 * agent-id, thread-id, workload_key ...) and other prefixes pass.
 */
const RESERVED_LABEL_DOMAINS = ['kubernetes.io', 'k8s.io'];
const RESERVED_LABEL_PREFIXES = ['agyn.io', 'agyn.dev'];

const FIXED = new Set<string>(Object.values(LABELS));

/** Why a user label key is refused, or undefined when it may reach the object. */
export function reservedLabel(key: string): string | undefined {
  // The fixed labels are overwritten by the operator's values, so naming them is harmless.
  if (FIXED.has(key)) return undefined;
  const slash = key.indexOf('/');
  if (slash < 0) return undefined;
  const prefix = key.slice(0, slash).toLowerCase();
  const domain =
    RESERVED_LABEL_PREFIXES.find((p) => prefix === p) ??
    RESERVED_LABEL_DOMAINS.find((d) => prefix === d || prefix.endsWith(`.${d}`));
  return domain === undefined
    ? undefined
    : `label prefix ${JSON.stringify(prefix)} is reserved (${domain})`;
}
