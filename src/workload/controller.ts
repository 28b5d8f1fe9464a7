import type { Logger } from 'pino';
import { WORKLOAD_FINALIZER } from '../api/common.ts';
import { InformerCache } from '../kube/cache.ts';
import type { KubeClient } from '../kube/client.ts';
import type { ReconcileResult } from '../kube/controller.ts';
import { objectKey } from '../kube/informer.ts';
import { PODS, PVCS, SECRETS } from '../kube/resources.ts';
import {
  forKind,
  owns,
  TriggeredController,
  watches,
  watchesSignal,
  type Trigger,
} from '../kube/triggers.ts';
import { WrittenAhead } from '../kube/written-ahead.ts';
import { AccessGate } from './access-gate.ts';
import { WorkloadCaches, type Pod, type Pvc, type Secret, type Workload } from './caches.ts';
import { decide, type Decision, type WorkloadFacts } from './decide.ts';
import { POD_ANNOTATION_PREFIXES } from './desired-pod.ts';
import { DesiredPodHashes } from './desired-pod-hashes.ts';
import { WorkloadExecutor } from './executor.ts';
import { addFinalizer, finalizeWorkload } from './finalizer.ts';
import { OrphanSecretCollector } from './orphan-secrets.ts';
import { claimName } from './pod-builder.ts';
import type { RunnerDirectory, WorkloadStateSink } from './seams.ts';
import { StatusWriter, type WorkloadWrites } from './status-writer.ts';
import { ownSecretNames, unadoptedSecretOwner } from './workload-secrets.ts';

export { WORKLOAD_FINALIZER };
/** Concurrent workload reconciles (env WORKERS): I/O-bound, the API round trips set the pace. */
export const DEFAULT_WORKLOAD_WORKERS = 16;

export interface WorkloadControllerOptions {
  client: KubeClient;
  logger: Logger;
  runners: RunnerDirectory;
  /** Watch one namespace, or all when undefined. */
  namespace?: string;
  workers?: number;
  stateSink?: WorkloadStateSink;
  /** The workload namespace's caches (from the process's cache owner); its own when absent. */
  caches?: WorkloadCaches;
  now?: () => Date;
  /** Default ORPHAN_SECRET_GRACE_MS (orphan-secrets.ts). */
  orphanSecretGraceMs?: number;
  /** Overrides both coalescing windows (status-coalescing.ts). */
  statusCoalesceMs?: number;
  /** AgentWorkload annotation prefixes copied onto Pods (default POD_ANNOTATION_PREFIXES). */
  podAnnotationPrefixes?: readonly string[];
}

/**
 * Materializes each AgentWorkload as a Pod (plus PVCs, adopted Secrets) and keeps its
 * status true. Level-based: every reconcile reads the caches, decide() chooses the actions
 * and the status, the executor applies them, the status writer writes the status. Kept in
 * memory only: when a Pod was first seen missing, and Pods created but not yet cached.
 */
export class WorkloadController {
  readonly informers: WorkloadCaches;
  private readonly client: KubeClient;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly controller: TriggeredController;
  private readonly orphans: OrphanSecretCollector;
  private readonly access: AccessGate;
  private readonly executor: WorkloadExecutor;
  private readonly statusWriter: StatusWriter;
  private readonly writtenAhead = new WrittenAhead<WorkloadWrites>();
  private readonly podMissingSince = new Map<string, Date>();
  /** Pods created but not yet seen in the cache (controller-runtime's "expectations"). */
  private readonly expectedPods = new Map<string, number>();
  private readonly desiredPodHashes = new DesiredPodHashes();

  constructor(private readonly options: WorkloadControllerOptions) {
    this.client = options.client;
    this.logger = options.logger.child({ controller: 'agentworkload' });
    this.now = options.now ?? (() => new Date());
    this.informers =
      options.caches ??
      new WorkloadCaches(new InformerCache(options.client, this.logger), options.namespace);
    this.access = new AccessGate(this.informers.secrets, this.client.resource<Secret>(SECRETS));
    this.executor = new WorkloadExecutor(this.client, this.informers);
    const workers = options.workers ?? DEFAULT_WORKLOAD_WORKERS;
    this.statusWriter = new StatusWriter({
      client: this.client,
      logger: this.logger,
      writtenAhead: this.writtenAhead,
      now: this.now,
      stateSink: options.stateSink,
      coalesceMs: options.statusCoalesceMs,
      backlogged: () => (this.controller.queue?.len() ?? 0) >= workers,
    });
    this.orphans = new OrphanSecretCollector({
      client: this.client,
      caches: this.informers,
      logger: options.logger,
      now: this.now,
      graceMs: options.orphanSecretGraceMs,
    });
    this.controller = new TriggeredController({
      name: 'agentworkload',
      workers,
      logger: this.logger,
      reconcile: (key, signal) => this.reconcile(key, signal),
      triggers: this.triggers(),
    });
  }

