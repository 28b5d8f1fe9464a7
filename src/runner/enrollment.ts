import type { Logger } from 'pino';
import type { Runner, RunnerSpec } from '../api/runner.ts';
import type { CatalogReport, EnrollResult, GatewayClient } from './gateway-client.ts';
import type { GatewayClients } from './gateway-clients.ts';
import { catalogDigest, catalogOf, type RunnerCatalog } from './identity.ts';
import {
  enrollReason,
  enrolledIdentity,
  identityFromEnrollment,
  identitySecretConflict,
  readInputs,
  storedIdentity,
  type EnrollmentInputs,
  type IdentityStore,
  type Secret,
  type StoredIdentity,
} from './identity-store.ts';
import {
  backoffMs,
  classifyGatewayError,
  formatDuration,
  type BackoffOptions,
  type CatalogFacts,
  type Failure,
  type RunnerFacts,
} from './runner-status.ts';

/** What one reconcile learned, plus when to look again. */
export interface EnrollmentOutcome {
  facts: RunnerFacts;
  requeueAfterMs?: number;
}

/** In-memory state per Runner; all of it may be lost (a restart only costs a retry). */
interface Memo {
  uid: string;
  failures: number;
  /** Gateway calls for the same inputs wait until then (epoch ms), whatever triggers reconcile. */
  notBefore: number;
  fingerprint?: string;
  lastOutcome?: EnrollmentOutcome;
  /** runnerId of an identity the platform rejected on a report. */
  rejectedRunnerId?: string;
  /** Catalog digest a gateway answered UNIMPLEMENTED for. */
  catalogUnsupported?: string;
}

/** The inputs of one look, the identity usable with them and the fingerprint of both. */
interface View {
  inputs: EnrollmentInputs;
  identity?: StoredIdentity;
  fingerprint: string;
}

interface Catalog {
  catalog: RunnerCatalog;
  catalogHash: string;
}

export interface EnrollmentOptions {
  identities: IdentityStore;
  gateways: GatewayClients;
  /** The cached Secret of this name in the operator namespace. */
  cachedSecret: (name: string) => Secret | undefined;
  logger: Logger;
  backoff: BackoffOptions;
  now: () => Date;
}

