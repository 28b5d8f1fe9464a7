import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { InformerCache } from '../kube/cache.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import { NAMESPACES } from '../kube/resources.ts';

export type Namespace = INamespace & KubeObject;

/**
 * A cache of the one Namespace the operator's workloads live in, for its labels (its
 * organization, and what Runners select), declared in the process's cache owner. Listing by
 * `metadata.name` lets RBAC grant get/list/watch on that Namespace alone (`resourceNames`).
 */
export function workloadNamespaceInformer(cache: InformerCache, name: string): Informer<Namespace> {
  return cache.informer<Namespace>({
    resource: NAMESPACES,
    fieldSelector: `metadata.name=${name}`,
  });
}
