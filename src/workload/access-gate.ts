import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { AgentWorkload } from '../api/agentworkload.ts';
import type { KubeObject, ResourceClient } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import { checkSecretAccess, type SecretAccess } from './secret-access.ts';

type Secret = ISecret & KubeObject;

/** A workload waiting for a Secret looks again this often (one not made for any workload is not cached). */
export const ACCESS_RECHECK_MS = 5_000;

/**
 * Whether a workload may use the Secrets its spec references, checked before its Pod is
 * created (claims are checked by decide()). Reads the label-selected cache first and the
 * API on a miss (a Secret the cache does not hold is either missing or not labelled for any
 * workload), and again before a refusal.
 */
export class AccessGate {
  constructor(
    private readonly secretCache: Informer<Secret>,
    private readonly secretClient: ResourceClient<Secret>,
  ) {}

  async secretAccess(aw: AgentWorkload, workloadId: string): Promise<SecretAccess> {
    const namespace = aw.metadata.namespace;
    const access = await checkSecretAccess(
      aw,
      workloadId,
      async (name) => this.secretCache.get(namespace, name) ?? (await this.live(namespace, name)),
    );
    if (access.ok || !access.final) return access;
    // A refusal is final: it is made on the API server's Secrets, not on a cache that may
    // not show a relabelling yet.
    return checkSecretAccess(aw, workloadId, (name) => this.live(namespace, name));
  }

  private live(namespace: string | undefined, name: string): Promise<Secret | undefined> {
    return this.secretClient.find(namespace, name);
  }
}
