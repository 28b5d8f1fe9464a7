import type { Condition } from '../api/common.ts';
import { jsonEqual, setCondition } from '../api/conditions.ts';
import type { RunnerStatus } from '../api/runner.ts';
import { GatewayError } from './gateway-client.ts';

export const RUNNER_CONDITIONS = {
  enrolled: 'Enrolled',
  catalogReported: 'CatalogReported',
  ready: 'Ready',
  reconciling: 'Reconciling',
  stalled: 'Stalled',
} as const;

/** Condition reasons of the failure modes; each has its own reason and message. */
export type RunnerFailureReason =
  | 'TokenSecretMissing'
  | 'TokenEmpty'
  | 'TokenSecretNotLabelled'
  | 'GatewayInsecure'
  | 'TokenRejected'
  | 'PlatformError'
  | 'GatewayUnreachable'
  | 'MalformedResponse'
  | 'IdentityRejected'
  | 'CASecretMissing'
  | 'GatewayConfigInvalid'
  | 'IdentitySecretConflict';

export interface Failure {
  reason: RunnerFailureReason;
  message: string;
}

/**
 * Failures that retrying cannot cure: a person must fix the Secret, the token or the
 * gateway settings (kstatus `Stalled`). The rest (an unreachable or failing platform, a
 * malformed answer, an identity being enrolled again) are retried with backoff (`Reconciling`).
 */
const NEEDS_INTERVENTION: ReadonlySet<RunnerFailureReason> = new Set<RunnerFailureReason>([
  'TokenSecretMissing',
  'TokenEmpty',
  'TokenRejected',
  'CASecretMissing',
  'GatewayConfigInvalid',
  'IdentitySecretConflict',
]);

export const isStalledFailure = (failure: Failure): boolean =>
  NEEDS_INTERVENTION.has(failure.reason);

export interface ClassifiedGatewayError extends Failure {
  /** The platform no longer accepts the identity or token: enroll again. */
  identityRejected: boolean;
  /** The platform does not implement the method (an older platform). */
  unimplemented: boolean;
}

const REJECTED_CODES = new Set(['NOT_FOUND', 'UNAUTHENTICATED', 'PERMISSION_DENIED']);
const UNREACHABLE_CODES = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED']);

/** Maps a failed gateway call to a condition reason and message (GatewayError details are redacted). */
export function classifyGatewayError(err: unknown): ClassifiedGatewayError {
  if (!(err instanceof GatewayError)) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      reason: 'GatewayConfigInvalid',
      message: `cannot call the platform gateway: ${message}`,
      identityRejected: false,
      unimplemented: false,
    };
  }
  const what = err.message;
  const enrolling = err.method === 'EnrollRunner';
  const base = { identityRejected: false, unimplemented: false };
  if (err.code === 'MALFORMED_RESPONSE') {
    return {
      ...base,
      reason: 'MalformedResponse',
      message: `the platform gateway sent a malformed response (${what})`,
    };
  }
  if (UNREACHABLE_CODES.has(err.code)) {
    return {
      ...base,
      reason: 'GatewayUnreachable',
      message: `the platform gateway is unreachable (${what})`,
    };
  }
  if (REJECTED_CODES.has(err.code)) {
    return enrolling
      ? {
          ...base,
          reason: 'TokenRejected',
          message: `the platform rejected the service token (${what})`,
        }
      : {
          ...base,
          identityRejected: true,
          reason: 'IdentityRejected',
          message: `the platform rejected the enrolled identity (${what}); enrolling again`,
        };
  }
  if (err.code === 'INVALID_ARGUMENT' && enrolling) {
    return {
      ...base,
      reason: 'TokenEmpty',
      message: `the platform refused the service token as empty (${what})`,
    };
  }
  return {
    ...base,
    unimplemented: err.code === 'UNIMPLEMENTED',
    reason: 'PlatformError',
    message: `the platform failed (${what})`,
  };
}

export interface BackoffOptions {
  /** Delay after the first failure. */
  initialMs: number;
  /** Cap of the delay. */
  maxMs: number;
}

/** Capped exponential backoff: initialMs after the first failure, doubling, at most maxMs. */
export function backoffMs(failures: number, options: BackoffOptions): number {
  if (failures <= 0) return 0;
  const exponent = Math.min(failures - 1, 52);
  return Math.min(options.initialMs * 2 ** exponent, options.maxMs);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  return `${Math.round(s / 60)}m`;
}

export interface EnrolledIdentity {
  runnerId: string;
  identityId: string;
  serviceName: string;
  secretName: string;
  enrolledAt?: string;
}

export type CatalogFacts =
  | { state: 'reported'; reportedAt?: string; summary: string }
  | { state: 'unsupported'; message: string }
  /** everReported: this identity's catalog was reported before, only a later change is missing. */
  | { state: 'failed'; failure: Failure; everReported: boolean };

export type RunnerFacts =
  | { enrolled: true; identity: EnrolledIdentity; catalog: CatalogFacts }
  | { enrolled: false; failure: Failure };

/** The status fields the runner controller owns (status.workloads belongs to others). */
export const OWNED_STATUS_FIELDS = [
  'observedGeneration',
  'conditions',
  'runnerId',
  'identityId',
  'serviceName',
  'identitySecretRef',
  'enrolledAt',
  'catalogReportedAt',
  'scope',
] as const satisfies ReadonlyArray<keyof RunnerStatus>;

