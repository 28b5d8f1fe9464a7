import { runnerSpecSchema, type Runner, type RunnerSpec } from '../api/runner.ts';

const parsed = new WeakMap<object, RunnerSpec>();

/**
 * The Runner's spec with every default filled in. The API server already applies the CRD's
 * defaults; parsing again covers objects written before a default was added. A spec the
 * schema refuses (the API server accepted it) is used as it is.
 */
export function runnerSpecOf(runner: Pick<Runner, 'spec'>): RunnerSpec {
  const raw = runner.spec as RunnerSpec | undefined;
  if (raw === undefined || raw === null) throw new TypeError('Runner has no spec');
  const cached = parsed.get(raw);
  if (cached !== undefined) return cached;
  const result = runnerSpecSchema.safeParse(raw);
  const spec = result.success ? result.data : raw;
  parsed.set(raw, spec);
  return spec;
}
