import { createHash } from 'node:crypto';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import {
  FIELD_MANAGER,
  LABELS,
  MANAGED_BY_VALUE,
  controllerOwnerUid,
  ownerReference,
} from '../api/common.ts';
import type { Runner, RunnerSpec } from '../api/runner.ts';
import type { KubeObject, ResourceClient } from '../kube/client.ts';
import { isNotFound } from '../kube/errors.ts';
import type { EnrollResult } from './gateway-client.ts';
import {
  IDENTITY_ANNOTATIONS,
  IDENTITY_KEYS,
  identitySecretName,
  runnerIdOf,
  tokenDigest,
} from './identity.ts';
import type { EnrolledIdentity, Failure } from './runner-status.ts';
import { GATEWAY_CA_LABEL } from './operator-secrets.ts';
import { RUNNER_TOKEN_LABEL, tokenSendProblem } from './token-rule.ts';

export type Secret = ISecret & KubeObject;

/** What a Runner's enrollment reads from its Secrets (from the cache or the API server). */
export interface EnrollmentInputs {
  token: string;
  tokenHash: string;
  caPem?: Buffer;
  caHash: string;
  identitySecret?: Secret;
}

/** An identity stored in a Runner's identity Secret that matches the current token. */
export interface StoredIdentity {
  secretName: string;
  /** uid of the Secret it is stored in; undefined until saved. */
  secretUid?: string;
  data: Record<string, string>;
  identityId: string;
  serviceName: string;
  runnerId: string;
  enrolledAt?: string;
  catalogHash?: string;
  catalogReportedAt?: string;
}

/** The catalog report last made with a stored identity. */
export interface CatalogRecord {
  catalogHash: string;
  catalogReportedAt: string;
}

/** Names of the Secrets a Runner's spec refers to (token, gateway CA). */
export function runnerSecretRefs(runner: Runner): string[] {
  const spec = runner.spec as Partial<RunnerSpec> | undefined;
  const names = [spec?.serviceToken?.secretRef?.name, spec?.gateway?.caSecretRef?.name];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

/** The Runner that owns (or is labelled on) a Secret, by name. */
export function ownedByRunner(obj: KubeObject): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find(
    (r) => r.controller === true && r.kind === 'Runner',
  );
  return ref?.name ?? obj.metadata?.labels?.[LABELS.runner];
}

