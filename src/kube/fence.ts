import type { Logger } from 'pino';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A write refused because this process lost the leadership it wrote under. */
export class WriteFencedError extends Error {
  constructor(reason: string) {
    super(`write refused: ${reason}`);
    this.name = 'WriteFencedError';
  }
}

/**
 * Fences off a process's writes once its leadership is lost: every mutating request checks the
 * fence before it is sent, and those in flight are aborted when it closes. Reads go on.
 */
export class WriteFence {
  private readonly closing = new AbortController();
  private reason = '';

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.reason = reason;
    this.closing.abort(new WriteFencedError(reason));
  }

  /** The signal to send one request with; throws for a write once the fence is closed. */
  guard(method: string, signal?: AbortSignal): AbortSignal | undefined {
    if (READS.has(method.toUpperCase())) return signal;
    if (this.closed) throw new WriteFencedError(this.reason);
    return signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal;
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
