/** A small `--name value` / `--name=value` / `--flag` parser for the benchmark scripts. */
export interface Args {
  values: Map<string, string>;
  has(name: string): boolean;
  string(name: string, fallback: string): string;
  optional(name: string): string | undefined;
  int(name: string, fallback: number): number;
  number(name: string, fallback: number): number;
  /** A duration such as `30m`, `90s`, `1500ms`, `1h` (bare numbers are seconds), in ms. */
  durationMs(name: string, fallbackMs: number): number;
}

export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match)
    throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 30m, 90s, 1500ms)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[unit] ?? 1_000;
  return Math.round(value * factor);
}

export function parseArgs(argv: string[] = process.argv.slice(2)): Args {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      values.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        values.set(arg.slice(2), next);
        i++;
      } else {
        values.set(arg.slice(2), 'true');
      }
    }
  }
  const int = (name: string, fallback: number): number => {
    const raw = values.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
    return n;
  };
  return {
    values,
    has: (name) => values.has(name),
    string: (name, fallback) => values.get(name) ?? fallback,
    optional: (name) => values.get(name),
    int,
    number: (name, fallback) => {
      const raw = values.get(name);
      if (raw === undefined) return fallback;
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error(`--${name} must be a number`);
      return n;
    },
    durationMs: (name, fallbackMs) => {
      const raw = values.get(name);
      return raw === undefined ? fallbackMs : parseDurationMs(raw);
    },
  };
}