function decode(value: string | undefined): Buffer | undefined {
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

/** The token, CA and identity Secret of a Runner as `secret` shows them, or why they are unusable. */
export function readInputs(
  runner: Runner,
  spec: RunnerSpec,
  secret: (name: string) => Secret | undefined,
): EnrollmentInputs | Failure {
  const ref = spec.serviceToken.secretRef;
  const tokenSecret = secret(ref.name);
  if (!tokenSecret) {
    return {
      reason: 'TokenSecretMissing',
      message: `token Secret "${ref.name}" not found among the Secrets labelled ${RUNNER_TOKEN_LABEL}: "true"`,
    };
  }
  const refused = tokenSendProblem(spec, tokenSecret);
  if (refused) return refused;
  const raw = decode(tokenSecret.data?.[ref.key]);
  if (raw === undefined) {
    return {
      reason: 'TokenSecretMissing',
      message: `token Secret "${ref.name}" has no key "${ref.key}"`,
    };
  }
  // A trailing newline (echo token | kubectl create secret ...) is not part of the token.
  const token = raw.toString('utf8').trim();
  if (token === '') {
    return {
      reason: 'TokenEmpty',
      message: `key "${ref.key}" of token Secret "${ref.name}" is empty`,
    };
  }
  let caPem: Buffer | undefined;
  const caRef = spec.gateway.caSecretRef;
  if (caRef) {
    const caSecret = secret(caRef.name);
    const labelled = caSecret?.metadata?.labels?.[GATEWAY_CA_LABEL] === 'true';
    caPem = labelled ? decode(caSecret?.data?.[caRef.key]) : undefined;
    if (!caSecret || !labelled || caPem === undefined || caPem.length === 0) {
      const what = !caSecret
        ? `not found among the Secrets labelled ${GATEWAY_CA_LABEL}: "true"`
        : !labelled
          ? `lacks the label ${GATEWAY_CA_LABEL}: "true"`
          : `has no key "${caRef.key}"`;
      return { reason: 'CASecretMissing', message: `gateway CA Secret "${caRef.name}" ${what}` };
    }
  }
  return {
    token,
    tokenHash: tokenDigest(runner.metadata.uid ?? '', token),
    caPem,
    caHash: caPem ? createHash('sha256').update(caPem).digest('hex') : '',
    identitySecret: secret(identitySecretName(runner.metadata.name)),
  };
}

/** The stored identity, when it belongs to this Runner, is complete and was enrolled with the current token. */
export function storedIdentity(
  runner: Runner,
  inputs: EnrollmentInputs,
): StoredIdentity | undefined {
  const secret = inputs.identitySecret;
  if (!secret || controllerOwnerUid(secret) !== runner.metadata.uid) return undefined;
  const annotations = secret.metadata?.annotations ?? {};
  if (annotations[IDENTITY_ANNOTATIONS.tokenHash] !== inputs.tokenHash) return undefined;
  const data = secret.data ?? {};
  const identityJson = decode(data[IDENTITY_KEYS.identityJson]);
  const identityId = decode(data[IDENTITY_KEYS.identityId])?.toString('utf8') ?? '';
  if (!identityJson || identityJson.length === 0 || identityId === '') return undefined;
  return {
    secretName: identitySecretName(runner.metadata.name),
    secretUid: secret.metadata?.uid,
    data: { ...data },
    identityId,
    serviceName: decode(data[IDENTITY_KEYS.serviceName])?.toString('utf8') ?? '',
    runnerId: runnerIdOf(identityJson, identityId),
    enrolledAt: annotations[IDENTITY_ANNOTATIONS.enrolledAt],
    catalogHash: annotations[IDENTITY_ANNOTATIONS.catalogHash],
    catalogReportedAt: annotations[IDENTITY_ANNOTATIONS.catalogReportedAt],
  };
}

/** Why a Runner without a usable identity enrolls (for the log line). */
export function enrollReason(runner: Runner, inputs: EnrollmentInputs, rejected: boolean): string {
  const secret = inputs.identitySecret;
  if (!secret) return 'no identity Secret';
  if (controllerOwnerUid(secret) !== runner.metadata.uid)
    return 'identity Secret belongs to an earlier Runner';
  if (secret.metadata?.annotations?.[IDENTITY_ANNOTATIONS.tokenHash] !== inputs.tokenHash) {
    return 'service token changed';
  }
  if (rejected) return 'identity rejected by the platform';
  return 'identity Secret incomplete';
}

/** A Secret of the identity's name that this operator did not create is never overwritten. */
export function identitySecretConflict(
  runner: Runner,
  secret: Secret | undefined,
): Failure | undefined {
  if (!secret) return undefined;
  const ours =
    secret.metadata?.labels?.[LABELS.managedBy] === MANAGED_BY_VALUE &&
    secret.metadata?.labels?.[LABELS.runner] === runner.metadata.name;
  if (ours) return undefined;
  return {
    reason: 'IdentitySecretConflict',
    message: `Secret "${secret.metadata?.name}" exists and was not created for this Runner; delete or rename it`,
  };
}

export function identityFromEnrollment(
  runner: Runner,
  enrolled: EnrollResult,
  enrolledAt: string,
): StoredIdentity {
  return {
    secretName: identitySecretName(runner.metadata.name),
    data: {
      [IDENTITY_KEYS.identityJson]: enrolled.identityJson.toString('base64'),
      [IDENTITY_KEYS.serviceName]: Buffer.from(enrolled.serviceName).toString('base64'),
      [IDENTITY_KEYS.identityId]: Buffer.from(enrolled.identityId).toString('base64'),
    },
    identityId: enrolled.identityId,
    serviceName: enrolled.serviceName,
    runnerId: runnerIdOf(enrolled.identityJson, enrolled.identityId),
    enrolledAt,
  };
}

/** What the Runner's status shows of an identity. */
export function enrolledIdentity(identity: StoredIdentity): EnrolledIdentity {
  return {
    runnerId: identity.runnerId,
    identityId: identity.identityId,
    serviceName: identity.serviceName,
    secretName: identity.secretName,
    enrolledAt: identity.enrolledAt,
  };
}

/** Reads and writes the identity Secrets (`<runner>-identity`) of the Runners in one namespace. */
export class IdentityStore {
  constructor(
    private readonly secretsApi: ResourceClient<Secret>,
    private readonly namespace: string,
  ) {}

  /** The Runner's token, CA and identity Secrets as the API server has them now (not the cache). */
  async readLive(
    runner: Runner,
    spec: RunnerSpec,
    signal: AbortSignal,
  ): Promise<Map<string, Secret>> {
    const names = new Set([identitySecretName(runner.metadata.name), ...runnerSecretRefs(runner)]);
    if (spec.gateway.caSecretRef) names.add(spec.gateway.caSecretRef.name);
    const found = new Map<string, Secret>();
    await Promise.all(
      [...names].map(async (name) => {
        try {
          found.set(name, await this.secretsApi.get(this.namespace, name, signal));
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }),
    );
    return found;
  }

  /**
   * Saves the identity with the token digest and, when given, the catalog report it made.
   * Server-side apply of the whole Secret: annotations of an earlier identity that are left
   * out (the catalog digest after a new enrollment) are removed.
   */
  async write(
    runner: Runner,
    identity: StoredIdentity,
    tokenHash: string,
    enrolledAt: string,
    catalog?: CatalogRecord,
  ): Promise<StoredIdentity> {
    const name = identitySecretName(runner.metadata.name);
    const annotations: Record<string, string> = {
      [IDENTITY_ANNOTATIONS.tokenHash]: tokenHash,
      [IDENTITY_ANNOTATIONS.enrolledAt]: enrolledAt,
    };
    if (catalog) {
      annotations[IDENTITY_ANNOTATIONS.catalogHash] = catalog.catalogHash;
      annotations[IDENTITY_ANNOTATIONS.catalogReportedAt] = catalog.catalogReportedAt;
    }
    const saved = await this.secretsApi.apply(
      this.namespace,
      name,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name,
          namespace: this.namespace,
          labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.runner]: runner.metadata.name },
          annotations,
          ownerReferences: [ownerReference('Runner', runner, { controller: true })],
        },
        type: 'Opaque',
        data: identity.data,
      },
      { fieldManager: FIELD_MANAGER, force: true },
    );
    return {
      ...identity,
      secretUid: saved.metadata?.uid,
      enrolledAt,
      catalogHash: catalog?.catalogHash,
      catalogReportedAt: catalog?.catalogReportedAt,
    };
  }
}
