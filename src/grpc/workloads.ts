import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { ANNOTATIONS, LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import { KubeApiError, isAlreadyExists, isNotFound } from '../kube/errors.ts';
import { SECRETS } from '../kube/resources.ts';
import { AGENT_WORKLOADS } from '../api/resources.ts';
import type {
  FindWorkloadsByLabelsRequest,
  FindWorkloadsByLabelsResponse,
  GetWorkloadLabelsRequest,
  GetWorkloadLabelsResponse,
  InspectWorkloadRequest,
  InspectWorkloadResponse,
  ListWorkloadsResponse,
  ReadyResponse,
  StartWorkloadRequest,
  StartWorkloadResponse,
  TouchWorkloadRequest,
  TouchWorkloadResponse,
  WorkloadListItem,
} from '../gen/agynio/api/runner/v1/runner.ts';
import { workloadIdOf } from '../workload/identity.ts';
import { podNameOf, type Pod, type Workload } from './caches.ts';
import { RpcError } from './errors.ts';
import { podOf, resolveWorkload } from './resolve.ts';
import type { CallContext, ShimContext } from './rpc.ts';
import { ensureVolumes } from './volume-grants.ts';
import {
  effectiveLabels,
  inspectResponse,
  livePod,
  workloadStatusOf,
} from './translate-inspect.ts';
import type { Secret } from './translate-secrets.ts';
import { translateStartRequest, type StartPlan } from './translate-start.ts';

const WORKLOAD_KEY_LABEL = 'workload_key';
/** How long StartWorkload waits for a stopped workload of the same name to finish going. */
const PREVIOUS_WORKLOAD_WAIT_MS = 5_000;
/** Time kept back from a client's deadline so the answer still reaches it. */
const DEADLINE_RESERVE_MS = 1_000;
/**
 * How long StartWorkload waits for a claim another workload's controller is creating
 * (volume-grants.ts): a Pod's PVC can take seconds under a burst of starts.
 */
const VOLUME_GRANT_WAIT_MS = 10_000;

export function remainingMs(ctx: CallContext, wanted: number): number {
  return Math.max(0, Math.min(wanted, ctx.deadline - Date.now() - DEADLINE_RESERVE_MS));
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

/**
 * A workload with this name that is still going (stopped a moment ago: its AgentWorkload
 * being finalized, or its Pod terminating) is waited for briefly; one that exists is
 * ALREADY_EXISTS, as upstream answers when the Pod exists.
 */
async function awaitNameFree(shim: ShimContext, name: string, ctx: CallContext): Promise<void> {
  const existing = shim.caches.workload(name) ?? shim.recent?.get(name);
  if (!existing && !shim.caches.pod(name)) return;
  const alreadyExists = new RpcError(
    status.ALREADY_EXISTS,
    `resource already exists: agentworkloads.agyn.io ${JSON.stringify(name)} already exists`,
  );
  if (existing && !existing.metadata.deletionTimestamp) throw alreadyExists;
  const until = Date.now() + remainingMs(ctx, PREVIOUS_WORKLOAD_WAIT_MS);
  const free =
    (await shim.caches.waitFor('workloads', name, (w) => w === undefined, until - Date.now())) &&
    (await shim.caches.waitFor('pods', name, (p) => p === undefined, until - Date.now()));
  if (!free) throw alreadyExists;
}

/** The AgentWorkload of a start as the API server has it; 'unknown' when it cannot tell. */
async function liveWorkload(
  shim: ShimContext,
  plan: StartPlan,
): Promise<Workload | undefined | 'unknown'> {
  return shim.kube
    .resource<Workload>(AGENT_WORKLOADS)
    .find(shim.namespace, plan.podName)
    .catch(() => 'unknown' as const);
}

/**
 * Creates a Secret of a start. A Secret left by an earlier start of this workload that failed
 * before its AgentWorkload existed (this workload's labels, no owner, no AgentWorkload) is
 * replaced; any other existing Secret is ALREADY_EXISTS.
 */
async function createStartSecret(
  shim: ShimContext,
  plan: StartPlan,
  secret: Secret,
): Promise<void> {
  const secrets = shim.kube.resource<Secret>(SECRETS);
  try {
    await secrets.create(shim.namespace, secret);
    return;
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    // A failed read is no answer (never ALREADY_EXISTS): it fails this attempt, to be retried.
    const existing = await secrets.find(shim.namespace, secret.metadata.name);
    if (!existing) return void (await secrets.create(shim.namespace, secret));
    const labels = existing.metadata?.labels ?? {};
    const leftover =
      labels[LABELS.managedBy] === MANAGED_BY_VALUE &&
      labels[LABELS.workloadId] === plan.workloadId &&
      (existing.metadata?.ownerReferences ?? []).length === 0;
    if (!leftover) throw err;
    const live = await liveWorkload(shim, plan);
    if (live === 'unknown')
      throw new RpcError(status.UNAVAILABLE, 'could not tell whether the workload exists');
    if (live !== undefined) throw err;
    await secrets.delete(shim.namespace, secret.metadata.name, {
      preconditions: { uid: existing.metadata?.uid },
    });
    await secrets.create(shim.namespace, secret);
  }
}

/** Deletes the Secrets a failed start created. */
async function deleteSecrets(shim: ShimContext, names: string[], ctx: CallContext): Promise<void> {
  const secrets = shim.kube.resource<Secret>(SECRETS);
  for (const name of names) {
    try {
      await secrets.delete(shim.namespace, name);
    } catch (err) {
      if (!isNotFound(err))
        ctx.logger.warn({ err, secret: name }, 'could not delete a Secret of a failed start');
    }
  }
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
  await awaitNameFree(shim, plan.podName, ctx);

  const workloads = shim.kube.resource<Workload>(AGENT_WORKLOADS);
  const created: string[] = [];
  let workload: Workload;
  try {
    for (const secret of plan.secrets) {
      await createStartSecret(shim, plan, secret);
      created.push(secret.metadata.name);
    }
    await ensureVolumes(shim, plan, remainingMs(ctx, VOLUME_GRANT_WAIT_MS));
    workload = await workloads.create(shim.namespace, plan.workload as Workload);
  } catch (err) {
    // Without a definite answer the API server may have created the AgentWorkload: its
    // Secrets must then stay. When that cannot be told, they stay too (the workload
    // controller deletes them if the workload never appears).
    const found =
      created.length > 0 && !isDefinite(err) ? await liveWorkload(shim, plan) : undefined;
    if (found === 'unknown') throw err;
    if (found === undefined || workloadIdOf(found) !== plan.workloadId) {
      await deleteSecrets(shim, created, ctx);
      throw err;
    }
    workload = found;
  }
  // The controller logs the Pod it creates; one line per start is enough at info.
  if (shim.logger.isLevelEnabled('debug'))
    ctx.logger.debug({ workloadId: plan.workloadId }, 'created AgentWorkload');

  shim.onWorkloadCreated?.(workload);
  // Answered now (STARTING needs no cache); calls that follow find it among the recent ones.
  shim.recent?.note(workload);
  const { status: workloadStatus, failure } = workloadStatusOf(
    shim.caches.workload(plan.podName) ?? workload,
  );
  const response: StartWorkloadResponse = {
    id: plan.workloadId,
    containers: { main: plan.podName, sidecars: plan.sidecars },
    status: workloadStatus,
  };
  if (failure) response.failure = failure;
  return response;
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

export async function inspectWorkload(
  shim: ShimContext,
  req: InspectWorkloadRequest,
  ctx: CallContext,
): Promise<InspectWorkloadResponse> {
  const workload = await resolveWorkload(shim, req.workloadId, ctx);
  const pod = podOf(shim, workload);
  const known = inspectAnswers.get(workload);
  if (known && known.pod === pod) return known.answer;
  const answer = inspectResponse(workload, pod);
  inspectAnswers.set(workload, { pod, answer });
  return answer;
}

export async function getWorkloadLabels(
  shim: ShimContext,
  req: GetWorkloadLabelsRequest,
  ctx: CallContext,
): Promise<GetWorkloadLabelsResponse> {
  const workload = await resolveWorkload(shim, req.workloadId, ctx);
  return { labels: effectiveLabels(workload, podOf(shim, workload)) };
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
  ctx: CallContext,
): Promise<TouchWorkloadResponse> {
  const workload = await resolveWorkload(shim, req.workloadId, ctx);
  await shim.kube
    .resource<Workload>(AGENT_WORKLOADS)
    .mergePatch(shim.namespace, workload.metadata.name, {
      metadata: { annotations: { [ANNOTATIONS.touchedAt]: rfc3339Nano(new Date()) } },
    });
  return {};
}