/** RFC 3339 in UTC, whole seconds. */
function timestampOf(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What a failed gateway call depended on: the same fingerprint again waits for the backoff. */
function fingerprintOf(
  runner: Runner,
  memo: Memo,
  inputs: EnrollmentInputs,
  identitySecretUid: string,
  usable: boolean,
): string {
  return JSON.stringify([
    runner.metadata.generation,
    inputs.tokenHash,
    inputs.caHash,
    identitySecretUid,
    usable,
    memo.rejectedRunnerId ?? '',
  ]);
}

function catalogSummary(catalog: RunnerCatalog): string {
  const plural = (n: number, word: string, many = `${word}s`): string =>
    `${n} ${n === 1 ? word : many}`;
  return (
    `reported ${plural(catalog.flavors.length, 'flavor')}, ` +
    `${plural(catalog.storageClasses.length, 'storage class', 'storage classes')} and ` +
    `capabilities [${catalog.capabilities.join(', ')}]`
  );
}

/**
 * Enrolls a Runner with its platform gateway (when its stored identity is missing, stale or
 * rejected) and reports its catalog, with capped backoff: gateway calls for the same inputs
 * are never repeated before the backoff expires, whatever triggers the reconcile.
 */
export class Enrollment {
  private readonly memos = new Map<string, Memo>();
  private readonly logger: Logger;

  constructor(private readonly options: EnrollmentOptions) {
    this.logger = options.logger;
  }

  /** The stored identity of the Runner usable for calls (matches the token, not rejected). */
  usableIdentity(runner: Runner, inputs: EnrollmentInputs): StoredIdentity | undefined {
    const identity = storedIdentity(runner, inputs);
    const rejected = this.memo(runner).rejectedRunnerId;
    return identity && identity.runnerId !== rejected ? identity : undefined;
  }

  /** Records that the platform refused `runnerId`; false when that was known already. */
  reject(runner: Runner, runnerId: string): boolean {
    const memo = this.memo(runner);
    if (memo.rejectedRunnerId === runnerId) return false;
    memo.rejectedRunnerId = runnerId;
    return true;
  }

  forget(runnerName: string): void {
    this.memos.delete(runnerName);
  }

  clear(): void {
    this.memos.clear();
  }

  /** Brings the Runner's enrollment and catalog report up to date, or says why not. */
  async converge(
    runner: Runner,
    spec: RunnerSpec,
    signal: AbortSignal,
  ): Promise<EnrollmentOutcome> {
    const memo = this.memo(runner);
    const inputs = readInputs(runner, spec, this.options.cachedSecret);
    if ('reason' in inputs) return this.failed(memo, { enrolled: false, failure: inputs });
    const catalog = catalogOf(spec);
    const want: Catalog = { catalog, catalogHash: catalogDigest(catalog) };
    const cached = this.view(runner, memo, inputs);
    if (cached.identity && this.catalogSettled(cached.identity, want.catalogHash, memo))
      return this.succeeded(memo, cached.identity, want);
    // About to call the gateway: the fingerprint of what the cache showed decides whether
    // this is a retry that must wait for its backoff.
    const nowMs = this.options.now().getTime();
    if (memo.lastOutcome && memo.fingerprint === cached.fingerprint && nowMs < memo.notBefore) {
      return { facts: memo.lastOutcome.facts, requeueAfterMs: memo.notBefore - nowMs };
    }
    return this.callGateway(runner, spec, memo, want, cached.fingerprint, signal);
  }

  private memo(runner: Runner): Memo {
    const name = runner.metadata.name;
    const uid = runner.metadata.uid ?? '';
    let memo = this.memos.get(name);
    if (!memo || memo.uid !== uid) {
      memo = { uid, failures: 0, notBefore: 0 };
      this.memos.set(name, memo);
    }
    return memo;
  }

  private view(runner: Runner, memo: Memo, inputs: EnrollmentInputs): View {
    const identity = this.usableIdentity(runner, inputs);
    const secretUid = inputs.identitySecret?.metadata?.uid ?? '';
    const fingerprint = fingerprintOf(runner, memo, inputs, secretUid, identity !== undefined);
    return { inputs, identity, fingerprint };
  }

  private async callGateway(
    runner: Runner,
    spec: RunnerSpec,
    memo: Memo,
    want: Catalog,
    cachedFingerprint: string,
    signal: AbortSignal,
  ): Promise<EnrollmentOutcome> {
    // Enrollment replaces the runner's identity on the platform: confirm from the API
    // server, not the cache, that it is needed.
    const live = await this.options.identities.readLive(runner, spec, signal);
    const inputs = readInputs(runner, spec, (name) => live.get(name));
    if ('reason' in inputs)
      return this.failed(memo, { enrolled: false, failure: inputs }, cachedFingerprint);
    // A failure below is remembered with what the cache will show once it has caught up.
    const { identity, fingerprint } = this.view(runner, memo, inputs);
    if (identity && this.catalogSettled(identity, want.catalogHash, memo))
      return this.succeeded(memo, identity, want);
    const conflict = identitySecretConflict(runner, inputs.identitySecret);
    if (conflict) return this.failed(memo, { enrolled: false, failure: conflict }, fingerprint);

    let gateway: ReconcileGateway;
    try {
      const client = this.options.gateways.get({
        runnerName: runner.metadata.name,
        runnerUid: runner.metadata.uid ?? '',
        url: spec.gateway.url,
        caPem: inputs.caPem,
        caHash: inputs.caHash,
      });
      gateway = boundTo(client, signal);
    } catch (err) {
      const failure = classifyGatewayError(err);
      return this.failed(memo, { enrolled: false, failure }, fingerprint);
    }
    if (identity) return this.reportCatalog(runner, memo, inputs, gateway, identity, false, want);
    const enrolled = await this.enroll(runner, memo, inputs, gateway, fingerprint);
    if ('facts' in enrolled) return enrolled;
    return this.reportCatalog(runner, memo, inputs, gateway, enrolled, true, want);
  }

  private async enroll(
    runner: Runner,
    memo: Memo,
    inputs: EnrollmentInputs,
    gateway: ReconcileGateway,
    fingerprint: string,
  ): Promise<StoredIdentity | EnrollmentOutcome> {
    const name = runner.metadata.name;
    const why = enrollReason(runner, inputs, memo.rejectedRunnerId !== undefined);
    this.logger.info({ runner: name, why }, 'enrolling runner with the platform gateway');
    let enrolled: EnrollResult;
    try {
      enrolled = await gateway.enroll(inputs.token);
    } catch (err) {
      const failure = classifyGatewayError(err);
      this.logger.warn(
        { runner: name, reason: failure.reason, detail: failure.message },
        'enrollment failed',
      );
      return this.failed(memo, { enrolled: false, failure }, fingerprint);
    }
    const identity = identityFromEnrollment(runner, enrolled, this.timestamp());
    memo.rejectedRunnerId = undefined;
    this.logger.info(
      { runner: name, serviceName: identity.serviceName, identityId: identity.identityId },
      'runner enrolled',
    );
    return identity;
  }

  /** Reports the catalog; the identity is saved once, after the report, unless that fails. */
  private async reportCatalog(
    runner: Runner,
    memo: Memo,
    inputs: EnrollmentInputs,
    gateway: ReconcileGateway,
    identity: StoredIdentity,
    unsaved: boolean,
    want: Catalog,
  ): Promise<EnrollmentOutcome> {
    try {
      await gateway.reportCatalog({
        runnerId: identity.runnerId,
        serviceToken: inputs.token,
        ...want.catalog,
      });
    } catch (err) {
      const saved = unsaved ? await this.save(runner, identity, inputs) : identity;
      return this.catalogFailed(runner, memo, inputs, saved, want, err);
    }
    const saved = await this.save(runner, identity, inputs, {
      catalogHash: want.catalogHash,
      catalogReportedAt: this.timestamp(),
    });
    memo.catalogUnsupported = undefined;
    this.logger.info({ runner: runner.metadata.name }, 'runner catalog reported');
    return this.succeeded(memo, saved, want);
  }

  private catalogFailed(
    runner: Runner,
    memo: Memo,
    inputs: EnrollmentInputs,
    identity: StoredIdentity,
    want: Catalog,
    err: unknown,
  ): EnrollmentOutcome {
    const name = runner.metadata.name;
    const failure = classifyGatewayError(err);
    if (failure.identityRejected) memo.rejectedRunnerId = identity.runnerId;
    const secretUid = identity.secretUid ?? '';
    const fingerprint = fingerprintOf(runner, memo, inputs, secretUid, !failure.identityRejected);
    if (failure.unimplemented) {
      memo.catalogUnsupported = want.catalogHash;
      this.logger.warn({ runner: name }, 'the platform does not implement ReportRunnerCatalog');
      return this.succeeded(memo, identity, want);
    }
    if (failure.identityRejected) {
      this.logger.warn(
        { runner: name, detail: failure.message },
        'identity rejected on catalog report',
      );
      return this.failed(memo, { enrolled: false, failure }, fingerprint);
    }
    this.logger.warn(
      { runner: name, reason: failure.reason, detail: failure.message },
      'catalog report failed',
    );
    const catalog: CatalogFacts = {
      state: 'failed',
      failure,
      everReported: identity.catalogHash !== undefined,
    };
    const facts: RunnerFacts = { enrolled: true, identity: enrolledIdentity(identity), catalog };
    return this.failed(memo, facts, fingerprint);
  }

  private save(
    runner: Runner,
    identity: StoredIdentity,
    inputs: EnrollmentInputs,
    catalog?: { catalogHash: string; catalogReportedAt: string },
  ): Promise<StoredIdentity> {
    const enrolledAt = identity.enrolledAt ?? this.timestamp();
    return this.options.identities.write(runner, identity, inputs.tokenHash, enrolledAt, catalog);
  }

  private catalogSettled(identity: StoredIdentity, catalogHash: string, memo: Memo): boolean {
    return identity.catalogHash === catalogHash || memo.catalogUnsupported === catalogHash;
  }

  private succeeded(memo: Memo, identity: StoredIdentity, want: Catalog): EnrollmentOutcome {
    memo.failures = 0;
    memo.notBefore = 0;
    memo.fingerprint = undefined;
    memo.lastOutcome = undefined;
    const catalog: CatalogFacts =
      identity.catalogHash === want.catalogHash
        ? {
            state: 'reported',
            reportedAt: identity.catalogReportedAt,
            summary: catalogSummary(want.catalog),
          }
        : {
            state: 'unsupported',
            message: 'the platform gateway does not implement ReportRunnerCatalog (UNIMPLEMENTED)',
          };
    return { facts: { enrolled: true, identity: enrolledIdentity(identity), catalog } };
  }

  private failed(memo: Memo, facts: RunnerFacts, fingerprint?: string): EnrollmentOutcome {
    // New inputs start a new series of retries.
    if (fingerprint !== memo.fingerprint) memo.failures = 0;
    memo.failures += 1;
    const delay = backoffMs(memo.failures, this.options.backoff);
    const suffix = `; retrying in ${formatDuration(delay)}`;
    const withRetry = (f: Failure): Failure => ({ reason: f.reason, message: f.message + suffix });
    let shown: RunnerFacts;
    if (!facts.enrolled) shown = { enrolled: false, failure: withRetry(facts.failure) };
    else if (facts.catalog.state === 'failed') {
      shown = {
        ...facts,
        catalog: { ...facts.catalog, failure: withRetry(facts.catalog.failure) },
      };
    } else shown = facts;
    const outcome: EnrollmentOutcome = { facts: shown, requeueAfterMs: delay };
    memo.notBefore = this.options.now().getTime() + delay;
    memo.fingerprint = fingerprint;
    memo.lastOutcome = fingerprint === undefined ? undefined : outcome;
    return outcome;
  }

  private timestamp(): string {
    return timestampOf(this.options.now());
  }
}

/** A Runner's gateway client with every call bound to one reconcile's abort signal. */
interface ReconcileGateway {
  enroll(serviceToken: string): ReturnType<GatewayClient['enroll']>;
  reportCatalog(report: CatalogReport): ReturnType<GatewayClient['reportCatalog']>;
}

function boundTo(client: GatewayClient, signal: AbortSignal): ReconcileGateway {
  return {
    enroll: (serviceToken) => client.enroll(serviceToken, signal),
    reportCatalog: (report) => client.reportCatalog(report, signal),
  };
}
