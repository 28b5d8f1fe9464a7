import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { KubeObject, ResourceClient } from './client.ts';
import { Backoff, sleep, type Sleep } from './backoff.ts';
import { KubeApiError, isGone } from './errors.ts';
import { InformerStore, type StoreChange } from './informer-store.ts';

export interface InformerHandler<T> {
  /** `initial` is true for objects delivered by the first list (the start-up backlog). */
  onAdd?(obj: T, initial: boolean): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

/**
 * The cap of the list/watch retry backoff (from 800 ms, doubling). client-go caps at 30 s; 15 s
 * halves the wait after an API server outage ends (one request per informer every 15 s while it
 * lasts), so the operator converges within 30 s of the end of a long partition.
 */
export const DEFAULT_MAX_BACKOFF_MS = 15_000;

export interface InformerOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  logger: Logger;
  /** A watch that brings no event and no bookmark for this long is presumed dead. */
  idleTimeoutMs?: number;
  watchTimeoutSeconds?: number;
  pageSize?: number;
  maxBackoffMs?: number;
  transform?: (obj: T) => T;
  /** How the informer waits between retries (tests record the delays). */
  sleep?: Sleep;
  /** Receives a handle to steer the watch (fault tests); nothing in the operator asks for it. */
  control?: (control: InformerControl) => void;
}

export interface InformerControl {
  /**
   * Ends the current watch so the informer resumes from its resource version, or from the
   * given one (fault tests use an expired version to force a 410 and a relist).
   */
  restartWatch(fromResourceVersion?: string): void;
}

/** client-go's reflector: a watch that ends this soon with no event is "very short". */
export const SHORT_WATCH_MS = 1_000;

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string; reason?: string };
}

class WatchIdleError extends Error {}

