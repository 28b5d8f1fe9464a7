import type { Logger } from 'pino';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A write refused because this process lost the leadership it wrote under. */
export class WriteFencedError extends Error {
  constructor(reason: string) {
    super(`write refused: ${reason}`);
    this.name = 'WriteFencedError';
  }
}

/** One request's abort signal under the fence; `release` once the request has ended. */
export interface FencedSignal {
  signal: AbortSignal | undefined;
  release: () => void;
}

const noRelease = (): void => undefined;

/**
 * Fences off a process's writes once its leadership is lost: every mutating request checks the
 * fence before it is sent, and those in flight are aborted when it closes. Reads go on. Each
 * write has a signal of its own (registered until released): one signal shared by every
 * request in flight made each request's listener cost grow with their number.
 */
export class WriteFence {
  private readonly inFlight = new Set<AbortController>();
  private reason = '';
  private isClosed = false;

  get closed(): boolean {
    return this.isClosed;
  }

  close(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.reason = reason;
    const error = new WriteFencedError(reason);
    for (const write of this.inFlight) write.abort(error);
    this.inFlight.clear();
  }

  /** The signal to send one request with; throws for a write once the fence is closed. */
  guard(method: string, signal?: AbortSignal): FencedSignal {
    if (READS.has(method.toUpperCase())) return { signal, release: noRelease };
    if (this.isClosed) throw new WriteFencedError(this.reason);
    const write = new AbortController();
    this.inFlight.add(write);
    if (!signal) return { signal: write.signal, release: () => this.inFlight.delete(write) };
    const onCallerAbort = (): void => write.abort(signal.reason);
    if (signal.aborted) onCallerAbort();
    else signal.addEventListener('abort', onCallerAbort, { once: true });
    return {
      signal: write.signal,
      release: () => {
        this.inFlight.delete(write);
        signal.removeEventListener('abort', onCallerAbort);
      },
    };
  }

  /** Writes registered and not yet released. */
  get writesInFlight(): number {
    return this.inFlight.size;
  }
}

/**
 * What a replica does when it loses its Lease, as controller-runtime does: no more writes,
 * stop the controllers (waiting at most `graceMs`), exit non-zero so the Deployment restarts it
 * and it campaigns afresh with empty state.
 */
export async function exitOnLostLease(options: {
  fence: WriteFence;
  stopWork: () => Promise<void>;
  logger: Logger;
  graceMs?: number;
  exit?: (code: number) => void;
}): Promise<void> {
  options.fence.close('leader election lost');
  options.logger.error('leader election lost: exiting');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    options.stopWork().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, options.graceMs ?? 2_000))),
  ]);
  clearTimeout(timer);
  (options.exit ?? ((code: number) => process.exit(code)))(1);
}
