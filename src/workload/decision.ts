import type { IPod } from 'kubernetes-models/v1/Pod';
import type { Pod, Pvc, Secret, Workload } from './caches.ts';
import type { DesiredPodHashes } from './desired-pod-hashes.ts';
import type { StatusFacts } from './desired-status.ts';
import type { RunnerSettings } from './runner-settings.ts';
import type { RunnerDirectory } from './seams.ts';
import type { SecretAccess } from './secret-access.ts';

/** What one reconcile knows of a workload (from the caches, and the controller's memory). */
export interface WorkloadFacts {
  workload: Workload;
  /** The id the workload may use (claimed, unique in its namespace). */
  workloadId: string;
  pod?: Pod;
  /** The cached claims of the spec's persistent volumes, by name. */
  claims: ReadonlyMap<string, Pvc>;
  /** The cached Secrets named after the workload (ownSecretNames), by name. */
  secrets: ReadonlyMap<string, Secret>;
  runners: Pick<RunnerDirectory, 'place' | 'settings' | 'notReadySince'>;
  now: Date;
  podAnnotationPrefixes: readonly string[];
  /** The hashes of Pods built before: a live Pod is compared without building it again. */
  desiredPodHashes?: DesiredPodHashes;
  /** When the Pod was first seen missing while it should run. */
  podMissingSince?: Date;
  /** When this controller created a Pod the cache does not show yet. */
  podExpectedSince?: number;
  /** Whether the referenced Secrets may be used; undefined until checked (see `needs`). */
  secretAccess?: SecretAccess;
  /**
   * Whether `pod` was read from the API server, not the cache: a Failed verdict made on the
   * Pod (or on its absence) is final only then (see `needs`). A cache that lags shows a Pod
   * still waiting that runs, misses one just made, or still shows a deleted workload's Pod.
   */
  podLive?: boolean;
  /**
   * Whether `claims` were read from the API server: a cached claim may lack the grant a
   * moment-old label gave, so a refusal is final only on the live claims (see `needs`).
   */
  claimsLive?: boolean;
}

export type Action =
  /** `why` is logged when given. */
  | { kind: 'deletePod'; pod: Pod; why?: string }
  | { kind: 'deleteWorkload' }
  /**
   * The Pod and its claims together: the scheduler waits for a claim created a moment
   * later. `unstarted` is the status to build on should the API server refuse them.
   */
  | { kind: 'createPod'; pod: IPod; runner: RunnerSettings; unstarted: StatusFacts }
  | { kind: 'ensureClaims'; runner: RunnerSettings }
  | { kind: 'adoptSecret'; secret: Secret };

export type Lookup = 'secretAccess' | 'podLive' | 'claimsLive';

export interface Decision {
  status: StatusFacts;
  requeueAfterMs?: number;
  actions: Action[];
  /** The reconcile needs this fact first: look it up and decide again. */
  needs?: Lookup;
  /** New memory of the Pod's absence: a time to keep, null to forget, undefined to leave. */
  podMissingSince?: Date | null;
  /** Forget that a Pod was created and not yet seen. */
  forgetExpectedPod?: boolean;
}
