import type { IPod } from 'kubernetes-models/v1/Pod';
import { objectKey } from '../kube/informer.ts';
import type { Workload } from './caches.ts';
import { POD_SPEC_HASH_ANNOTATION } from './desired-pod.ts';
import type { RunnerSettings } from './runner-settings.ts';

/** What a desired Pod is built from, besides the workload's spec (its generation stands for it). */
export interface DesiredPodInputs {
  workload: Workload;
  runner: RunnerSettings;
  workloadId: string;
  annotationPrefixes: readonly string[];
}

interface Entry {
  uid: string | undefined;
  generation: number | undefined;
  name: string;
  annotations: string;
  runner: RunnerSettings;
  workloadId: string;
  annotationPrefixes: readonly string[];
  hash: string;
}

/**
 * The spec hash of each workload's last desired Pod, so that a reconcile of a
 * workload whose Pod exists compares hashes without building the Pod again. An entry holds
 * while the workload's uid, generation, name and annotations, its runner's settings (the
 * directory's object) and its id are the ones the Pod was built from.
 */
export class DesiredPodHashes {
  private readonly entries = new Map<string, Entry>();

  known(inputs: DesiredPodInputs): string | undefined {
    const entry = this.entries.get(objectKey(inputs.workload));
    if (!entry) return undefined;
    const { workload, runner, workloadId, annotationPrefixes } = inputs;
    const same =
      entry.uid === workload.metadata.uid &&
      entry.generation === workload.metadata.generation &&
      entry.name === workload.metadata.name &&
      entry.runner === runner &&
      entry.workloadId === workloadId &&
      entry.annotationPrefixes === annotationPrefixes &&
      entry.annotations === annotationsOf(workload);
    return same ? entry.hash : undefined;
  }

  remember(inputs: DesiredPodInputs, pod: IPod): void {
    const hash = pod.metadata?.annotations?.[POD_SPEC_HASH_ANNOTATION];
    if (hash === undefined) return;
    const { workload, runner, workloadId, annotationPrefixes } = inputs;
    this.entries.set(objectKey(workload), {
      uid: workload.metadata.uid,
      generation: workload.metadata.generation,
      name: workload.metadata.name,
      annotations: annotationsOf(workload),
      runner,
      workloadId,
      annotationPrefixes,
      hash,
    });
  }

  /** `key`: the workload's objectKey. */
  forget(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

function annotationsOf(workload: Workload): string {
  return JSON.stringify(workload.metadata.annotations ?? {});
}
