import type { Logger } from 'pino';
import type { KubeObject } from './client.ts';
import { Controller, type Reconcile } from './controller.ts';
import type { WorkQueueOptions } from './workqueue.ts';
import { objectKey, type Informer } from './informer.ts';

/** Adds a key to a controller's queue; `initial` marks the start-up backlog. */
export type Enqueue = (key: string, initial: boolean) => void;

/** One reason to reconcile (controller-runtime's For, Owns or Watches). */
export interface Trigger {
  bind(enqueue: Enqueue): void;
  /** Keys to reconcile when the controller starts (the `for` kind's cached objects). */
  initialKeys?(): Iterable<string>;
}

export type TriggerEvent = 'add' | 'update' | 'delete';

/** The kind a controller reconciles: every change of one of its objects reconciles it. */
export function forKind<T extends KubeObject>(
  informer: Informer<T>,
  options: {
    filter?: (obj: T) => boolean;
    /** Whether an update is worth a reconcile (controller-runtime's update predicates); default yes. */
    changed?: (old: T, obj: T) => boolean;
    onDelete?: (obj: T) => void;
  } = {},
): Trigger {
  const wanted = options.filter ?? (() => true);
  const changed = options.changed ?? (() => true);
  return {
    bind(enqueue) {
      informer.addHandler({
        onAdd: (obj, initial) => wanted(obj) && enqueue(objectKey(obj), initial),
        onUpdate: (old, obj) => wanted(obj) && changed(old, obj) && enqueue(objectKey(obj), false),
        onDelete: (obj) => {
          options.onDelete?.(obj);
          if (wanted(obj)) enqueue(objectKey(obj), false);
        },
      });
    },
    initialKeys: () =>
      informer
        .list()
        .filter(wanted)
        .map((obj) => objectKey(obj)),
  };
}

/** The key of the object's controller owner of `kind` (same namespace), if any. */
export function controllerOwnerKey(obj: KubeObject, kind: string): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find((r) => r.controller && r.kind === kind);
  return ref && obj.metadata?.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
}

/**
 * Objects the reconciled kind controls (ownerReference with controller: true): their changes
 * reconcile the owner. `onAdd` sees the owner's key when one appears (e.g. expectations met).
 */
export function owns<T extends KubeObject>(
  informer: Informer<T>,
  ownerKind: string,
  options: { onAdd?: (ownerKey: string) => void } = {},
): Trigger {
  return watches(informer, (obj, event) => {
    const owner = controllerOwnerKey(obj, ownerKind);
    if (owner && event === 'add') options.onAdd?.(owner);
    return owner ? [owner] : [];
  });
}

/** Any other kind: `map` names the keys a change of one of its objects must reconcile. */
export function watches<T extends KubeObject>(
  informer: Pick<Informer<T>, 'addHandler'>,
  map: (obj: T, event: TriggerEvent) => Iterable<string>,
): Trigger {
  return {
    bind(enqueue) {
      const send = (obj: T, event: TriggerEvent, initial = false): void => {
        for (const key of map(obj, event)) enqueue(key, initial);
      };
      informer.addHandler({
        onAdd: (obj, initial) => send(obj, 'add', initial),
        onUpdate: (_old, obj) => send(obj, 'update'),
        onDelete: (obj) => send(obj, 'delete'),
      });
    },
  };
}

/** A source that is no informer (e.g. Runner readiness): each signal reconciles `keys()`. */
export function watchesSignal(
  subscribe: (listener: () => void) => void,
  keys: () => Iterable<string>,
): Trigger {
  return {
    bind(enqueue) {
      subscribe(() => {
        for (const key of keys()) enqueue(key, false);
      });
    },
  };
}

export interface TriggeredControllerOptions {
  name: string;
  workers?: number;
  logger: Logger;
  reconcile: Reconcile;
  /** The queue's options (e.g. its retry backoff). */
  queue?: Partial<WorkQueueOptions>;
  /** Every reason to reconcile, in one place. */
  triggers: readonly Trigger[];
}

/**
 * A controller with its own queue, fed by its triggers. Events are bound at once; they
 * reach the queue only while it runs. start() begins with every key the triggers list.
 */
export class TriggeredController {
  private controller?: Controller;

  constructor(private readonly options: TriggeredControllerOptions) {
    for (const trigger of options.triggers) {
      trigger.bind((key, initial) => this.enqueue(key, initial));
    }
  }

  enqueue(key: string, initial = false): void {
    this.controller?.enqueue(key, { initial });
  }

  /** Starts reconciling (e.g. on gaining leadership), beginning with everything in the cache. */
  start(): void {
    if (this.controller) return;
    const { name, workers, logger, reconcile, queue } = this.options;
    this.controller = new Controller({ name, workers, logger, reconcile, queue });
    this.controller.start();
    for (const trigger of this.options.triggers) {
      for (const key of trigger.initialKeys?.() ?? []) this.enqueue(key, true);
    }
  }

  /** Stops reconciling at once (e.g. on losing leadership); start() may follow. */
  async stop(): Promise<void> {
    const controller = this.controller;
    this.controller = undefined;
    await controller?.stop();
  }

  get running(): boolean {
    return this.controller !== undefined;
  }

  get queue() {
    return this.controller?.queue;
  }
}
