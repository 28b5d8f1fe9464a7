import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import {
  API_GROUP_VERSION,
  FIELD_MANAGER,
  LABELS,
  MANAGED_BY_VALUE,
  type Condition,
} from '../api/common.ts';
import { jsonEqual } from '../api/conditions.ts';
import type { Runner, RunnerSpec, RunnerStatus } from '../api/runner.ts';
import type { KubeClient, KubeObject, ResourceClient } from '../kube/client.ts';
import { Controller, type ReconcileResult } from '../kube/controller.ts';
import { isNotFound } from '../kube/errors.ts';
import { Informer, objectKey } from '../kube/informer.ts';
import { EventRecorder } from '../kube/events.ts';
import { RUNNERS, SECRETS } from '../kube/resources.ts';
import type { AddOptions } from '../kube/workqueue.ts';
import { runnerEnrolledGauge } from '../observability/metrics.ts';
import { GatewayClient, type EnrollResult } from './gateway-client.ts';
import {
  IDENTITY_ANNOTATIONS,
  IDENTITY_KEYS,
  catalogDigest,
  catalogOf,
  identitySecretName,
  runnerIdOf,
  scopeOf,
  tokenDigest,
  type RunnerCatalog,
} from './identity.ts';
import {
  RUNNER_CONDITIONS,
  backoffMs,
  classifyGatewayError,
  desiredRunnerStatus,
  formatDuration,
  runnerStatusPatch,
  type BackoffOptions,
  type CatalogFacts,
  type EnrolledIdentity,
  type Failure,
  type OwnedRunnerStatus,
  type RunnerFacts,
} from './runner-status.ts';
import { runnerSpecOf } from './spec.ts';
import { tokenSendProblem } from './token-rule.ts';
import type { ReportTargetLookup, ReportTargetSource } from './state-reporter.ts';

export type Secret = ISecret & KubeObject;

/** Builds the gateway client of a Runner; https/grpcs URLs use TLS, verified with caPem when given. */
export type GatewayFactory = (url: string, caPem?: Buffer) => GatewayClient;

export const defaultGatewayFactory: GatewayFactory = (url, caPem) =>
  new GatewayClient({ url, caPem });

export const DEFAULT_RUNNER_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 5 * 60_000 };

export interface RunnerControllerOptions {
  client: KubeClient;
  /** The operator's namespace: Runners, their token, CA and identity Secrets live here. */
  namespace: string;
  logger: Logger;
  gatewayFactory?: GatewayFactory;
  /**
   * Informers to share (Runners in `namespace`, Secrets in `namespace`). The controller
   * creates, starts and stops those not given; given ones are started by start() but
   * never stopped by it.
   */
  informers?: { runners?: Informer<Runner>; secrets?: Informer<Secret> };
  /** Backoff of failed enrollments and catalog reports. Default 1 s doubling to 5 min. */
  backoff?: Partial<BackoffOptions>;
  workers?: number;
  /** Counts of the workloads placed on a Runner (status.workloads); omitted when absent. */
  workloadCounts?: (runnerName: string) => NonNullable<RunnerStatus['workloads']>;
  /** Name of the controller (metrics label, logs). Default `runner`. */
  name?: string;
  now?: () => Date;
}

/** What one reconcile learned, plus when to look again. */
interface Outcome {
  facts: RunnerFacts;
  requeueAfterMs?: number;
}

