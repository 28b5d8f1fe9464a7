import { status } from '@grpc/grpc-js';
import type { RunnerServiceService } from '../../src/gen/agynio/api/runner/v1/runner.ts';

export type MethodDefinition = (typeof RunnerServiceService)[keyof typeof RunnerServiceService];

/** A short, readable form of what a call sent (its decoded fields, or why it does not decode). */
export function summarize(method: MethodDefinition, payload: Buffer): string {
  let text: string;
  try {
    text = JSON.stringify(method.requestDeserialize(payload), (_key, value: unknown) => {
      if (value instanceof Uint8Array) return `<${value.length} bytes>`;
      if (typeof value === 'string' && value.length > 40) return `${value.slice(0, 40)}…`;
      return value;
    });
  } catch (err) {
    text = `undecodable (${err instanceof Error ? err.message : String(err)})`;
  }
  return `${payload.length} B ${text.length > 400 ? `${text.slice(0, 400)}…` : text}`;
}

interface CallTiming {
  ms: number;
  code: number;
  request: string;
}

/** Every call's elapsed time per method; the slowest few keep what they sent. */
export class CallTimings {
  private readonly byMethod = new Map<string, { count: number; slowest: CallTiming[] }>();

  record(method: string, ms: number, code: number, describe: () => string): void {
    let entry = this.byMethod.get(method);
    if (!entry) this.byMethod.set(method, (entry = { count: 0, slowest: [] }));
    entry.count++;
    const { slowest } = entry;
    if (slowest.length >= 3 && ms <= slowest[slowest.length - 1]!.ms) return;
    slowest.push({ ms, code, request: describe() });
    slowest.sort((a, b) => b.ms - a.ms);
    slowest.length = Math.min(slowest.length, 3);
  }

  report(): string {
    return [...this.byMethod]
      .sort(([, a], [, b]) => b.slowest[0]!.ms - a.slowest[0]!.ms)
      .map(([method, { count, slowest }]) =>
        [
          `${method} (${count} calls), slowest:`,
          ...slowest.map(
            (t) => `  ${Math.round(t.ms)} ms ${status[t.code] ?? t.code}: ${t.request}`,
          ),
        ].join('\n'),
      )
      .join('\n');
  }
}
