import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import { Informer } from '../kube/informer.ts';
import { NAMESPACES } from '../kube/resources.ts';

export type Namespace = INamespace & KubeObject;

/**
 * A cache of the one Namespace the operator's workloads live in, for its labels (its
 * organization, and what Runners select). Listing by `metadata.name` lets RBAC grant
 * get/list/watch on that Namespace alone (`resourceNames`).
 */
export function workloadNamespaceInformer(
  client: KubeClient,
  name: string,
  logger: Logger,
): Informer<Namespace> {
  return new Informer(client.resource<Namespace>(NAMESPACES), {
    fieldSelector: `metadata.name=${name}`,
    logger,
  });
}
