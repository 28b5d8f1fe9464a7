import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.ts';
import { Informer } from './informer.ts';
import type { ResourceType } from './resources.ts';

/** How one kind is cached: where, which objects, how they are trimmed and indexed. */
export interface InformerDeclaration<T extends KubeObject> {
  resource: ResourceType;
  /** One namespace, or all when undefined. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Applied to every object before it is stored (e.g. to drop data nothing reads). */
  transform?: (obj: T) => T;
  indexes?: Readonly<Record<string, (obj: T) => string[]>>;
}

/** What a group needs of an informer, whatever it caches. */
export interface CacheMember {
  start(): void;
  waitForSync(): Promise<void>;
  hasSynced(): boolean;
  stop(): Promise<void>;
}

/** Informers started, synced and stopped together (e.g. those one controller reads). */
export class InformerGroup {
  constructor(private readonly list: readonly CacheMember[] = []) {}

  protected members(): readonly CacheMember[] {
    return this.list;
  }

  start(): void {
    for (const informer of this.members()) informer.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all(this.members().map((i) => i.waitForSync()));
  }

  hasSynced(): boolean {
    return this.members().every((i) => i.hasSynced());
  }

  async stop(): Promise<void> {
    await Promise.all(this.members().map((i) => i.stop()));
  }
}

interface Entry {
  declaration: InformerDeclaration<KubeObject>;
  informer: Informer<KubeObject>;
}

/**
 * The one owner of a process's informers (controller-runtime's Manager cache): every
 * informer is created here from its declaration, once, with its transform and indexes;
 * controllers and servers ask for it instead of building their own. Asking again for the
 * same resource, namespace and selectors returns the same informer; a declaration that
 * differs from the first one (transform or indexes) is refused, so an object is cached one way.
 */
export class InformerCache extends InformerGroup {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly client: KubeClient,
    private readonly logger: Logger,
  ) {
    super();
  }

  informer<T extends KubeObject>(declaration: InformerDeclaration<T>): Informer<T> {
    const { resource, namespace, labelSelector, fieldSelector } = declaration;
    const selectors = [labelSelector, fieldSelector].filter(Boolean).join(';');
    const key = `${resource.plural}.${resource.group}/${namespace ?? '*'}${selectors ? `?${selectors}` : ''}`;
    const known = this.entries.get(key);
    if (known) {
      const difference = differenceOf(
        known.declaration,
        declaration as unknown as InformerDeclaration<KubeObject>,
      );
      if (difference) throw new Error(`informer ${key} declared twice: the ${difference} differ`);
      return known.informer as unknown as Informer<T>;
    }
    const informer = new Informer<T>(this.client.resource<T>(declaration.resource), {
      namespace: declaration.namespace,
      labelSelector,
      fieldSelector,
      transform: declaration.transform,
      logger: this.logger,
    });
    for (const [name, fn] of Object.entries(declaration.indexes ?? {})) informer.addIndex(name, fn);
    this.entries.set(key, {
      declaration: declaration as unknown as InformerDeclaration<KubeObject>,
      informer: informer as unknown as Informer<KubeObject>,
    });
    return informer;
  }

  /** Every informer declared so far. */
  protected override members(): Informer<KubeObject>[] {
    return [...this.entries.values()].map((e) => e.informer);
  }
}

function differenceOf(
  a: InformerDeclaration<KubeObject>,
  b: InformerDeclaration<KubeObject>,
): string | undefined {
  if (a.transform !== b.transform) return 'transforms';
  const ia = a.indexes ?? {};
  const ib = b.indexes ?? {};
  const names = new Set([...Object.keys(ia), ...Object.keys(ib)]);
  for (const name of names) if (ia[name] !== ib[name]) return `indexes (${name})`;
  return undefined;
}
