import { createHash } from 'node:crypto';
import type { RunnerSpec } from '../api/runner.ts';
import type { CatalogStorageClass } from './gateway-client.ts';

/** Annotations of the identity Secret; they hold digests and times, never a token. */
export const IDENTITY_ANNOTATIONS = {
  tokenHash: 'agyn.io/token-sha256',
  catalogHash: 'agyn.io/catalog-sha256',
  enrolledAt: 'agyn.io/enrolled-at',
  catalogReportedAt: 'agyn.io/catalog-reported-at',
} as const;

/** Keys of the identity Secret's data, named after EnrollRunnerResponse's fields. */
export const IDENTITY_KEYS = {
  identityJson: 'identity_json',
  serviceName: 'service_name',
  identityId: 'identity_id',
} as const;

export function identitySecretName(runnerName: string): string {
  return `${runnerName}-identity`;
}

/**
 * Digest of a service token, salted with the Runner's uid so that equal tokens of two
 * Runners do not share a digest and a recreated Runner never trusts an old identity.
 */
export function tokenDigest(runnerUid: string, token: string): string {
  return createHash('sha256').update(`k8s-runner/token\0${runnerUid}\0${token}`).digest('hex');
}

export interface RunnerCatalog {
  flavors: RunnerSpec['catalog']['flavors'];
  storageClasses: CatalogStorageClass[];
  capabilities: string[];
}

/** What ReportRunnerCatalog states for a Runner spec. */
export function catalogOf(spec: RunnerSpec): RunnerCatalog {
  const capabilities = [...new Set(spec.capabilities)];
  if (spec.capabilityImplementations.docker !== undefined && !capabilities.includes('docker')) {
    capabilities.push('docker');
  }
  return {
    flavors: spec.catalog.flavors,
    storageClasses: spec.catalog.storageClasses.map((s) => ({
      name: s.name,
      default: s.default,
      deprecated: s.deprecated,
    })),
    capabilities,
  };
}

/** Digest of exactly the fields a catalog report carries, in a fixed field order. */
export function catalogDigest(catalog: RunnerCatalog): string {
  const canonical = {
    flavors: catalog.flavors.map((f) => ({
      name: f.name,
      requestsCpu: f.resources.requests?.cpu ?? '',
      requestsMemory: f.resources.requests?.memory ?? '',
      limitsCpu: f.resources.limits?.cpu ?? '',
      limitsMemory: f.resources.limits?.memory ?? '',
      default: f.default,
      deprecated: f.deprecated,
    })),
    storageClasses: catalog.storageClasses.map((s) => ({
      name: s.name,
      default: s.default,
      deprecated: s.deprecated,
    })),
    capabilities: catalog.capabilities,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/**
 * The runner id that reports carry. EnrollRunnerResponse has no runner id field, and its
 * identity_id names the network identity, not the runner; so an id the platform put in the
 * identity document (`runner_id` or `runnerId`) wins, and identity_id is the fallback.
 */
export function runnerIdOf(identityJson: Buffer, identityId: string): string {
  try {
    const doc: unknown = JSON.parse(identityJson.toString('utf8'));
    if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
      for (const field of ['runner_id', 'runnerId']) {
        const value = (doc as Record<string, unknown>)[field];
        if (typeof value === 'string' && value.trim() !== '') return value;
      }
    }
  } catch {
    // Not JSON: the identity_id fallback applies.
  }
  return identityId;
}

export function scopeOf(spec: Pick<RunnerSpec, 'organizationId'>): string {
  const org = spec.organizationId?.trim();
  return org ? `organization:${org}` : 'cluster';
}
