import type { Logger } from 'pino';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload, AgentWorkloadStatus, WorkloadPhase } from '../api/agentworkload.ts';
import { API_GROUP_VERSION, LABELS, MANAGED_BY_VALUE, WORKLOAD_FINALIZER } from '../api/common.ts';
import { jsonEqual } from '../api/conditions.ts';
import type { KubeClient, KubeObject, ResourceClient } from '../kube/client.ts';
import { Controller } from '../kube/controller.ts';
import { isAlreadyExists, isConflict, isInvalid, isNotFound } from '../kube/errors.ts';
import { Informer, objectKey } from '../kube/informer.ts';
import { EventRecorder } from '../kube/events.ts';
import { AGENT_WORKLOADS, PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { containerStatesFromPod } from './container-states.ts';
import { desiredStatus, type StatusFacts } from './desired-status.ts';
import { classifyWorkload } from './health.ts';
import { STATUS_PROGRESS_COALESCE_MS, coalesceWindowMs } from './status-coalescing.ts';
import { ACCESS_RECHECK_MS, AccessGate } from './access-gate.ts';
import { ensureClaims, VolumeAccessError } from './volume-access.ts';
import { claimedWorkloadId, claimKeys, WORKLOAD_ID_CLAIM_INDEX } from './identity.ts';
import {
  desiredPod as buildDesiredPod,
  POD_ANNOTATION_PREFIXES,
  POD_SPEC_HASH_ANNOTATION,
} from './desired-pod.ts';
import { inlineFilesSecretName, pullSecretName, WorkloadConfigError } from './pod-builder.ts';
import type { RunnerSettings } from './runner-settings.ts';
import type { RunnerDirectory, WorkloadStateSink } from './seams.ts';

export { WORKLOAD_FINALIZER };
/** Starting with nothing to report: the same text from the Pod's creation on, so no write. */
const STARTING_MESSAGE = 'Pod created; waiting for its containers';
/** A stopped workload with this annotation is deleted that many seconds after it stopped. */
export const TTL_AFTER_STOPPED_ANNOTATION = 'agyn.io/ttl-seconds-after-stopped';
export const TOUCHED_AT_ANNOTATION = 'agyn.io/touched-at';
/**
 * A workload Secret (labelled with a workload id, as the gRPC shim writes them) whose
 * workload does not exist this long after its creation is deleted: the start that wrote it
 * failed or its process died before the AgentWorkload was created (or was deleted before
 * adopting it). Longer than any StartWorkload takes between the two writes.
 */
export const ORPHAN_SECRET_GRACE_MS = 60_000;
export { STATUS_PROGRESS_COALESCE_MS };
/** Queue keys of Secrets to collect; `:` never appears in a namespace, so they never clash with workload keys. */
const SECRET_KEY_PREFIX = 'Secret:';
const SECRET_WORKLOAD_ID_INDEX = 'workloadId';

type Pod = IPod & KubeObject;
type Pvc = IPersistentVolumeClaim & KubeObject;
type Secret = ISecret & KubeObject;

export interface WorkloadControllerOptions {
  client: KubeClient;
  logger: Logger;
  runners: RunnerDirectory;
  /** Watch one namespace, or all when undefined. */
  namespace?: string;
  workers?: number;
  stateSink?: WorkloadStateSink;
  /** Shared informers (e.g. with the gRPC shim); created here when absent. */
  informers?: Partial<WorkloadInformers>;
  now?: () => Date;
  /** Default ORPHAN_SECRET_GRACE_MS. */
  orphanSecretGraceMs?: number;
  /** Overrides both coalescing windows (status-coalescing.ts). */
  statusCoalesceMs?: number;
  /** AgentWorkload annotation prefixes copied onto Pods (default POD_ANNOTATION_PREFIXES). */
  podAnnotationPrefixes?: readonly string[];
}

export interface WorkloadInformers {
  workloads: Informer<AgentWorkload & KubeObject>;
  pods: Informer<Pod>;
  pvcs: Informer<Pvc>;
  secrets: Informer<Secret>;
}

export function createWorkloadInformers(
  client: KubeClient,
  logger: Logger,
  namespace?: string,
): WorkloadInformers {
  const managed = `${LABELS.managedBy}=${MANAGED_BY_VALUE}`;
  return {
    workloads: new Informer(client.resource<AgentWorkload & KubeObject>(AGENT_WORKLOADS), {
      namespace,
      logger,
    }),
    pods: new Informer(client.resource<Pod>(PODS), { namespace, logger, labelSelector: managed }),
    pvcs: new Informer(client.resource<Pvc>(PVCS), { namespace, logger }),
    // Only Secrets made for a workload (labelled with a workload id) are cached.
    secrets: new Informer(client.resource<Secret>(SECRETS), {
      namespace,
      logger,
      labelSelector: LABELS.workloadId,
    }),
  };
}

function controllerOwner(obj: KubeObject): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find(
    (r) => r.controller && r.kind === 'AgentWorkload',
  );
  return ref && obj.metadata?.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

/** A Secret written for a workload (it carries the workload id) that no AgentWorkload owns yet. */
function unadoptedWorkloadSecret(secret: KubeObject): string | undefined {
  const id = secret.metadata?.labels?.[LABELS.workloadId];
  if (!id || secret.metadata?.ownerReferences?.some((r) => r.kind === 'AgentWorkload'))
    return undefined;
  return id;
}

/**
 * Materializes each AgentWorkload as a Pod (plus PVCs, adopted Secrets) and keeps its
 * status true. Level-based: every reconcile starts from the caches, never from memory,
 * except the moment a Pod was first seen missing.
 */
export class WorkloadController {
  readonly informers: WorkloadInformers;
  private controller?: Controller;
  private readonly client: KubeClient;
  private readonly logger: Logger;
  private readonly runners: RunnerDirectory;
  private readonly now: () => Date;
  private readonly workloads: ResourceClient<AgentWorkload & KubeObject>;
  private readonly pods: ResourceClient<Pod>;
  private readonly pvcs: ResourceClient<Pvc>;
  private readonly secrets: ResourceClient<Secret>;
  private readonly recorder: EventRecorder;
  private readonly access: AccessGate;
  private readonly podMissingSince = new Map<string, Date>();
  /** Pods created but not yet seen in the cache (controller-runtime's "expectations"). */
  private readonly expectedPods = new Map<string, number>();
  /**
   * What this controller wrote to a workload that its cache may not show yet: the
   * resourceVersions its writes superseded, and what they wrote. A reconcile that reads
   * one of those versions (a watch event still on its way) must not write it all again.
   */
  private readonly writtenAhead = new Map<string, WrittenAhead>();
  /** Since when a same-phase status change has waited to be written (see writeStatus). */
  private readonly progressSince = new Map<string, number>();
  private readonly stateSink?: WorkloadStateSink;

  constructor(private readonly options: WorkloadControllerOptions) {
    this.client = options.client;
    this.logger = options.logger.child({ controller: 'agentworkload' });
    this.runners = options.runners;
    this.now = options.now ?? (() => new Date());
    this.stateSink = options.stateSink;
    const created = createWorkloadInformers(options.client, this.logger, options.namespace);
    this.informers = { ...created, ...options.informers };
    this.workloads = this.client.resource(AGENT_WORKLOADS);
    this.pods = this.client.resource(PODS);
    this.pvcs = this.client.resource(PVCS);
    this.secrets = this.client.resource(SECRETS);
    this.recorder = new EventRecorder(this.client, this.logger);
    this.access = new AccessGate(this.informers.secrets, this.secrets, this.informers.pvcs);
    this.informers.workloads.addHandler({
      onAdd: (aw, initial) => this.enqueue(objectKey(aw), initial),
      onUpdate: (_old, aw) => this.enqueue(objectKey(aw)),
      onDelete: (aw) => {
        this.podMissingSince.delete(objectKey(aw));
        this.expectedPods.delete(objectKey(aw));
        this.writtenAhead.delete(objectKey(aw));
        this.progressSince.delete(objectKey(aw));
        // Secrets it never adopted are left behind: collect them.
        for (const secret of this.informers.secrets.byIndex(
          SECRET_WORKLOAD_ID_INDEX,
          this.idOf(aw),
        )) {
          this.enqueueSecret(secret);
        }
      },
    });
    this.informers.workloads.addIndex(WORKLOAD_ID_CLAIM_INDEX, claimKeys);
    this.informers.secrets.addIndex(SECRET_WORKLOAD_ID_INDEX, (s) => {
      const id = s.metadata?.labels?.[LABELS.workloadId];
      return id ? [id] : [];
    });
    this.informers.secrets.addHandler({
      onAdd: (secret, initial) => this.enqueueSecret(secret, initial),
      onUpdate: (_old, secret) => this.enqueueSecret(secret),
    });
    const enqueueOwner = (obj: KubeObject): void => {
      const owner = controllerOwner(obj);
      if (owner) this.enqueue(owner);
    };
    this.informers.pods.addHandler({
      onAdd: (pod, initial) => {
        const owner = controllerOwner(pod);
        if (!owner) return;
        this.expectedPods.delete(owner);
        this.enqueue(owner, initial);
      },
      onUpdate: (_old, pod) => enqueueOwner(pod),
      onDelete: (pod) => enqueueOwner(pod),
    });
    this.runners.onChange(() => {
      for (const aw of this.informers.workloads.list()) this.enqueue(objectKey(aw));
    });
  }

  /** The workload id this workload may use: unique in its namespace (src/workload/identity.ts). */
  private idOf(aw: AgentWorkload): string {
    return claimedWorkloadId(aw, (id) =>
      this.informers.workloads.byIndex(WORKLOAD_ID_CLAIM_INDEX, id),
    );
  }

  /** Starts the informers this controller created and waits for them to sync. */
  async startInformers(): Promise<void> {
    const all = [
      this.informers.workloads,
      this.informers.pods,
      this.informers.pvcs,
      this.informers.secrets,
    ];
    for (const informer of all) informer.start();
    await Promise.all(all.map((i) => i.waitForSync()));
  }

  hasSynced(): boolean {
    return [
      this.informers.workloads,
      this.informers.pods,
      this.informers.pvcs,
      this.informers.secrets,
    ].every((i) => i.hasSynced());
  }

  private enqueue(key: string, initial = false): void {
    this.controller?.enqueue(key, { initial });
  }

  private enqueueSecret(secret: Secret, initial = false): void {
    if (unadoptedWorkloadSecret(secret) !== undefined)
      this.enqueue(SECRET_KEY_PREFIX + objectKey(secret), initial);
  }

  /** Starts reconciling (e.g. on gaining leadership), beginning with everything in the cache. */
  start(): void {
    if (this.controller) return;
    this.controller = new Controller({
      name: 'agentworkload',
      workers: this.options.workers ?? 16,
      logger: this.logger,
      reconcile: (key) => this.reconcile(key),
    });
    this.controller.start();
    for (const aw of this.informers.workloads.list()) this.enqueue(objectKey(aw), true);
    for (const secret of this.informers.secrets.list()) this.enqueueSecret(secret, true);
  }

  /** Stops reconciling at once (e.g. on losing leadership); start() may follow. */
  async stop(): Promise<void> {
    const controller = this.controller;
    this.controller = undefined;
    await controller?.stop();
  }

  get running(): boolean {
    return this.controller !== undefined;
  }

  async stopInformers(): Promise<void> {
    await Promise.all(
      [
        this.informers.workloads,
        this.informers.pods,
        this.informers.pvcs,
        this.informers.secrets,
      ].map((i) => i.stop()),
    );
  }

  get queue() {
    return this.controller?.queue;
  }

  private async reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    if (key.startsWith(SECRET_KEY_PREFIX))
      return this.collectOrphanSecret(key.slice(SECRET_KEY_PREFIX.length));
    let aw = this.informers.workloads.getByKey(key);
    if (!aw) return;
    const namespace = aw.metadata.namespace ?? '';
    const podName = aw.metadata.name;
    const pod = this.informers.pods.get(namespace, podName);

    if (aw.metadata.deletionTimestamp) return this.finalize(aw, pod);
    const ahead = this.writtenAheadOf(key, aw);
    // The status this controller last wrote is newer than the cached one.
    if (ahead?.status) aw = { ...aw, status: ahead.status };
    // The finalizer is added while the Pod and its volumes are created, not before: they are
    // owned by the workload, so should it be deleted before the finalizer lands, the garbage
    // collector removes them; a failed patch fails this reconcile, which is retried.
    const finalizerAdded =
      aw.metadata.finalizers?.includes(WORKLOAD_FINALIZER) || ahead?.finalizer
        ? undefined
        : this.addFinalizer(key, aw);
    // Awaited below; handled now so that a failure while observe() runs is no unhandled rejection.
    finalizerAdded?.catch(() => undefined);
    const log = this.logger.child({ workload: key, workloadId: this.idOf(aw) });
    let facts: { status: StatusFacts; requeueAfterMs?: number };
    try {
      // Secrets are adopted whatever the phase (a workload stopped before its Pod was
      // created has Secrets too), so that they go with it.
      [facts] = await Promise.all([this.observe(aw, pod, log), this.adoptSecrets(aw)]);
    } catch (err) {
      await finalizerAdded?.catch(() => undefined);
      throw err;
    }
    // Carry on with the patched object: a round trip through the queue costs more.
    if (finalizerAdded) {
      const patched = await finalizerAdded;
      aw = ahead?.status ? { ...patched, status: ahead.status } : patched;
    }
    const deferredMs = await this.writeStatus(key, aw, facts.status);
    const requeueAfterMs = Math.min(facts.requeueAfterMs ?? Infinity, deferredMs ?? Infinity);
    if (requeueAfterMs !== Infinity) return { requeueAfterMs: Math.max(10, requeueAfterMs) };
  }

  /** What was written ahead of `aw` if the cache still shows a version those writes superseded. */
  private writtenAheadOf(key: string, aw: AgentWorkload & KubeObject): WrittenAhead | undefined {
    const ahead = this.writtenAhead.get(key);
    if (ahead && ahead.superseded.includes(aw.metadata.resourceVersion ?? '')) return ahead;
    // The cache has caught up (or the object changed otherwise): it is the truth again.
    this.writtenAhead.delete(key);
    return undefined;
  }

  /** `from`: the version the write was based on; `result`: the version it produced. */
  private noteWrite(
    key: string,
    from: KubeObject,
    result: KubeObject,
    wrote: Pick<WrittenAhead, 'finalizer' | 'status'>,
  ): void {
    const ahead = this.writtenAhead.get(key) ?? { superseded: [] };
    // Every version before the newest one this controller produced is out of date.
    const outdated = [from.metadata?.resourceVersion, ahead.produced].filter(
      (v): v is string => v !== undefined && v !== result.metadata?.resourceVersion,
    );
    ahead.superseded = [...new Set([...ahead.superseded, ...outdated])].slice(-8);
    ahead.produced = result.metadata?.resourceVersion;
    Object.assign(ahead, wrote);
    this.writtenAhead.set(key, ahead);
  }

  private async addFinalizer(
    key: string,
    aw: AgentWorkload & KubeObject,
  ): Promise<AgentWorkload & KubeObject> {
    const patched = await this.workloads.mergePatch(aw.metadata.namespace, aw.metadata.name, {
      metadata: {
        finalizers: [...(aw.metadata.finalizers ?? []), WORKLOAD_FINALIZER],
        resourceVersion: aw.metadata.resourceVersion,
      },
    });
    delete patched.metadata.managedFields;
    this.noteWrite(key, aw, patched, { finalizer: true });
    return patched;
  }

  private async observe(
    aw: AgentWorkload & KubeObject,
    pod: Pod | undefined,
    log: Logger,
  ): Promise<{ status: StatusFacts; requeueAfterMs?: number }> {
    const key = objectKey(aw);
    const now = this.now();
    const current = aw.status ?? {};
    const sameGeneration = current.observedGeneration === aw.metadata.generation;
    const base: StatusFacts = {
      phase: current.phase ?? 'Pending',
      podName: aw.metadata.name,
      workloadId: this.idOf(aw),
      runner: current.runner ?? pod?.metadata?.labels?.[LABELS.runner] ?? undefined,
      startTime: current.startTime,
      containers: current.containers,
      reason: current.reason,
      message: current.message,
    };
    const podAlive = pod && !pod.metadata?.deletionTimestamp ? pod : undefined;

    if (aw.spec.stopped) {
      this.podMissingSince.delete(key);
      if (pod) {
        if (!pod.metadata?.deletionTimestamp) await this.deleteIgnoringMissing(this.pods, pod);
        return {
          status: {
            ...base,
            phase: 'Stopping',
            reason: undefined,
            message: 'deleting the Pod',
            startTime: undefined,
          },
        };
      }
      const expiresInMs = this.stoppedTtlLeftMs(aw, now);
      if (expiresInMs !== undefined && expiresInMs <= 0) {
        log.info('stopped longer than its TTL; deleting the workload');
        await this.deleteIgnoringMissing(this.workloads, aw);
      }
      return {
        status: {
          ...base,
          phase: 'Stopped',
          reason: undefined,
          message: 'stopped',
          containers: undefined,
          startTime: undefined,
        },
        requeueAfterMs: expiresInMs !== undefined && expiresInMs > 0 ? expiresInMs : undefined,
      };
    }

    // Failed and completed workloads stay so until their spec changes.
    if (sameGeneration && (current.phase === 'Failed' || current.phase === 'Stopped')) {
      if (podAlive) base.containers = containerStatesFromPod(podAlive, aw.spec);
      return { status: base };
    }

    // Placement: once a runner is chosen it never changes while the Pod exists.
    let runner: RunnerSettings | undefined;
    if (base.runner !== undefined) {
      runner = this.runners.settings(base.runner);
    } else {
      const decision = this.runners.place(aw);
      if (!decision.placed) {
        return {
          status: {
            ...base,
            phase: 'Pending',
            reason: undefined,
            message: decision.message,
            placed: {
              ok: false,
              reason: `No${capitalize(decision.filter)}Match`,
              message: decision.message,
            },
          },
        };
      }
      runner = decision.runner;
      base.runner = runner.name;
    }
    const placed = {
      ok: true,
      reason: 'Placed',
      message: `placed on Runner ${JSON.stringify(base.runner)}`,
    };

    // A runner that stopped being Ready takes its workloads with it after the grace.
    if (base.runner) {
      const since = this.runners.notReadySince(base.runner);
      const graceMs = (runner?.health.runtimeLostGraceSeconds ?? 30) * 1000;
      if (since && (current.phase === 'Running' || current.phase === 'Starting' || podAlive)) {
        const left = since.getTime() + graceMs - now.getTime();
        if (left <= 0) {
          return {
            status: {
              ...base,
              placed,
              phase: 'Failed',
              reason: 'runtime_lost',
              message: `Runner ${JSON.stringify(base.runner)} not Ready since ${since.toISOString()}`,
            },
          };
        }
        if (!runner) return { status: { ...base, placed }, requeueAfterMs: left };
      }
    }
    if (!runner) {
      return {
        status: {
          ...base,
          placed,
          phase: 'Pending',
          message: `Runner ${JSON.stringify(base.runner)} does not exist`,
        },
      };
    }

    let desiredPod: IPod;
    try {
      desiredPod = buildDesiredPod(
        aw,
        runner,
        this.idOf(aw),
        this.options.podAnnotationPrefixes ?? POD_ANNOTATION_PREFIXES,
      );
    } catch (err) {
      if (err instanceof WorkloadConfigError) {
        return {
          status: {
            ...base,
            placed,
            phase: 'Failed',
            reason: 'config_invalid',
            message: `${err.message} (${err.field})`,
          },
        };
      }
      throw err;
    }
    const specHash = desiredPod.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION];

    if (pod && !isOwnedBy(pod, aw)) {
      return {
        status: {
          ...base,
          placed,
          phase: 'Failed',
          reason: 'config_invalid',
          message: `Pod ${JSON.stringify(pod.metadata?.name)} exists and belongs to another owner`,
        },
      };
    }

    const expectedSince = this.expectedPods.get(key);
    if (!pod && expectedSince !== undefined && now.getTime() - expectedSince < 30_000) {
      return { status: base, requeueAfterMs: 1_000 };
    }
    this.expectedPods.delete(key);

    if (!podAlive) {
      const wasStarted = current.phase === 'Running' || current.phase === 'Starting';
      const lostPodExisted = wasStarted && current.startTime !== undefined && sameGeneration;
      if (lostPodExisted || pod) {
        // The Pod vanished (or is being deleted) behind our back while it should run.
        const since =
          this.podMissingSince.get(key) ??
          (pod?.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp) : now);
        this.podMissingSince.set(key, since);
        const verdict = classifyWorkload({
          containers: current.containers ?? [],
          podExists: false,
          podMissingSince: since,
          startTime: new Date(current.startTime ?? now.toISOString()),
          now,
          thresholds: runner.health,
          restartPolicy: aw.spec.restartPolicy,
          wasRunning: current.phase === 'Running',
        });
        if (verdict.phase === 'Failed') this.podMissingSince.delete(key);
        // A cache whose watch is down misses Pods created meanwhile: only the API server may say it is lost.
        if (verdict.phase === 'Failed' && !pod && (await this.podExistsLive(aw))) {
          return { status: base, requeueAfterMs: 1_000 };
        }
        return {
          status: {
            ...base,
            placed,
            phase: verdict.phase,
            reason: verdict.reason,
            message: verdict.message,
          },
          requeueAfterMs: verdict.recheckAfterMs,
        };
      }
      this.podMissingSince.delete(key);
      const blocked = await this.access.check(aw, this.idOf(aw));
      if (blocked) {
        const requeueAfterMs = blocked.phase === 'Pending' ? ACCESS_RECHECK_MS : undefined;
        return { status: { ...base, placed, ...blocked }, requeueAfterMs };
      }
      // The Pod and its claims together: the scheduler waits for a claim created a moment later.
      const [volumes, created] = await Promise.allSettled([
        this.ensureVolumes(aw, runner),
        this.pods.create(aw.metadata.namespace, desiredPod as Pod),
      ]);
      const failures = [volumes, created]
        .filter((r) => r.status === 'rejected')
        .map((r) => (r as PromiseRejectedResult).reason as unknown)
        .filter((err) => !isAlreadyExists(err));
      const invalid = failures.find((e) => isInvalid(e) || e instanceof VolumeAccessError);
      if (invalid) {
        // What the CRD schema cannot express (an env name with "=", duplicate mount paths,
        // a nameserver that is no IP address...) the API server refuses on the Pod or PVC:
        // that is final for this generation, not a reason to retry forever. A Pod that was
        // created beside a refused claim could never start.
        if (created.status === 'fulfilled')
          await this.deleteIgnoringMissing(this.pods, created.value);
        const message =
          invalid instanceof VolumeAccessError
            ? invalid.message
            : `the API server refused the workload's objects: ${(invalid as Error).message}`;
        return {
          status: { ...base, placed, phase: 'Failed', reason: 'config_invalid', message },
        };
      }
      if (failures.length > 0) throw failures[0];
      if (created.status === 'fulfilled') {
        if (!this.informers.pods.get(aw.metadata.namespace, aw.metadata.name))
          this.expectedPods.set(key, now.getTime());
        log.info({ pod: aw.metadata.name, runner: runner.name }, 'created Pod');
      }
      return {
        status: {
          ...base,
          placed,
          phase: 'Starting',
          reason: undefined,
          message: STARTING_MESSAGE,
          startTime: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
          // What the new Pod shows (every container waiting), so that its arrival in the
          // cache is no change to write.
          containers: containerStatesFromPod(
            created.status === 'fulfilled' ? created.value : desiredPod,
            aw.spec,
          ),
        },
        requeueAfterMs: runner.health.startGraceSeconds * 1000,
      };
    }

    this.podMissingSince.delete(key);
    // A claim whose creation failed beside its Pod's (or was deleted since) is created
    // again while the Pod waits for it: unscheduled.
    if (!podAlive.spec?.nodeName) await this.ensureVolumes(aw, runner);
    if (podAlive.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION] !== specHash) {
      log.info({ pod: podAlive.metadata?.name }, 'spec changed; replacing the Pod');
      await this.deleteIgnoringMissing(this.pods, podAlive);
      return {
        status: {
          ...base,
          placed,
          phase: 'Starting',
          reason: undefined,
          message: 'replacing the Pod after a spec change',
          startTime: undefined,
          containers: undefined,
        },
      };
    }

    const containers = containerStatesFromPod(podAlive, aw.spec);
    const startTime = base.startTime ?? podAlive.metadata?.creationTimestamp ?? now.toISOString();
    const scheduled = podAlive.status?.conditions?.find((c) => c.type === 'PodScheduled');
    const verdict = classifyWorkload({
      containers,
      podPhase: podAlive.status?.phase,
      podReason:
        podAlive.status?.reason ?? (scheduled?.status === 'False' ? scheduled.reason : undefined),
      podMessage:
        podAlive.status?.message ?? (scheduled?.status === 'False' ? scheduled.message : undefined),
      podExists: true,
      startTime: new Date(startTime),
      now,
      thresholds: runner.health,
      restartPolicy: aw.spec.restartPolicy,
      wasRunning: current.phase === 'Running',
    });
    return {
      status: {
        ...base,
        placed,
        phase: verdict.phase,
        reason: verdict.reason,
        message:
          verdict.message ??
          (verdict.phase === 'Running' ? 'all containers running' : STARTING_MESSAGE),
        startTime,
        containers,
      },
      requeueAfterMs: verdict.recheckAfterMs,
    };
  }

  private stoppedTtlLeftMs(aw: AgentWorkload, now: Date): number | undefined {
    const ttl = Number(aw.metadata.annotations?.[TTL_AFTER_STOPPED_ANNOTATION]);
    if (!Number.isFinite(ttl) || ttl < 0 || aw.status?.phase !== 'Stopped') return undefined;
    const settled = aw.status.conditions?.find(
      (c) => c.type === 'Reconciling' && c.status === 'False',
    );
    if (!settled) return undefined;
    return new Date(settled.lastTransitionTime).getTime() + ttl * 1000 - now.getTime();
  }

  private ensureVolumes(aw: AgentWorkload & KubeObject, runner: RunnerSettings): Promise<void> {
    const input = { workload: aw, workloadId: this.idOf(aw), podName: aw.metadata.name, runner };
    return ensureClaims(input, this.informers.pvcs, this.pvcs);
  }

  /**
   * Secrets the shim created for this workload become owned by it (garbage-collected with
   * it): only those named after the AgentWorkload itself and labelled with its id.
   */
  private async adoptSecrets(aw: AgentWorkload & KubeObject): Promise<void> {
    for (const name of ownSecretNames(aw)) {
      const secret = this.informers.secrets.get(aw.metadata.namespace, name);
      if (!secret || secret.metadata?.labels?.[LABELS.workloadId] !== this.idOf(aw)) continue;
      if (secret.metadata?.ownerReferences?.some((r) => r.uid === aw.metadata.uid)) continue;
      try {
        await this.secrets.mergePatch(aw.metadata.namespace, name, {
          metadata: {
            ownerReferences: [...(secret.metadata?.ownerReferences ?? []), ownerReference(aw)],
            resourceVersion: secret.metadata?.resourceVersion,
          },
        });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
  }

  /** Deletes a workload Secret whose workload does not exist, once it is older than the grace. */
  private async collectOrphanSecret(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const secret = this.informers.secrets.getByKey(key);
    const id = secret ? unadoptedWorkloadSecret(secret) : undefined;
    if (!secret || id === undefined || secret.metadata?.deletionTimestamp) return;
    const namespace = secret.metadata?.namespace;
    // Its workload exists: that adopts it (or deletes it when it goes). The shim names its
    // Secrets after the workload, so look there first.
    const name = secret.metadata?.name ?? '';
    const workloadNames = [pullSecretName(''), inlineFilesSecretName('')]
      .filter((suffix) => name.endsWith(suffix))
      .map((suffix) => name.slice(0, -suffix.length));
    const named = workloadNames.map((n) => this.informers.workloads.get(namespace, n));
    const mine = (aw: (AgentWorkload & KubeObject) | undefined): aw is AgentWorkload & KubeObject =>
      aw !== undefined && aw.metadata.namespace === namespace && this.idOf(aw) === id;
    const owner = named.find(mine) ?? this.informers.workloads.list().find(mine);
    if (owner) {
      // The Secret may reach the cache after its workload was reconciled: adopt it now.
      this.enqueue(objectKey(owner));
      return;
    }
    const grace = this.options.orphanSecretGraceMs ?? ORPHAN_SECRET_GRACE_MS;
    const createdAt = Date.parse(secret.metadata?.creationTimestamp ?? '');
    const left =
      (Number.isNaN(createdAt) ? this.now().getTime() : createdAt) + grace - this.now().getTime();
    if (left > 0) return { requeueAfterMs: left };
    // Only the shim's own Secrets are collected; one a user labelled for a workload stays.
    if (secret.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE) return;
    // A cache whose watch is down misses workloads: only the API server may say it does not exist.
    for (const workloadName of workloadNames) {
      const live = await this.workloads.get(namespace, workloadName).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (live && this.idOf(live) === id) return { requeueAfterMs: 1_000 };
    }
    await this.deleteIgnoringMissing(this.secrets, secret);
    this.logger.info(
      { secret: key, workloadId: id },
      'deleted a Secret whose workload does not exist',
    );
  }

  private async finalize(aw: AgentWorkload & KubeObject, pod: Pod | undefined): Promise<void> {
    if (!aw.metadata.finalizers?.includes(WORKLOAD_FINALIZER)) return;
    if (pod && isOwnedBy(pod, aw) && !pod.metadata?.deletionTimestamp)
      await this.deleteIgnoringMissing(this.pods, pod);
    const id = this.idOf(aw);
    for (const secret of this.informers.secrets.list()) {
      if (secret.metadata?.namespace !== aw.metadata.namespace) continue;
      // Its own Secrets, adopted or not yet (a workload deleted before its Pod was created).
      const named = ownSecretNames(aw).includes(secret.metadata?.name ?? '');
      if (isOwnedBy(secret, aw) || (named && unadoptedWorkloadSecret(secret) === id)) {
        await this.deleteIgnoringMissing(this.secrets, secret);
      }
    }
    if (aw.spec.deleteVolumesWithWorkload) {
      for (const pvc of this.informers.pvcs.list()) {
        if (pvc.metadata?.namespace === aw.metadata.namespace && isOwnedBy(pvc, aw)) {
          await this.deleteIgnoringMissing(this.pvcs, pvc);
        }
      }
    }
    try {
      await this.workloads.mergePatch(aw.metadata.namespace, aw.metadata.name, {
        metadata: {
          finalizers: aw.metadata.finalizers.filter((f) => f !== WORKLOAD_FINALIZER),
          resourceVersion: aw.metadata.resourceVersion,
        },
      });
    } catch (err) {
      // A stale cache entry of a workload an earlier reconcile already finalized: it is gone.
      if (!isNotFound(err)) throw err;
    }
    this.podMissingSince.delete(objectKey(aw));
  }

  /**
   * Writes the status unless it is unchanged. A change that may coalesce (container states
   * while a Pod starts, a first Starting: coalesceWindowMs) waits for the next one, so a Pod
   * that starts quickly costs one status write, not one per step; returns that wait.
   */
  private async writeStatus(
    key: string,
    aw: AgentWorkload & KubeObject,
    facts: StatusFacts,
  ): Promise<number | undefined> {
    const now = this.now();
    const next = desiredStatus(aw, facts, now);
    const touchedAt = aw.metadata.annotations?.[TOUCHED_AT_ANNOTATION];
    if (touchedAt) next.lastActivityTime = touchedAt;
    const previous = aw.status ?? {};
    if (jsonEqual(previous, next)) {
      this.progressSince.delete(key);
      return undefined;
    }
    const window = coalesceWindowMs(previous, next, this.options.statusCoalesceMs);
    if (window > 0) {
      const since = this.progressSince.get(key) ?? now.getTime();
      this.progressSince.set(key, since);
      const leftMs = since + window - now.getTime();
      if (leftMs > 0) return leftMs;
    }
    this.progressSince.delete(key);

    const patch: Record<string, unknown> = { ...next };
    for (const field of Object.keys(previous)) if (!(field in next)) patch[field] = null;
    // Pinned to the version the status was computed from: a stale writer (a deposed leader) gets a conflict.
    const resourceVersion = this.writtenAhead.get(key)?.produced ?? aw.metadata.resourceVersion;
    const written = await this.workloads.mergePatch(
      aw.metadata.namespace,
      aw.metadata.name,
      { metadata: { resourceVersion }, status: patch },
      'status',
    );
    this.noteWrite(key, aw, written, { status: next });
    if (previous.phase !== next.phase || previous.reason !== next.reason) {
      this.recordEvent(aw, next);
    }
    if (previous.phase !== next.phase || !jsonEqual(previous.containers, next.containers)) {
      this.stateSink?.workloadChanged(aw, next);
    }
    return undefined;
  }

  private async podExistsLive(aw: AgentWorkload & KubeObject): Promise<boolean> {
    try {
      const live = await this.pods.get(aw.metadata.namespace, aw.metadata.name);
      return !live.metadata?.deletionTimestamp;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private recordEvent(aw: AgentWorkload & KubeObject, status: AgentWorkloadStatus): void {
    const phase = status.phase as WorkloadPhase;
    const warning = phase === 'Failed';
    this.recorder.record(
      { apiVersion: API_GROUP_VERSION, kind: 'AgentWorkload', metadata: aw.metadata },
      warning ? 'Warning' : 'Normal',
      warning ? (status.reason ?? 'Failed') : phase,
      status.message ?? phase,
      this.now(),
    );
  }

  private async deleteIgnoringMissing(
    resource: ResourceClient<KubeObject>,
    obj: KubeObject,
  ): Promise<void> {
    try {
      await resource.delete(obj.metadata?.namespace, obj.metadata?.name ?? '', {
        preconditions: { uid: obj.metadata?.uid },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
}

interface WrittenAhead {
  /** resourceVersions of this workload that our own writes replaced (the last few). */
  superseded: string[];
  /** The resourceVersion our latest write produced. */
  produced?: string;
  finalizer?: boolean;
  /** The status last written. */
  status?: AgentWorkloadStatus;
}

/** The names of the Secrets the shim writes for a workload: named after the AgentWorkload. */
function ownSecretNames(aw: AgentWorkload): string[] {
  return [pullSecretName(aw.metadata.name), inlineFilesSecretName(aw.metadata.name)];
}

function isOwnedBy(obj: KubeObject, aw: AgentWorkload): boolean {
  return obj.metadata?.ownerReferences?.some((r) => r.uid === aw.metadata.uid) ?? false;
}

function ownerReference(aw: AgentWorkload) {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: 'AgentWorkload',
    name: aw.metadata.name,
    uid: aw.metadata.uid ?? '',
    controller: false,
    blockOwnerDeletion: true,
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
