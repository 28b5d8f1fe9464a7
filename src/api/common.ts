import { z } from 'zod';

export const API_GROUP = 'agyn.io';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** CEL expressions attached to a schema node; copied verbatim into the CRD. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?:
    'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /**
   * The same rule in TypeScript over the parsed value, so that zod refuses what the API
   * server refuses (not in the CRD). Transition rules (oldSelf) have none.
   */
  holds?: (self: never) => boolean;
  /** A CEL message naming the offending entry (message stays the fallback). */
  messageExpression?: string;
  /** The TypeScript twin of messageExpression, for a value `holds` refused. */
  explain?: (self: never) => string;
}

export function withCel<T extends z.ZodType>(schema: T, rules: CelRule[]): T {
  const checked = rules.filter((r) => r.holds !== undefined);
  const refined = checked.length
    ? (schema.superRefine((self, ctx) => {
        for (const r of checked) {
          if (r.holds?.(self as never)) continue;
          const path = r.fieldPath ? r.fieldPath.slice(1).split('.') : [];
          ctx.addIssue({ code: 'custom', message: r.explain?.(self as never) ?? r.message, path });
        }
      }) as unknown as T)
    : schema;
  const crdRules = rules.map(({ holds: _holds, explain: _explain, ...rule }) => rule);
  return refined.meta({ 'x-kubernetes-validations': crdRules }) as T;
}

/** Kubernetes name rules (RFC 1123 label and subdomain; the name part of a qualified name). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

/** Why a label key or value is invalid (Kubernetes qualified-name rules), or undefined. */
export function labelProblem(key: string, value: string): string | undefined {
  if (key === '') return 'empty label key';
  const parts = key.split('/');
  const name = parts.at(-1) ?? '';
  const prefix = parts.length === 2 ? parts[0] : undefined;
  const keyValid =
    parts.length <= 2 &&
    name.length <= 63 &&
    QUALIFIED_NAME.test(name) &&
    (prefix === undefined || isDnsSubdomain(prefix));
  if (!keyValid) return `invalid label key ${JSON.stringify(key)}`;
  if (value !== '' && (value.length > 63 || !QUALIFIED_NAME.test(value))) {
    return `invalid value ${JSON.stringify(value)} for label ${JSON.stringify(key)}`;
  }
  return undefined;
}

export const dnsLabel = (description: string) =>
  z.string().min(1).max(63).regex(DNS_LABEL).meta({ description });

export const dnsSubdomain = (description: string) =>
  z.string().min(1).max(253).regex(DNS_SUBDOMAIN).meta({ description });

const MAX_LABELS = 64;

export const labelMap = (description: string) =>
  z
    .record(z.string().max(317), z.string().max(63))
    .refine((labels) => Object.keys(labels).length <= MAX_LABELS, {
      message: `at most ${MAX_LABELS} entries`,
    })
    .meta({ description, maxProperties: MAX_LABELS });

export const localObjectReference = z
  .object({ name: dnsSubdomain('Name of the referenced object in the same namespace.') })
  .meta({ description: 'A reference to an object in the same namespace.' });

export const secretKeyReference = z
  .object({
    name: dnsSubdomain('Name of the Secret.'),
    key: z.string().min(1).max(253).default('token').meta({ description: 'Key in the Secret.' }),
  })
  .meta({ description: 'A key of a Secret in the same namespace.' });

export const conditionSchema = z.object({
  type: z.string().max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().max(1024),
  message: z.string().max(32768),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
export type Condition = z.infer<typeof conditionSchema>;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

/** A reference to `owner`, an object of this API group (AgentWorkload, Runner). */
export function ownerReference(
  kind: string,
  owner: { metadata: { name: string; uid?: string } },
  flags: { controller: boolean; blockOwnerDeletion?: boolean },
): OwnerReference {
  const uid = owner.metadata.uid;
  if (!uid) throw new Error(`${kind} ${owner.metadata.name} has no uid`);
  return { apiVersion: API_GROUP_VERSION, kind, name: owner.metadata.name, uid, ...flags };
}

/** The uid of the object's controlling owner. */
export function controllerOwnerUid(obj: {
  metadata?: { ownerReferences?: OwnerReference[] };
}): string | undefined {
  return obj.metadata?.ownerReferences?.find((r) => r.controller === true)?.uid;
}

/** Fixed label and annotation keys shared by everything the operator creates. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  workloadId: 'agyn.io/workload-id',
  runner: 'agyn.io/runner',
  orchestratorManagedBy: 'agyn.dev/managed-by',
  /** On a Secret or PVC: made for the AgentWorkload of this name (ownership by name). */
  workloadName: 'agyn.io/workload-name',
} as const;
export const MANAGED_BY_VALUE = 'k8s-runner';
/** The labels that mark what the operator made for the workload with this id. */
export function workloadLabels(workloadId: string): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.workloadId]: workloadId };
}
export const ORCHESTRATOR_MANAGED_BY_VALUE = 'agents-orchestrator';
export const FIELD_MANAGER = 'k8s-runner';
/** Annotations of an AgentWorkload that the operator and the gRPC shim both read or write. */
export const ANNOTATIONS = {
  /** Last activity through the gRPC API (RFC 3339). */
  touchedAt: 'agyn.io/touched-at',
  /** A stopped workload with this annotation is deleted that many seconds after it stopped. */
  ttlAfterStopped: 'agyn.io/ttl-seconds-after-stopped',
} as const;
/** Deletes an AgentWorkload's Pod and Secrets before the AgentWorkload goes. */
export const WORKLOAD_FINALIZER = 'agyn.io/workload-cleanup';
