import type { Logger } from 'pino';
import type { Runner, RunnerStatus } from '../api/runner.ts';
import type { KubeClient } from '../kube/client.ts';
import type { ReconcileResult } from '../kube/controller.ts';
import { forKind, TriggeredController, watches, type Trigger } from '../kube/triggers.ts';
import { Informer, objectKey } from '../kube/informer.ts';
import { SECRETS } from '../kube/resources.ts';
import { RUNNERS } from '../api/resources.ts';
import { runnerEnrolledGauge } from '../observability/metrics.ts';
import { Enrollment } from './enrollment.ts';
import { GatewayClients, type GatewayFactory } from './gateway-clients.ts';
import { IdentityStore, ownedByRunner, readInputs, type Secret } from './identity-store.ts';
import { classifyGatewayError, type BackoffOptions } from './runner-status.ts';
import { runnerSpecOf } from './spec.ts';
import type { SecretCache } from './operator-secrets.ts';
import { RunnerCaches, SECRET_REF_INDEX } from './caches.ts';
import { InformerCache } from '../kube/cache.ts';
import type { ReportTargetLookup, ReportTargetSource } from './state-reporter.ts';
import { RunnerStatusWriter } from './status-writer.ts';

export type { Secret } from './identity-store.ts';

export const DEFAULT_RUNNER_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 5 * 60_000 };

export interface RunnerControllerOptions {
  client: KubeClient;
  /** The operator's namespace: Runners, their token, CA and identity Secrets live here. */
  namespace: string;
  logger: Logger;
  gatewayFactory?: GatewayFactory;
  /**
   * The operator namespace's caches (from the process's cache owner, runner/caches.ts). The
   * controller creates, starts and stops its own when not given; given ones are started by
   * start() but never stopped by it.
   */
  informers?: { runners: Informer<Runner>; secrets: SecretCache<Secret> };
  /** Backoff of failed enrollments and catalog reports. Default 1 s doubling to 5 min. */
  backoff?: Partial<BackoffOptions>;
  workers?: number;
  /** Counts of the workloads placed on a Runner (status.workloads); omitted when absent. */
  workloadCounts?: (runnerName: string) => NonNullable<RunnerStatus['workloads']>;
  /** Name of the controller (metrics label, logs). Default `runner`. */
  name?: string;
  now?: () => Date;
}

/**
 * Enrolls each Runner with the platform gateway, keeps its identity in a Secret it owns,
 * reports its catalog and keeps its status true. Watch-driven: Runner and Secret events
 * enqueue Runners; timed re-checks happen only to retry failures with capped backoff.
 * A token never reaches a log line, an Event or the status. The work itself is done by
 * Enrollment, IdentityStore, RunnerStatusWriter and GatewayClients; this wires them up.
 */
export class RunnerController implements ReportTargetSource {
  readonly namespace: string;
  readonly runnerInformer: Informer<Runner>;
  /** Only the Secrets of OPERATOR_SECRET_SELECTORS (operator-secrets.ts). */
  readonly secretInformer: SecretCache<Secret>;
  private readonly ownedInformers: Array<{ stop(): Promise<void> }> = [];
  private readonly logger: Logger;
  private readonly backoff: BackoffOptions;
  private readonly gateways: GatewayClients;
  private readonly enrollment: Enrollment;
  private readonly status: RunnerStatusWriter;
  private readonly controller: TriggeredController;

  constructor(private readonly options: RunnerControllerOptions) {
    this.namespace = options.namespace;
    this.logger = options.logger.child({ component: 'runner-controller' });
    this.backoff = { ...DEFAULT_RUNNER_BACKOFF, ...options.backoff };
    const now = options.now ?? (() => new Date());
    const runnersApi = options.client.resource<Runner>(RUNNERS);
    const secretsApi = options.client.resource<Secret>(SECRETS);
    const caches =
      options.informers ??
      new RunnerCaches(new InformerCache(options.client, options.logger), this.namespace);
    this.runnerInformer = caches.runners;
    this.secretInformer = caches.secrets;
    if (!options.informers) this.ownedInformers.push(this.runnerInformer, this.secretInformer);
    this.gateways = new GatewayClients(options.gatewayFactory);
    this.enrollment = new Enrollment({
      identities: new IdentityStore(secretsApi, this.namespace),
      gateways: this.gateways,
      cachedSecret: (name) => this.secretInformer.get(this.namespace, name),
      logger: this.logger,
      backoff: this.backoff,
      now,
    });
    this.status = new RunnerStatusWriter({
      client: options.client,
      runnersApi,
      namespace: this.namespace,
      logger: this.logger,
      now,
      workloadCounts: options.workloadCounts,
    });
    this.controller = new TriggeredController({
      name: options.name ?? 'runner',
      workers: options.workers,
      reconcile: (key, signal) => this.reconcile(key, signal),
      logger: this.logger,
      queue: { rateLimiter: { baseDelayMs: 50, maxDelayMs: this.backoff.maxMs } },
      triggers: this.triggers(),
    });
  }

