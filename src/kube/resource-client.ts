import type { KubeClient, KubeList, KubeObject } from './client.ts';
import { isNotFound } from './errors.ts';
import { resourcePath, type ResourceType } from './resources.ts';
import type { TokenBucket } from './token-bucket.ts';

export const APPLY_PATCH = 'application/apply-patch+yaml';
export const MERGE_PATCH = 'application/merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  signal?: AbortSignal;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

/** Typed verbs for one resource type. */
export class ResourceClient<T extends KubeObject> {
  constructor(
    readonly client: KubeClient,
    readonly type: ResourceType,
  ) {}

  path(namespace?: string, name?: string, subresource?: string): string {
    return resourcePath(this.type, namespace, name, subresource);
  }

  get(namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T> {
    return this.client.request<T>('GET', this.path(namespace, name), { signal });
  }

  /** A GET that answers undefined for NotFound (any other failure still throws). */
  async find(
    namespace: string | undefined,
    name: string,
    signal?: AbortSignal,
  ): Promise<T | undefined> {
    try {
      return await this.get(namespace, name, signal);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  list(namespace: string | undefined, options: ListOptions = {}): Promise<KubeList<T>> {
    const { signal, ...query } = options;
    return this.client.request<KubeList<T>>('GET', this.path(namespace), { query, signal });
  }

  create(
    namespace: string | undefined,
    obj: T,
    options: { dryRun?: boolean; fieldManager?: string; limiter?: TokenBucket } = {},
  ): Promise<T> {
    return this.client.request<T>('POST', this.path(namespace), {
      body: obj,
      limiter: options.limiter,
      query: { dryRun: options.dryRun ? 'All' : undefined, fieldManager: options.fieldManager },
    });
  }

  /** Server-side apply under our own field manager; `force` only for fields we solely own. */
  apply(
    namespace: string | undefined,
    name: string,
    obj: unknown,
    options: { fieldManager: string; force?: boolean; subresource?: string; dryRun?: boolean },
  ): Promise<T> {
    return this.client.request<T>('PATCH', this.path(namespace, name, options.subresource), {
      body: obj,
      contentType: APPLY_PATCH,
      query: {
        fieldManager: options.fieldManager,
        force: options.force ? true : undefined,
        dryRun: options.dryRun ? 'All' : undefined,
      },
    });
  }

  mergePatch(
    namespace: string | undefined,
    name: string,
    patch: unknown,
    subresource?: string,
  ): Promise<T> {
    return this.client.request<T>('PATCH', this.path(namespace, name, subresource), {
      body: patch,
      contentType: MERGE_PATCH,
    });
  }

  jsonPatch(
    namespace: string | undefined,
    name: string,
    ops: unknown[],
    subresource?: string,
  ): Promise<T> {
    return this.client.request<T>('PATCH', this.path(namespace, name, subresource), {
      body: ops,
      contentType: JSON_PATCH,
    });
  }

  replace(namespace: string | undefined, name: string, obj: T, subresource?: string): Promise<T> {
    return this.client.request<T>('PUT', this.path(namespace, name, subresource), { body: obj });
  }

  delete(
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): Promise<unknown> {
    const { dryRun, ...rest } = options;
    const hasBody = Object.keys(rest).length > 0;
    return this.client.request('DELETE', this.path(namespace, name), {
      body: hasBody ? { apiVersion: 'v1', kind: 'DeleteOptions', ...rest } : undefined,
      query: { dryRun: dryRun ? 'All' : undefined },
    });
  }
}
