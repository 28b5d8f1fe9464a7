/** What CancelExecution can do to a running Exec. */
export interface CancellableExec {
  cancel(force: boolean): void;
}

/** Running Exec sessions by execution id, from just before `started` until the RPC returns. */
export class ExecRegistry {
  private readonly sessions = new Map<string, CancellableExec>();

  register(executionId: string, session: CancellableExec): void {
    this.sessions.set(executionId, session);
  }

  unregister(executionId: string, session: CancellableExec): void {
    if (this.sessions.get(executionId) === session) this.sessions.delete(executionId);
  }

  /** True when a running session was told to stop. */
  cancel(executionId: string, force: boolean): boolean {
    const session = this.sessions.get(executionId);
    if (!session) return false;
    session.cancel(force);
    return true;
  }

  cancelAll(): void {
    for (const session of [...this.sessions.values()]) session.cancel(false);
  }

  get size(): number {
    return this.sessions.size;
  }
}