  /** Starts the informers, waits for their caches, then reconciles. Safe to call again after stop(). */
  async start(): Promise<void> {
    this.runnerInformer.start();
    this.secretInformer.start();
    await Promise.all([this.runnerInformer.waitForSync(), this.secretInformer.waitForSync()]);
    this.controller.start();
  }

  /** Stops reconciling (e.g. on loss of leadership) and the informers it created. */
  async stop(): Promise<void> {
    await this.controller.stop();
    await Promise.all(this.ownedInformers.map((i) => i.stop()));
    this.gateways.closeAll();
    this.enrollment.clear();
    this.status.clear();
  }

  /** A workload placed on this Runner changed: recount soon (many changes, one status write). */
  workloadsChanged(runnerName: string): void {
    this.controller.queue?.addAfter(`${this.namespace}/${runnerName}`, 2_000);
  }

  /** Looks up what a state report for the named Runner needs (from the caches only). */
  reportTarget(runnerName: string): ReportTargetLookup {
    const runner = this.runnerInformer.get(this.namespace, runnerName);
    if (!runner || runner.metadata.deletionTimestamp) {
      return { ok: false, permanent: true, why: `Runner "${runnerName}" not found` };
    }
    const spec = runnerSpecOf(runner);
    const inputs = readInputs(runner, spec, (name) =>
      this.secretInformer.get(this.namespace, name),
    );
    if ('reason' in inputs) return { ok: false, permanent: false, why: inputs.message };
    const identity = this.enrollment.usableIdentity(runner, inputs);
    if (!identity) {
      return { ok: false, permanent: false, why: `Runner "${runnerName}" is not enrolled` };
    }
    try {
      const gateway = this.gateways.get({
        runnerName,
        runnerUid: runner.metadata.uid ?? '',
        url: spec.gateway.url,
        caPem: inputs.caPem,
        caHash: inputs.caHash,
      });
      return {
        ok: true,
        target: {
          gateway,
          gatewayUrl: spec.gateway.url,
          runnerId: identity.runnerId,
          serviceToken: inputs.token,
        },
      };
    } catch (err) {
      return { ok: false, permanent: false, why: classifyGatewayError(err).message };
    }
  }

  /** A report was refused for this identity: enroll again (unless that already happened). */
  identityRejected(runnerName: string, runnerId: string): void {
    const runner = this.runnerInformer.get(this.namespace, runnerName);
    if (!runner || !this.enrollment.reject(runner, runnerId)) return;
    this.logger.warn(
      { runner: runnerName },
      'the platform rejected the identity on a report; enrolling again',
    );
    this.controller.enqueue(objectKey(runner));
  }

  /** The triggers: a Runner's changes, and changes of the Secrets it refers to or owns. */
  private triggers(): Trigger[] {
    return [
      forKind(this.runnerInformer, { changed: runnerChanged }),
      watches(this.secretInformer, (secret) => this.runnersOfSecret(secret)),
    ];
  }

  private runnersOfSecret(secret: Secret): string[] {
    const name = secret.metadata?.name;
    if (!name) return [];
    const keys = this.runnerInformer.byIndex(SECRET_REF_INDEX, name).map((r) => objectKey(r));
    const owner = ownedByRunner(secret);
    if (owner && secret.metadata?.namespace) keys.push(`${secret.metadata.namespace}/${owner}`);
    return keys;
  }

  private forget(name: string): void {
    this.gateways.close(name);
    this.enrollment.forget(name);
    this.status.forget(name);
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
    const outcome = await this.enrollment.converge(runner, spec, signal);
    await this.status.write(runner, spec, outcome.facts);
    runnerEnrolledGauge.set({ runner: name }, outcome.facts.enrolled ? 1 : 0);
    return outcome.requeueAfterMs === undefined ? {} : { requeueAfterMs: outcome.requeueAfterMs };
  }
}

/** A Runner change worth a reconcile: not the status this controller writes itself. */
function runnerChanged(old: Runner, runner: Runner): boolean {
  return (
    old.metadata.uid !== runner.metadata.uid ||
    old.metadata.generation !== runner.metadata.generation ||
    Boolean(old.metadata.deletionTimestamp) !== Boolean(runner.metadata.deletionTimestamp) ||
    runner.status?.observedGeneration !== runner.metadata.generation
  );
}
