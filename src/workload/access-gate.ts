import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload } from '../api/agentworkload.ts';
import type { KubeObject, ResourceClient } from '../kube/client.ts';
import { isNotFound } from '../kube/errors.ts';
import type { Informer } from '../kube/informer.ts';
import { checkSecretAccess } from './secret-access.ts';
import { refusedVolume } from './volume-access.ts';

type Secret = ISecret & KubeObject;
type Pvc = IPersistentVolumeClaim & KubeObject;

/** Why a workload's Pod is not created: Failed (final) or still Pending. */
export interface AccessBlock {
  phase: 'Failed' | 'Pending';
  reason: 'config_invalid' | undefined;
  message: string;
}

/** A workload waiting for a Secret looks again this often (one not made for any workload is not cached). */
export const ACCESS_RECHECK_MS = 5_000;

/**
 * What a workload may reach, checked before its Pod is created: only Secrets made for it
 * and only claims it created or was granted (src/workload/volume-access.ts).
 * Reads the label-selected cache first and the API only on a miss (a Secret the cache does
 * not hold is either missing or not labelled for any workload).
 */
export class AccessGate {
  constructor(
    private readonly secretCache: Informer<Secret>,
    private readonly secretClient: ResourceClient<Secret>,
    private readonly pvcCache: Informer<Pvc>,
  ) {}

  async check(aw: AgentWorkload, workloadId: string): Promise<AccessBlock | undefined> {
    const namespace = aw.metadata.namespace;
    const volume = refusedVolume(aw, workloadId, (claim) => this.pvcCache.get(namespace, claim));
    if (volume) return { phase: 'Failed', reason: 'config_invalid', message: volume.message };
    const secrets = await checkSecretAccess(aw, workloadId, async (name) => {
      const cached = this.secretCache.get(namespace, name);
      if (cached) return cached;
      try {
        return await this.secretClient.get(namespace, name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
    if (secrets.ok) return undefined;
    return secrets.final
      ? { phase: 'Failed', reason: 'config_invalid', message: secrets.message }
      : { phase: 'Pending', reason: undefined, message: secrets.message };
  }
}