  /** Every reason to reconcile a workload (controller-runtime's For / Owns / Watches). */
  private triggers(): Trigger[] {
    const { workloads, pods, secrets } = this.informers;
    return [
      forKind(workloads, { onDelete: (aw) => this.forget(objectKey(aw)) }),
      owns(pods, 'AgentWorkload', { onAdd: (owner) => this.expectedPods.delete(owner) }),
      // A Secret the shim wrote for a workload is adopted whenever it reaches the cache.
      watches(secrets, (secret, event) => {
        const owner = event === 'delete' ? undefined : unadoptedSecretOwner(this.informers, secret);
        return owner ? [objectKey(owner)] : [];
      }),
      watchesSignal(
        (listener) => this.options.runners.onChange(listener),
        () => workloads.list().map((aw) => objectKey(aw)),
      ),
    ];
  }

  private forget(key: string): void {
    this.podMissingSince.delete(key);
    this.expectedPods.delete(key);
    this.desiredPodHashes.forget(key);
    this.writtenAhead.forget(key);
    this.statusWriter.forget(key);
  }

  /** Starts the informers this controller reads and waits for them to sync. */
  async startInformers(): Promise<void> {
    this.informers.start();
    await this.informers.waitForSync();
  }

  hasSynced(): boolean {
    return this.informers.hasSynced();
  }

  /** Starts reconciling (e.g. on gaining leadership), beginning with everything in the cache. */
  start(): void {
    this.controller.start();
    this.orphans.controller.start();
  }

  /** Stops reconciling at once (e.g. on losing leadership); start() may follow. */
  async stop(): Promise<void> {
    await Promise.all([this.controller.stop(), this.orphans.controller.stop()]);
  }

  get running(): boolean {
    return this.controller.running;
  }

  async stopInformers(): Promise<void> {
    await this.informers.stop();
  }

  get queue() {
    return this.controller.queue;
  }

  /**
   * An AgentWorkload this process has just created (the API server's answer, e.g. the gRPC
   * shim's): recorded in the cache at once, so its reconcile is queued now rather than when
   * the watch brings it (the trigger hears of it; the watch event that follows is no change).
   */
  handOff(aw: Workload): void {
    this.informers.workloads.recordWrite(aw);
  }

  /** `signal` aborts on stop: no action and no status write starts after it. */
  private async reconcile(key: string, signal: AbortSignal): Promise<ReconcileResult | void> {
    let aw = this.informers.workloads.getByKey(key);
    if (!aw) return;
    const pod = this.informers.pods.get(aw.metadata.namespace, aw.metadata.name);
    if (aw.metadata.deletionTimestamp) {
      await finalizeWorkload(this.client, this.informers, aw, pod);
      this.podMissingSince.delete(key);
      return;
    }
    const ahead = this.writtenAhead.of(key, aw);
    // The status this controller last wrote is newer than the cached one.
    if (ahead?.status) aw = { ...aw, status: ahead.status };
    // The finalizer is added while the Pod and its volumes are created, not before: they are
    // owned by the workload, so should it be deleted before the finalizer lands, the garbage
    // collector removes them; a failed patch fails this reconcile, which is retried.
    const finalizerAdded =
      aw.metadata.finalizers?.includes(WORKLOAD_FINALIZER) || ahead?.finalizer
        ? undefined
        : this.addFinalizer(key, aw);
    let applied;
    try {
      applied = await this.decideAndApply(key, aw, pod, signal);
    } catch (err) {
      await finalizerAdded?.catch(() => undefined);
      throw err;
    }
    // Carry on with the patched object: a round trip through the queue costs more.
    if (finalizerAdded) {
      const patched = await finalizerAdded;
      aw = ahead?.status ? { ...patched, status: ahead.status } : patched;
    }
    signal.throwIfAborted();
    const deferredMs = await this.statusWriter.write(key, aw, applied.status);
    const requeueAfterMs = Math.min(applied.requeueAfterMs ?? Infinity, deferredMs ?? Infinity);
    if (requeueAfterMs !== Infinity) return { requeueAfterMs: Math.max(10, requeueAfterMs) };
  }

