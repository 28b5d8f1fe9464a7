import { z } from 'zod';
import type { CelRule } from './common.ts';

/**
 * The AgentWorkload spec's cross-field rules, as CEL for the API server and as TypeScript
 * twins for zod (the gRPC shim). Each message names the offending entry, e.g.
 * `spec.sidecars[1].name: duplicate container name "agent"`.
 */

/** What the TypeScript twins of the CEL rules read (the parsed value, defaults applied). */
export interface Volume {
  name: string;
  kind: string;
  persistentName?: string;
  size?: string;
  storageClass?: string;
}
interface Container {
  name: string;
  mounts?: Array<{ volume: string }>;
}
export interface Spec {
  main: Container;
  sidecars: Container[];
  initContainers: Container[];
  volumes: Volume[];
  runnerRef?: unknown;
  runnerSelector?: unknown;
}

/**
 * A list whose entries are keyed by name (`x-kubernetes-list-type: map`): the API server
 * refuses a repeated name itself (`spec.volumes[1]: Duplicate value: ...`), zod likewise.
 */
export function keyedByName<T extends z.ZodType<{ name: string }>>(
  list: z.ZodArray<T>,
  what: string,
) {
  return list
    .superRefine((entries, ctx) => {
      const names = entries.map((e) => e.name);
      names.forEach((n, i) => {
        if (names.indexOf(n) !== i)
          ctx.addIssue({
            code: 'custom',
            message: `duplicate ${what} name "${n}"`,
            path: [i, 'name'],
          });
      });
    })
    .default([])
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] });
}

/**
 * An index as CEL text: `string(int)` has an unbounded estimated size, which puts any message
 * built with it over the API server's cost budget; a lookup in a literal list does not.
 */
const digits = (index: string): string =>
  `[${Array.from({ length: 33 }, (_, i) => `'${i}'`).join(', ')}][${index}]`;

const sidecarClash = 'c.name == self.main.name';
const initClash = 'c.name == self.main.name || self.sidecars.exists(s, s.name == c.name)';

/** An entry of `list` that repeats the name of main (or, for init containers, of a sidecar). */
function crossListNameRule(list: 'sidecars' | 'initContainers'): CelRule {
  const clash = list === 'sidecars' ? sidecarClash : initClash;
  const index = `self.${list}.map(c, ${clash}).indexOf(true)`;
  const earlier = (s: Spec): string[] =>
    list === 'sidecars' ? [s.main.name] : [s.main.name, ...s.sidecars.map((c) => c.name)];
  const offender = (s: Spec): number => s[list].findIndex((c) => earlier(s).includes(c.name));
  return {
    rule: `!self.${list}.exists(c, ${clash})`,
    message: 'container names must be unique across main, sidecars and initContainers',
    messageExpression: `'spec.${list}[' + ${digits(index)} + '].name: duplicate container name "' + self.${list}[${index}].name + '"'`,
    fieldPath: `.${list}`,
    explain: (s: Spec) => {
      const i = offender(s);
      return `spec.${list}[${i}].name: duplicate container name "${s[list][i]?.name}"`;
    },
    holds: (s: Spec) => offender(s) < 0,
  };
}

const declared = (m: string): string => `self.volumes.exists(v, v.name == ${m}.volume)`;
const hasBadMount = (c: string): string =>
  `has(${c}.mounts) && ${c}.mounts.exists(m, !${declared('m')})`;

/** A mount naming an undeclared volume, in main or in an entry of a container list. */
function undeclaredMountRule(where: 'main' | 'sidecars' | 'initContainers'): CelRule {
  const j = `self.${where}.map(c, ${hasBadMount('c')}).indexOf(true)`;
  const container = where === 'main' ? 'self.main' : `self.${where}[${j}]`;
  const at = where === 'main' ? `'spec.main` : `'spec.${where}[' + ${digits(j)} + ']`;
  const k = `${container}.mounts.map(m, ${declared('m')}).indexOf(false)`;
  const containers = (s: Spec): Container[] => (where === 'main' ? [s.main] : s[where]);
  const bad = (s: Spec, c: Container): number =>
    (c.mounts ?? []).findIndex((m) => !s.volumes.some((v) => v.name === m.volume));
  return {
    rule:
      where === 'main'
        ? `!(${hasBadMount('self.main')})`
        : `!self.${where}.exists(c, ${hasBadMount('c')})`,
    message: 'every mount must name a volume declared in spec.volumes',
    messageExpression: `${at}.mounts[' + ${digits(k)} + '].volume: volume "' + ${container}.mounts[${k}].volume + '" is not declared in spec.volumes'`,
    fieldPath: where === 'main' ? '.main.mounts' : `.${where}`,
    explain: (s: Spec) => {
      const list = containers(s);
      const i = list.findIndex((c) => bad(s, c) >= 0);
      const m = bad(s, list[i]!);
      const name = where === 'main' ? 'main' : `${where}[${i}]`;
      return `spec.${name}.mounts[${m}].volume: volume "${list[i]!.mounts![m]!.volume}" is not declared in spec.volumes`;
    },
    holds: (s: Spec) => containers(s).every((c) => bad(s, c) < 0),
  };
}

export const SPEC_RULES: CelRule[] = [
  crossListNameRule('sidecars'),
  crossListNameRule('initContainers'),
  undeclaredMountRule('main'),
  undeclaredMountRule('sidecars'),
  undeclaredMountRule('initContainers'),
  {
    rule: '!(has(self.runnerRef) && has(self.runnerSelector))',
    message: 'runnerRef and runnerSelector are mutually exclusive',
    fieldPath: '.runnerSelector',
    reason: 'FieldValueForbidden',
    holds: (s: Spec) => s.runnerRef === undefined || s.runnerSelector === undefined,
  },
  {
    rule: '!has(oldSelf.workloadId) || (has(self.workloadId) && self.workloadId == oldSelf.workloadId)',
    message: 'workloadId is immutable',
    fieldPath: '.workloadId',
    reason: 'FieldValueForbidden',
  },
];
