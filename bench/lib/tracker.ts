import { pino } from 'pino';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import type { ResourceType } from '../../src/kube/resources.ts';
import { nowMs } from './stats.ts';

interface Slim extends KubeObject {
  status?: { phase?: string };
}

/**
 * Watches one kind in a namespace (the project's own informer, so relists and restarts are
 * handled) and records, per object name, when it was first seen and when it first showed
 * `status.phase === phase`. The cache keeps only a slim copy, so the observer's memory
 * stays small beside the operator's.
 */
export class Tracker {
  readonly firstSeen = new Map<string, number>();
  readonly reachedPhase = new Map<string, number>();
  private readonly informer: Informer<Slim>;
  private waiters: Array<() => void> = [];

  constructor(
    client: KubeClient,
    type: ResourceType,
    namespace: string,
    private readonly phase: string,
    labelSelector?: string,
    /** Called once per object, when it first shows the phase. */
    onPhase?: (name: string) => void,
  ) {
    this.informer = new Informer<Slim>(client.resource<Slim>(type), {
      namespace,
      labelSelector,
      logger: pino({ level: 'silent' }),
      transform: (obj) => ({
        metadata: {
          name: obj.metadata?.name,
          namespace: obj.metadata?.namespace,
          resourceVersion: obj.metadata?.resourceVersion,
        },
        status: { phase: obj.status?.phase },
      }),
    });
    const see = (obj: Slim): void => {
      const name = obj.metadata?.name ?? '';
      const t = nowMs();
      if (!this.firstSeen.has(name)) this.firstSeen.set(name, t);
      if (obj.status?.phase === this.phase && !this.reachedPhase.has(name)) {
        this.reachedPhase.set(name, t);
        onPhase?.(name);
      }
      for (const w of this.waiters.splice(0)) w();
    };
    this.informer.addHandler({ onAdd: (obj) => see(obj), onUpdate: (_old, obj) => see(obj) });
  }

  /** How many tracked objects are in each phase now. */
  phases(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const obj of this.informer.list()) {
      const phase = obj.status?.phase ?? '(none)';
      out[phase] = (out[phase] ?? 0) + 1;
    }
    return out;
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** Resolves when `done()` holds (checked on every event), or rejects after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        clearInterval(safety);
        reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`));
      }, timeoutMs);
      const check = (): void => {
        if (done()) {
          clearTimeout(deadline);
          clearInterval(safety);
          resolve();
        } else {
          this.waiters.push(check);
        }
      };
      // Conditions may also depend on state outside this tracker: re-check now and then.
      const safety = setInterval(() => {
        if (done()) {
          clearTimeout(deadline);
          clearInterval(safety);
          resolve();
        }
      }, 500);
      check();
    });
  }
}