export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${obj.metadata?.name}` : (obj.metadata?.name ?? '');
}

/**
 * List-then-watch cache of one resource type. It relists on 410 Gone, restarts any
 * failed or silent watch with capped backoff, and never stops on its own.
 */
export class Informer<T extends KubeObject> {
  private readonly store = new InformerStore<T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly options: Required<
    Pick<InformerOptions<T>, 'idleTimeoutMs' | 'pageSize' | 'maxBackoffMs'>
  > &
    InformerOptions<T>;
  private resourceVersion?: string;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private stopped = true;
  private currentStream?: IncomingMessage;
  private abort?: AbortController;
  private loop?: Promise<void>;
  readonly stats = {
    lists: 0,
    relistsOnGone: 0,
    watchRestarts: 0,
    idleRestarts: 0,
    shortWatches: 0,
    handlerErrors: 0,
    events: 0,
  };

  constructor(
    private readonly resource: ResourceClient<T>,
    options: InformerOptions<T>,
  ) {
    this.options = {
      idleTimeoutMs: 5 * 60_000,
      pageSize: 500,
      maxBackoffMs: DEFAULT_MAX_BACKOFF_MS,
      ...options,
    };
    options.control?.({ restartWatch: (version) => this.restartWatch(version) });
  }

  get name(): string {
    return this.resource.type.plural;
  }

  addHandler(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
    if (this.synced) for (const obj of this.store.values()) handler.onAdd?.(obj, true);
  }

  addIndex(name: string, fn: (obj: T) => string[]): void {
    this.store.addIndex(name, fn);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  size(): number {
    return this.store.size;
  }

  byIndex(name: string, value: string): T[] {
    return this.store.byIndex(name, value);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.currentStream?.destroy();
    await this.loop;
  }

  private restartWatch(fromResourceVersion?: string): void {
    if (fromResourceVersion !== undefined) this.resourceVersion = fromResourceVersion;
    this.currentStream?.destroy(new WatchIdleError('watch restart requested'));
  }

  /**
   * Records an object this process has just written (the API server's answer) before its
   * watch event arrives: handlers hear of it now, and the event that brings the same version
   * later changes nothing (client-go's MutationCache). Taken only while the informer runs,
   * when newer than what it holds (InformerStore.write), and by an informer without selectors
   * (it could not tell whether the object belongs). The object is the informer's from then on:
   * the caller must not change it. Returns whether it was taken.
   */
  recordWrite(obj: T): boolean {
    const { namespace, labelSelector, fieldSelector } = this.options;
    if (this.stopped || labelSelector || fieldSelector) return false;
    if (namespace !== undefined && obj.metadata?.namespace !== namespace) return false;
    const prepared = this.prepare(obj);
    const change = this.store.write(objectKey(prepared), prepared);
    if (change) this.notify(noticeOf(change, false));
    return change !== undefined;
  }

  get lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(800, this.options.maxBackoffMs);
    const wait = this.options.sleep ?? sleep;
    let needList = this.resourceVersion === undefined;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.listAndReplace();
          needList = false;
        }
        const started = Date.now();
        const eventsBefore = this.stats.events;
        await this.watchOnce();
        if (this.stopped) break;
        if (Date.now() - started < SHORT_WATCH_MS && this.stats.events === eventsBefore) {
          // The server (or something in between) ends watches at once: do not hammer it.
          this.stats.shortWatches++;
          const delay = backoff.next();
          this.options.logger.warn(
            { resource: this.name, retryInMs: Math.round(delay) },
            'watch ended at once without events; backing off',
          );
          await wait(delay, this.abort?.signal);
        } else {
          backoff.reset();
        }
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err)) {
          this.stats.relistsOnGone++;
          this.options.logger.info({ resource: this.name }, 'watch expired (410 Gone); relisting');
          needList = true;
          continue;
        }
        if (err instanceof WatchIdleError) {
          this.stats.idleRestarts++;
          this.options.logger.warn({ resource: this.name }, 'watch went silent; restarting it');
          continue;
        }
        this.stats.watchRestarts++;
        const delay = backoff.next();
        this.options.logger.warn(
          { resource: this.name, err: errorMessage(err), retryInMs: Math.round(delay) },
          'list/watch failed; retrying',
        );
        await wait(delay, this.abort?.signal);
        if (this.resourceVersion === undefined) needList = true;
      }
    }
  }

  private async listAndReplace(): Promise<void> {
    this.stats.lists++;
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.resource.list(this.options.namespace, {
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        limit: this.options.pageSize,
        continue: cont,
        signal: this.abort?.signal,
      });
      for (const item of page.items) {
        const obj = this.prepare(item);
        fresh.set(objectKey(obj), obj);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);

    const initial = !this.synced;
    const notices = this.store.replace(fresh, rv).map((change) => noticeOf(change, initial));
    this.resourceVersion = rv;
    for (const notice of notices) this.notify(notice);
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watchOnce(): Promise<void> {
    const timeoutSeconds =
      this.options.watchTimeoutSeconds ?? Math.floor(240 + Math.random() * 120);
    const stream = await this.resource.client.stream(this.resource.path(this.options.namespace), {
      query: {
        watch: 1,
        allowWatchBookmarks: true,
        resourceVersion: this.resourceVersion,
        timeoutSeconds,
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
      },
      signal: this.abort?.signal,
    });
    this.currentStream = stream;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(
        () => stream.destroy(new WatchIdleError('no watch event or bookmark received')),
        this.options.idleTimeoutMs,
      );
    };
    armIdle();
    let buffered = '';
    try {
      for await (const chunk of stream) {
        armIdle();
        buffered += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) this.handleEvent(JSON.parse(line) as WatchEvent<T>);
        }
      }
    } catch (err) {
      if (err instanceof WatchIdleError || err instanceof KubeApiError) throw err;
      if (this.stopped) return;
      throw err;
    } finally {
      clearTimeout(idleTimer);
      this.currentStream = undefined;
    }
  }

  private handleEvent(event: WatchEvent<T>): void {
    this.stats.events++;
    if (event.type === 'ERROR') {
      const status = event.object;
      throw new KubeApiError(
        status.code ?? 500,
        status.reason ?? 'WatchError',
        status.message ?? 'watch error',
      );
    }
    const rv = event.object.metadata?.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const obj = this.prepare(event.object);
    // The store and the resource version move first: a handler that throws cannot make
    // the informer see this event again as "already known" and drop it.
    const change = this.store.event(event.type, objectKey(obj), obj);
    if (rv) this.resourceVersion = rv;
    if (change) this.notify(noticeOf(change, false));
  }

  /** Runs one notification on every handler; a handler's failure is its own. */
  private notify(notice: (h: InformerHandler<T>) => void): void {
    for (const h of this.handlers) {
      try {
        notice(h);
      } catch (err) {
        this.stats.handlerErrors++;
        this.options.logger.error(
          { resource: this.name, err: errorMessage(err) },
          'informer handler threw; the informer goes on',
        );
      }
    }
  }

  private prepare(obj: T): T {
    if (obj.metadata) delete obj.metadata.managedFields;
    return this.options.transform ? this.options.transform(obj) : obj;
  }
}

function noticeOf<T>(change: StoreChange<T>, initial: boolean): (h: InformerHandler<T>) => void {
  if (change.type === 'add') return (h) => h.onAdd?.(change.obj, initial);
  if (change.type === 'update') return (h) => h.onUpdate?.(change.old, change.obj);
  return (h) => h.onDelete?.(change.obj);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
