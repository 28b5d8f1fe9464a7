import { status } from '@grpc/grpc-js';
import { RpcError } from './errors.ts';

export interface ConcurrencyCaps {
  /** Sessions at once across every workload. */
  total: number;
  /** Sessions at once on one workload. */
  perWorkload: number;
}

/**
 * Counts running sessions of one kind (Exec, PutArchive) in total and per workload and
 * refuses one beyond either cap with RESOURCE_EXHAUSTED.
 */
export class ConcurrencyLimiter {
  private running = 0;
  private readonly byWorkload = new Map<string, number>();

  constructor(
    private readonly what: string,
    private readonly caps: ConcurrencyCaps,
    private readonly settings: { total: string; perWorkload: string },
  ) {}

  /** Takes a slot for `workload`; the returned function gives it back (once). */
  acquire(workload: string): () => void {
    const mine = this.byWorkload.get(workload) ?? 0;
    if (mine >= this.caps.perWorkload) {
      throw new RpcError(
        status.RESOURCE_EXHAUSTED,
        `too many concurrent ${this.what} on workload ${JSON.stringify(workload)}: the limit is ${this.caps.perWorkload} (${this.settings.perWorkload})`,
      );
    }
    if (this.running >= this.caps.total) {
      throw new RpcError(
        status.RESOURCE_EXHAUSTED,
        `too many concurrent ${this.what}: the limit is ${this.caps.total} (${this.settings.total})`,
      );
    }
    this.running++;
    this.byWorkload.set(workload, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      const left = (this.byWorkload.get(workload) ?? 1) - 1;
      if (left > 0) this.byWorkload.set(workload, left);
      else this.byWorkload.delete(workload);
    };
  }

  get size(): number {
    return this.running;
  }
}

export interface ShimLimits {
  exec: ConcurrencyCaps;
  putArchive: ConcurrencyCaps;
  /** The most bytes an archive may expand to (after gunzip); by default the message limit. */
  maxArchiveBytes: number;
}

export const DEFAULT_LIMITS: ShimLimits = {
  exec: { total: 32, perWorkload: 8 },
  putArchive: { total: 4, perWorkload: 2 },
  maxArchiveBytes: 32 * 1024 * 1024,
};

export function execLimiter(caps: ConcurrencyCaps): ConcurrencyLimiter {
  return new ConcurrencyLimiter('Exec sessions', caps, {
    total: 'EXEC_MAX_SESSIONS',
    perWorkload: 'EXEC_MAX_SESSIONS_PER_WORKLOAD',
  });
}

export function putArchiveLimiter(caps: ConcurrencyCaps): ConcurrencyLimiter {
  return new ConcurrencyLimiter('PutArchive calls', caps, {
    total: 'PUT_ARCHIVE_MAX_CONCURRENT',
    perWorkload: 'PUT_ARCHIVE_MAX_CONCURRENT_PER_WORKLOAD',
  });
}
