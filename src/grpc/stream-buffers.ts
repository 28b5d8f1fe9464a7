// Small helpers of the streaming RPCs (Exec, PutArchive).

/** The last `limit` bytes of everything pushed. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(private readonly limit: number) {}

  push(data: Buffer): void {
    this.chunks.push(data);
    this.length += data.length;
    while (this.chunks.length > 1 && this.length - this.chunks[0]!.length >= this.limit) {
      this.length -= this.chunks.shift()!.length;
    }
  }

  value(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.length > this.limit ? all.subarray(all.length - this.limit) : all;
  }
}

export /** A timer to race against, cleared when no longer needed. */
class Delay {
  private timer?: NodeJS.Timeout;
  private resolve?: () => void;

  constructor(private readonly ms: number) {}

  wait(): Promise<undefined> {
    return new Promise((resolve) => {
      this.resolve = () => resolve(undefined);
      this.timer = setTimeout(this.resolve, this.ms);
    });
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.resolve?.();
  }
}
