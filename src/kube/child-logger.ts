import type { Logger } from 'pino';

/**
 * A child logger with `bindings`, leaving out those the parent already carries with the same
 * value: pino appends every child binding to the line, so a key bound twice would appear
 * twice in one JSON object. Binding a key again with a different value is a bug.
 */
export function childLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  const bound = parent.bindings();
  const fresh: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(bindings)) {
    if (!(key in bound)) fresh[key] = value;
    else if (bound[key] !== value) {
      throw new Error(`logger already binds ${key}=${String(bound[key])}, not ${String(value)}`);
    }
  }
  return Object.keys(fresh).length === 0 ? parent : parent.child(fresh);
}
