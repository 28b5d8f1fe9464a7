import { LABELS, MANAGED_BY_VALUE } from '../api/common.ts';
import type { InformerCache } from '../kube/cache.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Informer, InformerHandler } from '../kube/informer.ts';
import { SECRETS } from '../kube/resources.ts';
import { RUNNER_TOKEN_LABEL } from './token-rule.ts';

/** The label that marks a Secret as a gateway CA bundle a Runner may name in gateway.caSecretRef. */
export const GATEWAY_CA_LABEL = 'agyn.io/gateway-ca';

/**
 * What the operator caches of its namespace's Secrets, and nothing else: Runner tokens and
 * gateway CAs (labelled by whoever creates them), the Runners' identity Secrets (the
 * operator's own, created with its labels) and, when named, the gRPC token Secret. Any other
 * Secret of the namespace never enters the operator's memory.
 */
export const OPERATOR_SECRET_SELECTORS = {
  runnerTokens: `${RUNNER_TOKEN_LABEL}=true`,
  gatewayCas: `${GATEWAY_CA_LABEL}=true`,
  identities: `${LABELS.managedBy}=${MANAGED_BY_VALUE},${LABELS.runner}`,
} as const;

/** The part of an informer the Runner controller and the gRPC auth read Secrets through. */
export interface SecretCache<T extends KubeObject> {
  addHandler(handler: InformerHandler<T>): void;
  get(namespace: string | undefined, name: string): T | undefined;
  start(): void;
  stop(): Promise<void>;
  waitForSync(): Promise<void>;
  hasSynced(): boolean;
}

/** Several label- or name-selected informers seen as one cache; a Secret is in at most one of them, or in several with the same content. */
export class OperatorSecrets<T extends KubeObject> implements SecretCache<T> {
  constructor(private readonly informers: ReadonlyArray<Informer<T>>) {}

  addHandler(handler: InformerHandler<T>): void {
    for (const informer of this.informers) informer.addHandler(handler);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    for (const informer of this.informers) {
      const found = informer.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  }

  start(): void {
    for (const informer of this.informers) informer.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.waitForSync()));
  }

  hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }
}

/**
 * The operator namespace's Secrets the operator needs, declared in the process's cache owner:
 * label-selected (OPERATOR_SECRET_SELECTORS) and, with `grpcTokenSecret`, that one Secret by
 * name (it may be one the installer made, unlabelled).
 */
export function operatorSecretCache<T extends KubeObject>(
  cache: InformerCache,
  namespace: string,
  grpcTokenSecret?: string,
): OperatorSecrets<T> {
  const informer = (selector: { labelSelector?: string; fieldSelector?: string }) =>
    cache.informer<T>({ resource: SECRETS, namespace, ...selector });
  const informers = Object.values(OPERATOR_SECRET_SELECTORS).map((labelSelector) =>
    informer({ labelSelector }),
  );
  if (grpcTokenSecret)
    informers.push(informer({ fieldSelector: `metadata.name=${grpcTokenSecret}` }));
  return new OperatorSecrets(informers);
}
