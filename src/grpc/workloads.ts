import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { KubeApiError, isAlreadyExists, isConflict, isNotFound } from '../kube/errors.ts';
import { AGENT_WORKLOADS, PODS, PVCS, SECRETS } from '../kube/resources.ts';
import { inlineFilesSecretName, pullSecretName } from '../workload/pod-builder.ts';
import type {
  FindWorkloadsByLabelsRequest,
  FindWorkloadsByLabelsResponse,
  GetWorkloadLabelsRequest,
  GetWorkloadLabelsResponse,
  InspectWorkloadRequest,
  InspectWorkloadResponse,
  ListWorkloadsResponse,
  ReadyResponse,
  RemoveWorkloadRequest,
  RemoveWorkloadResponse,
  StartWorkloadRequest,
  StartWorkloadResponse,
  StopWorkloadRequest,
  StopWorkloadResponse,
  TouchWorkloadRequest,
  TouchWorkloadResponse,
  WorkloadListItem,
} from '../gen/agynio/api/runner/v1/runner.ts';
import {
  INDEX_CLAIM,
  INDEX_WORKLOAD_ID,
  claimNamesOfWorkload,
  podNameOf,
  workloadIdOf,
  type Pod,
  type Pvc,
  type Workload,
} from './caches.ts';
import { RpcError, invalidArgument, mapKubeError, resourceNotFound } from './errors.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { grantVolumes } from './volume-grants.ts';
import {
  TOUCHED_AT_ANNOTATION,
  effectiveLabels,
  inspectResponse,
  livePod,
  podNameFor,
  translateStartRequest,
  workloadStatusOf,
  type Secret,
} from './translate.ts';

const WORKLOAD_KEY_LABEL = 'workload_key';
/** How long StartWorkload waits for its AgentWorkload to reach the cache (read-your-writes). */
const CACHE_CATCH_UP_MS = 2_000;
/** StopWorkload without timeout_sec waits up to the Pod default grace period and a margin. */
const DEFAULT_STOP_WAIT_SEC = 30;
const STOP_WAIT_MARGIN_MS = 5_000;
/** Time kept back from a client's deadline so the answer still reaches it. */
const DEADLINE_RESERVE_MS = 1_000;

export function requireWorkloadId(raw: string): string {
  const id = raw.trim();
  if (id === '') throw invalidArgument('workload_id_required');
  return id;
}

/**
 * The AgentWorkload a workload id names: `workload-<id>` (as the shim names them), else
 * one whose workload id (spec, status or uid) is `id`.
 */
export function findWorkload(shim: ShimContext, id: string): Workload | undefined {
  // Only a workload whose id is `id` (as recorded by the controller once it has checked it is
  // unique); one the controller verified wins over one it has not seen yet.
  const byName = shim.caches.workload(podNameFor(id));
  const matches = [byName, ...shim.caches.workloads.byIndex(INDEX_WORKLOAD_ID, id)].filter(
    (w): w is Workload => w !== undefined && workloadIdOf(w) === id,
  );
  return matches.find((w) => w.status?.workloadId === id) ?? matches[0];
}

export function resolveWorkload(shim: ShimContext, rawId: string): Workload {
  const id = requireWorkloadId(rawId);
  const workload = findWorkload(shim, id);
  if (!workload) throw resourceNotFound('agentworkloads.agyn.io', podNameFor(id));
  return workload;
}

export function podOf(shim: ShimContext, workload: Workload): Pod | undefined {
  return shim.caches.pod(podNameOf(workload));
}

function remainingMs(ctx: CallContext, wanted: number): number {
  return Math.max(0, Math.min(wanted, ctx.deadline - Date.now() - DEADLINE_RESERVE_MS));
}