  private async addFinalizer(key: string, aw: Workload): Promise<Workload> {
    const patched = await addFinalizer(this.client, aw);
    this.writtenAhead.note(key, aw, patched, { finalizer: true });
    return patched;
  }

  /** decide(), with the Secret access check it may ask for, then the executor. */
  private async decideAndApply(
    key: string,
    aw: Workload,
    pod: Pod | undefined,
    signal: AbortSignal,
  ) {
    const facts = this.factsOf(key, aw, pod);
    let decision = decide(facts);
    for (let lookups = 0; decision.needs; lookups++) {
      if (lookups === 3) throw new Error(`decide() still needs ${decision.needs}`);
      if (decision.needs === 'secretAccess')
        facts.secretAccess = await this.access.secretAccess(aw, facts.workloadId);
      else if (decision.needs === 'claimsLive') {
        facts.claims = await this.liveClaims(aw, signal);
        facts.claimsLive = true;
      } else {
        facts.pod = await this.livePod(aw, signal);
        facts.podLive = true;
      }
      decision = decide(facts);
    }
    this.remember(key, decision);
    // Made only when an action logs: most reconciles log nothing.
    let child: Logger | undefined;
    const log = (): Logger =>
      (child ??= this.logger.child({ workload: key, workloadId: facts.workloadId }));
    signal.throwIfAborted();
    const applied = await this.executor.apply(aw, facts.workloadId, decision, log);
    if (applied.podCreated) this.expectedPods.set(key, facts.now.getTime());
    return { status: applied.status, requeueAfterMs: decision.requeueAfterMs };
  }

  private livePod(aw: Workload, signal: AbortSignal): Promise<Pod | undefined> {
    return this.client.resource<Pod>(PODS).find(aw.metadata.namespace, aw.metadata.name, signal);
  }

  private async liveClaims(aw: Workload, signal: AbortSignal): Promise<Map<string, Pvc>> {
    const client = this.client.resource<Pvc>(PVCS);
    const claims = new Map<string, Pvc>();
    for (const volume of aw.spec.volumes) {
      if (volume.kind !== 'Persistent') continue;
      const pvc = await client.find(aw.metadata.namespace, claimName(volume), signal);
      if (pvc) claims.set(claimName(volume), pvc);
    }
    return claims;
  }

  private factsOf(key: string, aw: Workload, pod: Pod | undefined): WorkloadFacts {
    const namespace = aw.metadata.namespace;
    const claims = new Map<string, Pvc>();
    for (const volume of aw.spec.volumes) {
      if (volume.kind !== 'Persistent') continue;
      const pvc = this.informers.pvcs.get(namespace, claimName(volume));
      if (pvc) claims.set(claimName(volume), pvc);
    }
    const secrets = new Map<string, Secret>();
    for (const name of ownSecretNames(aw)) {
      const secret = this.informers.secrets.get(namespace, name);
      if (secret) secrets.set(name, secret);
    }
    return {
      workload: aw,
      workloadId: this.informers.claimedIdOf(aw),
      pod,
      claims,
      secrets,
      runners: placingOnce(this.options.runners),
      now: this.now(),
      podAnnotationPrefixes: this.options.podAnnotationPrefixes ?? POD_ANNOTATION_PREFIXES,
      desiredPodHashes: this.desiredPodHashes,
      podMissingSince: this.podMissingSince.get(key),
      podExpectedSince: this.expectedPods.get(key),
    };
  }

  private remember(key: string, decision: Decision): void {
    if (decision.podMissingSince === null) this.podMissingSince.delete(key);
    else if (decision.podMissingSince) this.podMissingSince.set(key, decision.podMissingSince);
    if (decision.forgetExpectedPod) this.expectedPods.delete(key);
  }
}

/** The directory, but a reconcile that decides twice (after a lookup) places the workload once. */
function placingOnce(runners: RunnerDirectory): WorkloadFacts['runners'] {
  let placement: ReturnType<RunnerDirectory['place']> | undefined;
  return {
    place: (aw) => (placement ??= runners.place(aw)),
    settings: (name) => runners.settings(name),
    notReadySince: (name) => runners.notReadySince(name),
  };
}