/** An identity stored in a Runner's identity Secret that matches the current token. */
interface StoredIdentity {
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

interface Inputs {
  token: string;
  tokenHash: string;
  caPem?: Buffer;
  caHash: string;
  identitySecret?: Secret;
}

/** In-memory state per Runner; all of it may be lost (a restart only costs a retry). */
interface RunnerMemo {
  uid: string;
  failures: number;
  /** Gateway calls for the same inputs wait until then (epoch ms), whatever triggers reconcile. */
  notBefore: number;
  fingerprint?: string;
  lastOutcome?: Outcome;
  /** runnerId of an identity the platform rejected on a report. */
  rejectedRunnerId?: string;
  /** Catalog digest a gateway answered UNIMPLEMENTED for. */
  catalogUnsupported?: string;
  gateway?: { key: string; client: GatewayClient };
  /** Status last written, until the informer delivers the Runner again (read-your-writes). */
  writtenStatus?: OwnedRunnerStatus;
}

const SECRET_REF_INDEX = 'secretRefs';

function runnerSecretRefs(runner: Runner): string[] {
  const spec = runner.spec as Partial<RunnerSpec> | undefined;
  const names = [spec?.serviceToken?.secretRef?.name, spec?.gateway?.caSecretRef?.name];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function decode(value: string | undefined): Buffer | undefined {
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

function controllerOwnerUid(obj: KubeObject): string | undefined {
  return obj.metadata?.ownerReferences?.find((r) => r.controller === true)?.uid;
}

function ownedByRunner(obj: KubeObject): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find(
    (r) => r.controller === true && r.kind === 'Runner',
  );
  return ref?.name ?? obj.metadata?.labels?.[LABELS.runner];
}

/**
 * Enrolls each Runner with the platform gateway, keeps its identity in a Secret it owns,
 * reports its catalog and keeps its status true. Watch-driven: Runner and Secret events
 * enqueue Runners; timed re-checks happen only to retry failures with capped backoff.
 * Gateway calls are made only when needed and never repeated for the same inputs before
 * the backoff expires. A token never reaches a log line, an Event or the status.
 */
export class RunnerController implements ReportTargetSource {
  readonly namespace: string;
  readonly runnerInformer: Informer<Runner>;
  readonly secretInformer: Informer<Secret>;
  private readonly ownedInformers: Array<{ stop(): Promise<void> }> = [];
  private readonly runnersApi: ResourceClient<Runner>;
  private readonly secretsApi: ResourceClient<Secret>;
  private readonly recorder: EventRecorder;
  private readonly logger: Logger;
  private readonly gatewayFactory: GatewayFactory;
  private readonly backoff: BackoffOptions;
  private readonly workers: number | undefined;
  private readonly name: string;
  private readonly now: () => Date;
  private readonly memos = new Map<string, RunnerMemo>();
  private controller?: Controller;

  constructor(private readonly options: RunnerControllerOptions) {
    this.namespace = options.namespace;
    this.logger = options.logger.child({ component: 'runner-controller' });
    this.gatewayFactory = options.gatewayFactory ?? defaultGatewayFactory;
    this.backoff = { ...DEFAULT_RUNNER_BACKOFF, ...options.backoff };
    this.workers = options.workers;
    this.name = options.name ?? 'runner';
    this.now = options.now ?? (() => new Date());
    this.runnersApi = options.client.resource<Runner>(RUNNERS);
    this.secretsApi = options.client.resource<Secret>(SECRETS);
    this.recorder = new EventRecorder(options.client, this.logger);

    const runners = options.informers?.runners;
    this.runnerInformer =
      runners ??
      new Informer<Runner>(this.runnersApi, { namespace: this.namespace, logger: options.logger });
    const secrets = options.informers?.secrets;
    this.secretInformer =
      secrets ??
      new Informer<Secret>(this.secretsApi, {
        namespace: this.namespace,
        logger: options.logger,
        // Helm keeps whole releases in Secrets of the release namespace; nothing here reads them.
        transform: (s) => (s.type === 'helm.sh/release.v1' ? { ...s, data: undefined } : s),
      });
    if (!runners) this.ownedInformers.push(this.runnerInformer);
    if (!secrets) this.ownedInformers.push(this.secretInformer);

    this.runnerInformer.addIndex(SECRET_REF_INDEX, runnerSecretRefs);
    this.runnerInformer.addHandler({
      onAdd: (r, initial) => this.enqueue(objectKey(r), { initial }),
      onUpdate: (old, r) => {
        const memo = this.memos.get(r.metadata.name);
        if (memo) memo.writtenStatus = undefined;
        const changed =
          old.metadata.uid !== r.metadata.uid ||
          old.metadata.generation !== r.metadata.generation ||
          Boolean(old.metadata.deletionTimestamp) !== Boolean(r.metadata.deletionTimestamp) ||
          r.status?.observedGeneration !== r.metadata.generation;
        if (changed) this.enqueue(objectKey(r));
      },
      onDelete: (r) => this.enqueue(objectKey(r)),
    });
    this.secretInformer.addHandler({
      onAdd: (s, initial) => this.secretChanged(s, { initial }),
      onUpdate: (_old, s) => this.secretChanged(s),
      onDelete: (s) => this.secretChanged(s),
    });
  }

  /** Starts the informers, waits for their caches, then reconciles. Safe to call again after stop(). */
  async start(): Promise<void> {
    if (this.controller) return;
    this.runnerInformer.start();
    this.secretInformer.start();
    await Promise.all([this.runnerInformer.waitForSync(), this.secretInformer.waitForSync()]);
    if (this.controller) return;
    const controller = new Controller({
      name: this.name,
      workers: this.workers,
      reconcile: (key, signal) => this.reconcile(key, signal),
      logger: this.logger,
      queue: { rateLimiter: { baseDelayMs: 50, maxDelayMs: this.backoff.maxMs } },
    });
    this.controller = controller;
    controller.start();
    for (const r of this.runnerInformer.list()) controller.enqueue(objectKey(r), { initial: true });
  }

  /** Stops reconciling (e.g. on loss of leadership) and the informers it created. */
  async stop(): Promise<void> {
    const controller = this.controller;
    this.controller = undefined;
    await controller?.stop();
    await Promise.all(this.ownedInformers.map((i) => i.stop()));
    for (const memo of this.memos.values()) memo.gateway?.client.close();
    this.memos.clear();
  }

  /** A workload placed on this Runner changed: recount soon (many changes, one status write). */
  workloadsChanged(runnerName: string): void {
    this.controller?.queue.addAfter(`${this.namespace}/${runnerName}`, 2_000);
  }

  /** Looks up what a state report for the named Runner needs (from the caches only). */
  reportTarget(runnerName: string): ReportTargetLookup {
    const runner = this.runnerInformer.get(this.namespace, runnerName);
    if (!runner || runner.metadata.deletionTimestamp) {
      return { ok: false, permanent: true, why: `Runner "${runnerName}" not found` };
    }
    const spec = runnerSpecOf(runner);
    const inputs = this.readInputs(runner, spec, (name) =>
      this.secretInformer.get(this.namespace, name),
    );
    if ('reason' in inputs) return { ok: false, permanent: false, why: inputs.message };
    const memo = this.memo(runner);
    const identity = this.storedIdentity(runner, inputs);
    if (!identity || identity.runnerId === memo.rejectedRunnerId) {
      return { ok: false, permanent: false, why: `Runner "${runnerName}" is not enrolled` };
    }
    let gateway: GatewayClient;
    try {
      gateway = this.gatewayFor(memo, spec, inputs);
    } catch (err) {
      return { ok: false, permanent: false, why: classifyGatewayError(err).message };
    }
    return {
      ok: true,
      target: {
        gateway,
        gatewayUrl: spec.gateway.url,
        runnerId: identity.runnerId,
        serviceToken: inputs.token,
      },
    };
  }

  /** A report was refused for this identity: enroll again (unless that already happened). */
  identityRejected(runnerName: string, runnerId: string): void {
    const runner = this.runnerInformer.get(this.namespace, runnerName);
    if (!runner) return;
    const memo = this.memo(runner);
    if (memo.rejectedRunnerId === runnerId) return;
    memo.rejectedRunnerId = runnerId;
    this.logger.warn(
      { runner: runnerName },
      'the platform rejected the identity on a report; enrolling again',
    );
    this.enqueue(objectKey(runner));
  }

  private enqueue(key: string, options?: AddOptions): void {
    this.controller?.enqueue(key, options);
  }

  private secretChanged(secret: Secret, options?: AddOptions): void {
    const name = secret.metadata?.name;
    if (!name) return;
    for (const r of this.runnerInformer.byIndex(SECRET_REF_INDEX, name))
      this.enqueue(objectKey(r), options);
    const owner = ownedByRunner(secret);
    if (owner && secret.metadata?.namespace)
      this.enqueue(`${secret.metadata.namespace}/${owner}`, options);
  }

  private memo(runner: Runner): RunnerMemo {
    const name = runner.metadata.name;
    const uid = runner.metadata.uid ?? '';
    let memo = this.memos.get(name);
    if (memo && memo.uid !== uid) {
      memo.gateway?.client.close();
      memo = undefined;
    }
    if (!memo) {
      memo = { uid, failures: 0, notBefore: 0 };
      this.memos.set(name, memo);
    }
    return memo;
  }

  private forget(name: string): void {
    this.memos.get(name)?.gateway?.client.close();
    this.memos.delete(name);
    runnerEnrolledGauge.remove({ runner: name });
  }

  private async reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult> {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const runner = this.runnerInformer.get(namespace, name);
    if (!runner) {
      this.forget(name);
      return {};
    }
    if (runner.metadata.deletionTimestamp) return {};
    const spec = runnerSpecOf(runner);
    const memo = this.memo(runner);
    const outcome = await this.converge(runner, spec, memo, signal);
    await this.writeStatus(runner, spec, memo, outcome.facts);
    runnerEnrolledGauge.set({ runner: name }, outcome.facts.enrolled ? 1 : 0);
    return outcome.requeueAfterMs === undefined ? {} : { requeueAfterMs: outcome.requeueAfterMs };
  }

  private async converge(
    runner: Runner,
    spec: RunnerSpec,
    memo: RunnerMemo,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const cached = (name: string): Secret | undefined =>
      this.secretInformer.get(this.namespace, name);
    let inputs = this.readInputs(runner, spec, cached);
    if ('reason' in inputs) return this.failed(memo, { enrolled: false, failure: inputs });
    const catalog = catalogOf(spec);
    const catalogHash = catalogDigest(catalog);
    let identity = this.usableIdentity(runner, inputs, memo);
    if (identity && this.catalogSettled(identity, catalogHash, memo))
      return this.succeeded(memo, identity, catalog, catalogHash);

    // About to call the gateway: the fingerprint of what the cache showed decides whether
    // this is a retry that must wait for its backoff.
    const fingerprintOf = (view: Inputs, identitySecretUid: string, usable: boolean): string =>
      JSON.stringify([
        runner.metadata.generation,
        view.tokenHash,
        view.caHash,
        identitySecretUid,
        usable,
        memo.rejectedRunnerId ?? '',
      ]);
    let fingerprint = fingerprintOf(
      inputs,
      inputs.identitySecret?.metadata?.uid ?? '',
      identity !== undefined,
    );
    const nowMs = this.now().getTime();
    if (memo.lastOutcome && memo.fingerprint === fingerprint && nowMs < memo.notBefore) {
      return { facts: memo.lastOutcome.facts, requeueAfterMs: memo.notBefore - nowMs };
    }

    // Enrollment replaces the runner's identity on the platform: confirm from the API
    // server, not the cache, that it is needed.
    const live = await this.readLiveSecrets(spec, runner, signal);
    inputs = this.readInputs(runner, spec, (name) => live.get(name));
    if ('reason' in inputs)
      return this.failed(memo, { enrolled: false, failure: inputs }, fingerprint);
    identity = this.usableIdentity(runner, inputs, memo);
    if (identity && this.catalogSettled(identity, catalogHash, memo))
      return this.succeeded(memo, identity, catalog, catalogHash);
    // A failure below is remembered with what the cache will show once it has caught up.
    fingerprint = fingerprintOf(
      inputs,
      inputs.identitySecret?.metadata?.uid ?? '',
      identity !== undefined,
    );

    const conflict = this.identitySecretConflict(runner, inputs.identitySecret);
    if (conflict) return this.failed(memo, { enrolled: false, failure: conflict }, fingerprint);

    let gateway: GatewayClient;
    try {
      gateway = this.gatewayFor(memo, spec, inputs);
    } catch (err) {
      return this.failed(
        memo,
        { enrolled: false, failure: classifyGatewayError(err) },
        fingerprint,
      );
    }

    let unsaved = false;
    if (!identity) {
      this.logger.info(
        { runner: runner.metadata.name, why: this.enrollReason(runner, inputs, memo) },
        'enrolling runner with the platform gateway',
      );
      let enrolled: EnrollResult;
      try {
        enrolled = await gateway.enroll(inputs.token, signal);
      } catch (err) {
        const failure = classifyGatewayError(err);
        this.logger.warn(
          { runner: runner.metadata.name, reason: failure.reason, detail: failure.message },
          'enrollment failed',
        );
        return this.failed(memo, { enrolled: false, failure }, fingerprint);
      }
      identity = identityFromEnrollment(runner, enrolled, this.timestamp());
      unsaved = true;
      memo.rejectedRunnerId = undefined;
      this.logger.info(
        {
          runner: runner.metadata.name,
          serviceName: identity.serviceName,
          identityId: identity.identityId,
        },
        'runner enrolled',
      );
    }

    // The identity is saved once, after the catalog report, unless that report fails.
    try {
      await gateway.reportCatalog(
        { runnerId: identity.runnerId, serviceToken: inputs.token, ...catalog },
        signal,
      );
    } catch (err) {
      const failure = classifyGatewayError(err);
      if (unsaved) identity = await this.writeIdentity(runner, identity, inputs.tokenHash);
      if (failure.identityRejected) memo.rejectedRunnerId = identity.runnerId;
      fingerprint = fingerprintOf(inputs, identity.secretUid ?? '', !failure.identityRejected);
      if (failure.unimplemented) {
        memo.catalogUnsupported = catalogHash;
        this.logger.warn(
          { runner: runner.metadata.name },
          'the platform does not implement ReportRunnerCatalog',
        );
        return this.succeeded(memo, identity, catalog, catalogHash);
      }
      if (failure.identityRejected) {
        this.logger.warn(
          { runner: runner.metadata.name, detail: failure.message },
          'identity rejected on catalog report',
        );
        return this.failed(memo, { enrolled: false, failure }, fingerprint);
      }
      this.logger.warn(
        { runner: runner.metadata.name, reason: failure.reason, detail: failure.message },
        'catalog report failed',
      );
      const facts: CatalogFacts = {
        state: 'failed',
        failure,
        everReported: identity.catalogHash !== undefined,
      };
      return this.failed(
        memo,
        { enrolled: true, identity: this.enrolledIdentity(identity), catalog: facts },
        fingerprint,
      );
    }
    identity = await this.writeIdentity(runner, identity, inputs.tokenHash, {
      catalogHash,
      catalogReportedAt: this.timestamp(),
    });
    memo.catalogUnsupported = undefined;
    this.logger.info({ runner: runner.metadata.name }, 'runner catalog reported');
    return this.succeeded(memo, identity, catalog, catalogHash);
  }

  private catalogSettled(identity: StoredIdentity, catalogHash: string, memo: RunnerMemo): boolean {
    return identity.catalogHash === catalogHash || memo.catalogUnsupported === catalogHash;
  }

  private succeeded(
    memo: RunnerMemo,
    identity: StoredIdentity,
    catalog: RunnerCatalog,
    catalogHash: string,
  ): Outcome {
    memo.failures = 0;
    memo.notBefore = 0;
    memo.fingerprint = undefined;
    memo.lastOutcome = undefined;
    const catalogFacts: CatalogFacts =
      identity.catalogHash === catalogHash
        ? {
            state: 'reported',
            reportedAt: identity.catalogReportedAt,
            summary: catalogSummary(catalog),
          }
        : {
            state: 'unsupported',
            message: 'the platform gateway does not implement ReportRunnerCatalog (UNIMPLEMENTED)',
          };
    return {
      facts: { enrolled: true, identity: this.enrolledIdentity(identity), catalog: catalogFacts },
    };
  }

  private failed(memo: RunnerMemo, facts: RunnerFacts, fingerprint?: string): Outcome {
    // New inputs start a new series of retries.
    if (fingerprint !== memo.fingerprint) memo.failures = 0;
    memo.failures += 1;
    const delay = backoffMs(memo.failures, this.backoff);
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
    const outcome: Outcome = { facts: shown, requeueAfterMs: delay };
    memo.notBefore = this.now().getTime() + delay;
    memo.fingerprint = fingerprint;
    memo.lastOutcome = fingerprint === undefined ? undefined : outcome;
    return outcome;
  }

  private enrolledIdentity(identity: StoredIdentity): EnrolledIdentity {
    return {
      runnerId: identity.runnerId,
      identityId: identity.identityId,
      serviceName: identity.serviceName,
      secretName: identity.secretName,
      enrolledAt: identity.enrolledAt,
    };
  }

  private readInputs(
    runner: Runner,
    spec: RunnerSpec,
    secret: (name: string) => Secret | undefined,
  ): Inputs | Failure {
    const ref = spec.serviceToken.secretRef;
    const tokenSecret = secret(ref.name);
    if (!tokenSecret) {
      return { reason: 'TokenSecretMissing', message: `token Secret "${ref.name}" not found` };
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
      caPem = decode(caSecret?.data?.[caRef.key]);
      if (!caSecret || caPem === undefined || caPem.length === 0) {
        const what = caSecret ? `has no key "${caRef.key}"` : 'not found';
        return { reason: 'CASecretMissing', message: `gateway CA Secret "${caRef.name}" ${what}` };
      }
    }
    return {
      token,
      tokenHash: tokenDigest(runner.metadata.uid ?? '', token),
      caPem,
      caHash: caPem ? sha256(caPem) : '',
      identitySecret: secret(identitySecretName(runner.metadata.name)),
    };
  }

  private async readLiveSecrets(
    spec: RunnerSpec,
    runner: Runner,
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

  /** The stored identity, when it belongs to this Runner, is complete and was enrolled with the current token. */
  private storedIdentity(runner: Runner, inputs: Inputs): StoredIdentity | undefined {
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

  private usableIdentity(
    runner: Runner,
    inputs: Inputs,
    memo: RunnerMemo,
  ): StoredIdentity | undefined {
    const identity = this.storedIdentity(runner, inputs);
    return identity && identity.runnerId !== memo.rejectedRunnerId ? identity : undefined;
  }

  private enrollReason(runner: Runner, inputs: Inputs, memo: RunnerMemo): string {
    const secret = inputs.identitySecret;
    if (!secret) return 'no identity Secret';
    if (controllerOwnerUid(secret) !== runner.metadata.uid)
      return 'identity Secret belongs to an earlier Runner';
    if (secret.metadata?.annotations?.[IDENTITY_ANNOTATIONS.tokenHash] !== inputs.tokenHash) {
      return 'service token changed';
    }
    if (memo.rejectedRunnerId !== undefined) return 'identity rejected by the platform';
    return 'identity Secret incomplete';
  }

  /** A Secret of the identity's name that this operator did not create is never overwritten. */
  private identitySecretConflict(runner: Runner, secret: Secret | undefined): Failure | undefined {
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

  private gatewayFor(
    memo: RunnerMemo,
    spec: RunnerSpec,
    inputs: Pick<Inputs, 'caPem' | 'caHash'>,
  ): GatewayClient {
    const key = `${spec.gateway.url}\0${inputs.caHash}`;
    if (memo.gateway?.key === key) return memo.gateway.client;
    const client = this.gatewayFactory(spec.gateway.url, inputs.caPem);
    memo.gateway?.client.close();
    memo.gateway = { key, client };
    return client;
  }

  private async writeIdentity(
    runner: Runner,
    identity: StoredIdentity,
    tokenHash: string,
    catalog?: { catalogHash: string; catalogReportedAt: string },
  ): Promise<StoredIdentity> {
    const name = identitySecretName(runner.metadata.name);
    const enrolledAt = identity.enrolledAt ?? this.timestamp();
    const annotations: Record<string, string> = {
      [IDENTITY_ANNOTATIONS.tokenHash]: tokenHash,
      [IDENTITY_ANNOTATIONS.enrolledAt]: enrolledAt,
    };
    if (catalog) {
      annotations[IDENTITY_ANNOTATIONS.catalogHash] = catalog.catalogHash;
      annotations[IDENTITY_ANNOTATIONS.catalogReportedAt] = catalog.catalogReportedAt;
    }
    // Server-side apply of the whole Secret: annotations of an earlier identity that are
    // left out (the catalog digest after a new enrollment) are removed.
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
          ownerReferences: [
            {
              apiVersion: API_GROUP_VERSION,
              kind: 'Runner',
              name: runner.metadata.name,
              uid: runner.metadata.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
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

  private async writeStatus(
    runner: Runner,
    spec: RunnerSpec,
    memo: RunnerMemo,
    facts: RunnerFacts,
  ): Promise<void> {
    const current: RunnerStatus | undefined = memo.writtenStatus
      ? { ...runner.status, ...memo.writtenStatus }
      : runner.status;
    const desired = desiredRunnerStatus(
      current,
      facts,
      runner.metadata.generation,
      scopeOf(spec),
      this.now(),
    );
    let patch = runnerStatusPatch(current, desired);
    const counts = this.options.workloadCounts?.(runner.metadata.name);
    if (counts && !jsonEqual(counts, current?.workloads)) patch = { ...patch, workloads: counts };
    if (!patch) return;
    try {
      await this.runnersApi.mergePatch(
        this.namespace,
        runner.metadata.name,
        { status: patch },
        'status',
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    memo.writtenStatus = desired;
    this.recordTransitions(current, runner, desired.conditions ?? []);
  }

  private recordTransitions(
    current: RunnerStatus | undefined,
    runner: Runner,
    conditions: readonly Condition[],
  ): void {
    for (const type of [RUNNER_CONDITIONS.enrolled, RUNNER_CONDITIONS.catalogReported]) {
      const before = current?.conditions?.find((c) => c.type === type);
      const after = conditions.find((c) => c.type === type);
      if (!after || after.reason === 'NotEnrolled') continue;
      if (before && before.status === after.status && before.reason === after.reason) continue;
      this.recordEvent(
        runner,
        after.status === 'True' ? 'Normal' : 'Warning',
        after.reason,
        after.message,
      );
    }
  }

  private recordEvent(
    runner: Runner,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    this.recorder.record(
      {
        apiVersion: API_GROUP_VERSION,
        kind: 'Runner',
        metadata: { ...runner.metadata, namespace: this.namespace },
      },
      type,
      reason,
      message,
      this.now(),
    );
  }

  private timestamp(): string {
    return this.now()
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
  }
}

function identityFromEnrollment(
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

function catalogSummary(catalog: RunnerCatalog): string {
  const plural = (n: number, word: string, many = `${word}s`): string =>
    `${n} ${n === 1 ? word : many}`;
  return (
    `reported ${plural(catalog.flavors.length, 'flavor')}, ` +
    `${plural(catalog.storageClasses.length, 'storage class', 'storage classes')} and ` +
    `capabilities [${catalog.capabilities.join(', ')}]`
  );
}