async function ignoreMissing(promise: Promise<unknown>): Promise<void> {
  try {
    await promise;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** A Kubernetes answer that says the request was not carried out (not a lost connection, a timeout or a server failure). */
function isDefinite(err: unknown): boolean {
  return (
    err instanceof KubeApiError &&
    err.statusCode >= 400 &&
    err.statusCode < 500 &&
    err.statusCode !== 408 &&
    err.statusCode !== 429
  );
}

export function ready(): Promise<ReadyResponse> {
  return Promise.resolve({ status: 'ok' });
}

export async function startWorkload(
  shim: ShimContext,
  req: StartWorkloadRequest,
  ctx: CallContext,
): Promise<StartWorkloadResponse> {
  const plan = translateStartRequest(req, {
    namespace: shim.namespace,
    runnerName: shim.runnerName,
    newId: randomUUID,
  });
  if (shim.caches.workload(plan.podName)) {
    throw new RpcError(
      status.ALREADY_EXISTS,
      `resource already exists: agentworkloads.agyn.io ${JSON.stringify(plan.podName)} already exists`,
    );
  }

  const secrets = shim.kube.resource<Secret>(SECRETS);
  const created: string[] = [];
  const cleanUp = async (): Promise<void> => {
    for (const name of created) {
      try {
        await secrets.delete(shim.namespace, name);
      } catch (err) {
        if (!isNotFound(err))
          ctx.logger.warn({ err, secret: name }, 'could not delete a Secret of a failed start');
      }
    }
  };

  const workloads = shim.kube.resource<Workload>(AGENT_WORKLOADS);
  /** The AgentWorkload as the API server has it; 'unknown' when it cannot tell. */
  const liveWorkload = async (): Promise<Workload | undefined | 'unknown'> => {
    try {
      return await workloads.get(shim.namespace, plan.podName);
    } catch (err) {
      return isNotFound(err) ? undefined : 'unknown';
    }
  };
  /**
   * A Secret left by an earlier start of this workload that failed before its AgentWorkload
   * existed (this workload's labels, no owner, no AgentWorkload) is replaced; any other
   * existing Secret is ALREADY_EXISTS.
   */
  const createSecret = async (secret: Secret): Promise<void> => {
    try {
      await secrets.create(shim.namespace, secret);
      return;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const existing = await secrets
        .get(shim.namespace, secret.metadata.name)
        .catch(() => undefined);
      const labels = existing?.metadata?.labels ?? {};
      const leftover =
        labels[LABELS.managedBy] === MANAGED_BY_VALUE &&
        labels[LABELS.workloadId] === plan.workloadId &&
        (existing?.metadata?.ownerReferences ?? []).length === 0;
      if (!leftover || (await liveWorkload()) !== undefined) throw err;
      await secrets.delete(shim.namespace, secret.metadata.name, {
        preconditions: { uid: existing?.metadata?.uid },
      });
      await secrets.create(shim.namespace, secret);
    }
  };

  let workload: Workload;
  try {
    for (const secret of plan.secrets) {
      await createSecret(secret);
      created.push(secret.metadata.name);
    }
    await grantVolumes(shim, plan, remainingMs(ctx, CACHE_CATCH_UP_MS));
    workload = await workloads.create(shim.namespace, plan.workload as Workload);
  } catch (err) {
    // Without a definite answer the API server may have created the AgentWorkload: its
    // Secrets must then stay. When that cannot be told, they stay too (the workload
    // controller deletes them if the workload never appears).
    const found = created.length > 0 && !isDefinite(err) ? await liveWorkload() : undefined;
    if (found === 'unknown') throw err;
    if (found === undefined || workloadIdOf(found) !== plan.workloadId) {
      await cleanUp();
      throw err;
    }
    workload = found;
  }
  ctx.logger.info({ workloadId: plan.workloadId }, 'created AgentWorkload');

  await shim.caches.waitFor(
    'workloads',
    plan.podName,
    (w) => w !== undefined,
    remainingMs(ctx, CACHE_CATCH_UP_MS),
  );
  const current = shim.caches.workload(plan.podName) ?? workload;
  const { status: workloadStatus, failure } = workloadStatusOf(current);
  const response: StartWorkloadResponse = {
    id: plan.workloadId,
    containers: { main: plan.podName, sidecars: plan.sidecars },
    status: workloadStatus,
  };
  if (failure) response.failure = failure;
  return response;
}

export async function stopWorkload(
  shim: ShimContext,
  req: StopWorkloadRequest,
  ctx: CallContext,
): Promise<StopWorkloadResponse> {
  const workload = resolveWorkload(shim, req.workloadId);
  const name = workload.metadata.name;
  if (!workload.spec.stopped) {
    await shim.kube
      .resource<Workload>(AGENT_WORKLOADS)
      .mergePatch(shim.namespace, name, { spec: { stopped: true } });
  }
  const podName = podNameOf(workload);
  const pod = shim.caches.pod(podName);
  if (pod && req.timeoutSec > 0) {
    // The controller deletes the Pod with its default grace; timeout_sec shortens it as upstream does.
    try {
      await shim.kube.resource<Pod>(PODS).delete(shim.namespace, podName, {
        gracePeriodSeconds: req.timeoutSec,
        preconditions: { uid: pod.metadata?.uid },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
  const waitSec = req.timeoutSec > 0 ? req.timeoutSec : DEFAULT_STOP_WAIT_SEC;
  const gone = await shim.caches.waitFor(
    'pods',
    podName,
    (p) => p === undefined,
    remainingMs(ctx, waitSec * 1000 + STOP_WAIT_MARGIN_MS),
    ctx.signal,
  );
  if (!gone && !ctx.signal.aborted) {
    ctx.logger.warn({ pod: podName }, 'Pod still terminating when StopWorkload returned');
  }
  return {};
}

export async function removeWorkload(
  shim: ShimContext,
  req: RemoveWorkloadRequest,
  ctx: CallContext,
): Promise<RemoveWorkloadResponse> {
  const workload = resolveWorkload(shim, req.workloadId);
  const name = workload.metadata.name;
  const podName = podNameOf(workload);
  const claims = claimNamesOfWorkload(workload);

  await ignoreMissing(
    shim.kube
      .resource<Workload>(AGENT_WORKLOADS)
      .delete(shim.namespace, name, { propagationPolicy: 'Background' }),
  );
  if (req.force) {
    await ignoreMissing(
      shim.kube.resource<Pod>(PODS).delete(shim.namespace, podName, { gracePeriodSeconds: 0 }),
    );
  }
  // Owned Secrets go with the CR; these two may not be adopted yet when Remove follows Start closely.
  const ownSecrets = [pullSecretName(podName), inlineFilesSecretName(podName)].filter(
    (s) =>
      s === workload.spec.imagePullSecretRef?.name ||
      s === workload.spec.inlineFiles?.secretRef.name,
  );
  for (const secret of ownSecrets) {
    try {
      await shim.kube.resource(SECRETS).delete(shim.namespace, secret);
    } catch (err) {
      if (!isNotFound(err)) ctx.logger.warn({ err, secret }, 'could not delete a workload Secret');
    }
  }

  if (req.removeVolumes) {
    const id = workloadIdOf(workload);
    for (const claim of claims) {
      const skip = volumeRemovalBlocker(shim, claim, id);
      if (skip) {
        ctx.logger.info({ pvc: claim, reason: skip }, 'kept a volume of a removed workload');
        continue;
      }
      try {
        await shim.kube.resource<Pvc>(PVCS).delete(shim.namespace, claim);
      } catch (err) {
        if (isNotFound(err)) continue;
        const detail = err instanceof KubeApiError ? mapKubeError(err).message : String(err);
        throw new RpcError(status.INTERNAL, `pvc_cleanup_failed: ${claim}: ${detail}`);
      }
    }
  }
  return {};
}

/**
 * Why a PVC of a removed workload is kept: unlike upstream, volumes the operator did not
 * create, and volumes another workload still uses, are never deleted.
 */
function volumeRemovalBlocker(
  shim: ShimContext,
  claim: string,
  workloadId: string,
): string | undefined {
  const pvc = shim.caches.pvc(claim);
  if (pvc && pvc.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY_VALUE)
    return 'not created by the operator';
  const otherPod = shim.caches.pods
    .byIndex(INDEX_CLAIM, claim)
    .find(
      (p) =>
        p.metadata?.labels?.[LABELS.workloadId] !== workloadId && !p.metadata?.deletionTimestamp,
    );
  if (otherPod) return `mounted by Pod ${otherPod.metadata?.name}`;
  const otherWorkload = shim.caches.workloads
    .byIndex(INDEX_CLAIM, claim)
    .find(
      (w) => workloadIdOf(w) !== workloadId && !w.spec.stopped && !w.metadata.deletionTimestamp,
    );
  if (otherWorkload) return `used by AgentWorkload ${otherWorkload.metadata.name}`;
  return undefined;
}

/**
 * The last answer per cached AgentWorkload object, valid while its Pod is the same cached
 * object too. Informers replace objects on every change and never mutate them, so object
 * identity is the version; entries go with the objects they are keyed by.
 */
const inspectAnswers = new WeakMap<
  Workload,
  { pod: Pod | undefined; answer: InspectWorkloadResponse }
>();

export function inspectWorkload(
  shim: ShimContext,
  req: InspectWorkloadRequest,
): Promise<InspectWorkloadResponse> {
  const workload = resolveWorkload(shim, req.workloadId);
  const pod = podOf(shim, workload);
  const known = inspectAnswers.get(workload);
  if (known && known.pod === pod) return Promise.resolve(known.answer);
  const answer = inspectResponse(workload, pod);
  inspectAnswers.set(workload, { pod, answer });
  return Promise.resolve(answer);
}

export function getWorkloadLabels(
  shim: ShimContext,
  req: GetWorkloadLabelsRequest,
): Promise<GetWorkloadLabelsResponse> {
  const workload = resolveWorkload(shim, req.workloadId);
  return Promise.resolve({ labels: effectiveLabels(workload, podOf(shim, workload)) });
}

function isActive(workload: Workload): boolean {
  return !workload.spec.stopped && !workload.metadata.deletionTimestamp;
}

/**
 * Every workload that exists in the upstream sense: its Pod exists, or it is meant to run
 * (an AgentWorkload neither stopped nor being deleted). Items name the Pod, as upstream.
 */
export function listWorkloads(shim: ShimContext): Promise<ListWorkloadsResponse> {
  const items = new Map<string, WorkloadListItem>();
  for (const pod of shim.caches.pods.list()) {
    const key = pod.metadata?.labels?.[WORKLOAD_KEY_LABEL];
    const name = pod.metadata?.name;
    if (key !== undefined && name) items.set(name, { instanceId: name, workloadKey: key });
  }
  for (const workload of shim.caches.workloads.list()) {
    if (!isActive(workload)) continue;
    const name = podNameOf(workload);
    const key = workload.spec.labels?.[WORKLOAD_KEY_LABEL];
    if (key !== undefined && !items.has(name))
      items.set(name, { instanceId: name, workloadKey: key });
  }
  return Promise.resolve({ workloads: [...items.values()] });
}

function matches(
  labels: Record<string, string> | undefined,
  wanted: Record<string, string>,
): boolean {
  for (const [key, value] of Object.entries(wanted)) {
    if (labels?.[key] !== value) return false;
  }
  return true;
}

/**
 * Workload ids whose labels carry every wanted entry; with `all` false only Running ones.
 * Unlike upstream, only the operator's workloads are considered (never foreign Pods).
 */
export function findWorkloadsByLabels(
  shim: ShimContext,
  req: FindWorkloadsByLabelsRequest,
): Promise<FindWorkloadsByLabelsResponse> {
  const ids = new Set<string>();
  for (const pod of shim.caches.pods.list()) {
    const id = pod.metadata?.labels?.[LABELS.workloadId];
    if (!id || !matches(pod.metadata?.labels, req.labels)) continue;
    if (!req.all && (pod.status?.phase !== 'Running' || !livePod(pod))) continue;
    ids.add(id);
  }
  if (req.all) {
    for (const workload of shim.caches.workloads.list()) {
      if (!isActive(workload) || shim.caches.pod(podNameOf(workload))) continue;
      if (matches(effectiveLabels(workload, undefined), req.labels))
        ids.add(workloadIdOf(workload));
    }
  }
  return Promise.resolve({ targetIds: [...ids] });
}

/** RFC 3339 in UTC with nanoseconds, as upstream writes agyn.io/touched-at. */
export function rfc3339Nano(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

/**
 * Records activity as the annotation agyn.io/touched-at on the AgentWorkload (status is
 * the controller's; it reflects the annotation into status.lastActivityTime).
 */
export async function touchWorkload(
  shim: ShimContext,
  req: TouchWorkloadRequest,
): Promise<TouchWorkloadResponse> {
  const workload = resolveWorkload(shim, req.workloadId);
  await shim.kube
    .resource<Workload>(AGENT_WORKLOADS)
    .mergePatch(shim.namespace, workload.metadata.name, {
      metadata: { annotations: { [TOUCHED_AT_ANNOTATION]: rfc3339Nano(new Date()) } },
    });
  return {};
}