export type OwnedRunnerStatus = Pick<RunnerStatus, (typeof OWNED_STATUS_FIELDS)[number]>;

type ConditionFact = [type: string, status: Condition['status'], reason: string, message: string];

/** kstatus: Ready=True is Current; Reconciling=True is InProgress; Stalled=True is Failed. */
function settledConditions(failure: Failure | undefined): ConditionFact[] {
  const stalled = failure !== undefined && isStalledFailure(failure);
  const retrying = failure !== undefined && !stalled;
  return [
    [
      RUNNER_CONDITIONS.reconciling,
      retrying ? 'True' : 'False',
      retrying ? failure.reason : 'Settled',
      retrying ? `retrying with backoff: ${failure.message}` : '',
    ],
    [
      RUNNER_CONDITIONS.stalled,
      stalled ? 'True' : 'False',
      stalled ? failure.reason : 'NotStalled',
      stalled ? failure.message : '',
    ],
  ];
}

function notEnrolledConditions(failure: Failure): ConditionFact[] {
  return [
    [RUNNER_CONDITIONS.enrolled, 'False', failure.reason, failure.message],
    [
      RUNNER_CONDITIONS.catalogReported,
      'False',
      'NotEnrolled',
      'the catalog is reported once the Runner is enrolled',
    ],
    [RUNNER_CONDITIONS.ready, 'False', failure.reason, failure.message],
    ...settledConditions(failure),
  ];
}

/** CatalogReported and Ready of an enrolled Runner. */
function catalogConditions(catalog: CatalogFacts): ConditionFact[] {
  switch (catalog.state) {
    case 'reported':
      return [
        [RUNNER_CONDITIONS.catalogReported, 'True', 'CatalogReported', catalog.summary],
        [RUNNER_CONDITIONS.ready, 'True', 'Ready', 'enrolled and catalog reported'],
      ];
    case 'unsupported':
      return [
        [RUNNER_CONDITIONS.catalogReported, 'False', 'CatalogUnsupported', catalog.message],
        [RUNNER_CONDITIONS.ready, 'True', 'Ready', `enrolled; ${catalog.message}`],
      ];
    case 'failed': {
      const { failure } = catalog;
      const reported: ConditionFact = [
        RUNNER_CONDITIONS.catalogReported,
        'False',
        failure.reason,
        failure.message,
      ];
      // A catalog change that cannot be reported yet must not take the runner's workloads
      // down: only a catalog never reported for this identity keeps the runner not Ready.
      if (catalog.everReported) {
        const why = `enrolled; the latest catalog change is not reported yet (${failure.reason})`;
        return [reported, [RUNNER_CONDITIONS.ready, 'True', 'Ready', why]];
      }
      return [reported, [RUNNER_CONDITIONS.ready, 'False', failure.reason, failure.message]];
    }
  }
}

/**
 * The status a Runner should have given what reconcile found. Conditions keep their
 * lastTransitionTime unless their status flips, so an unchanged outcome yields an equal status.
 */
export function desiredRunnerStatus(
  current: RunnerStatus | undefined,
  facts: RunnerFacts,
  generation: number | undefined,
  scope: string,
  now: Date,
): OwnedRunnerStatus {
  const apply = (list: ConditionFact[]): Condition[] | undefined => {
    let conditions: Condition[] | undefined = current?.conditions;
    for (const [type, status, reason, message] of list)
      conditions = setCondition(conditions, { type, status, reason, message }, generation, now);
    return conditions;
  };
  if (!facts.enrolled) {
    const conditions = apply(notEnrolledConditions(facts.failure));
    return { observedGeneration: generation, conditions, scope };
  }
  const { identity, catalog } = facts;
  const stuck = catalog.state === 'failed' && !catalog.everReported ? catalog.failure : undefined;
  const conditions = apply([
    [
      RUNNER_CONDITIONS.enrolled,
      'True',
      'Enrolled',
      `enrolled with the platform as service "${identity.serviceName}" (identity id "${identity.identityId}")`,
    ],
    ...catalogConditions(catalog),
    ...settledConditions(stuck),
  ]);
  return {
    observedGeneration: generation,
    conditions,
    runnerId: identity.runnerId,
    identityId: identity.identityId,
    serviceName: identity.serviceName,
    identitySecretRef: { name: identity.secretName },
    enrolledAt: identity.enrolledAt,
    catalogReportedAt: catalog.state === 'reported' ? catalog.reportedAt : undefined,
    scope,
  };
}

/**
 * The merge patch of status that turns `current` into `desired` (owned fields only, absent
 * ones removed), or undefined when they already agree.
 */
export function runnerStatusPatch(
  current: RunnerStatus | undefined,
  desired: OwnedRunnerStatus,
): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {};
  for (const field of OWNED_STATUS_FIELDS) {
    const want = desired[field];
    const have = current?.[field];
    if (jsonEqual(want, have)) continue;
    patch[field] = want === undefined ? null : want;
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

/** The Runner's Enrolled condition is True. */
export function isRunnerEnrolled(runner: { status?: RunnerStatus }): boolean {
  return (
    runner.status?.conditions?.some(
      (c) => c.type === RUNNER_CONDITIONS.enrolled && c.status === 'True',
    ) ?? false
  );
}

export function isRunnerReady(status: RunnerStatus | undefined): boolean {
  return (
    status?.conditions?.some((c) => c.type === RUNNER_CONDITIONS.ready && c.status === 'True') ??
    false
  );
}
