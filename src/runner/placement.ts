import { describeSelector, selectorMatches, type LabelSelector } from './label-selector.ts';

export interface PlacementRequest {
  /** The workload's namespace: a Runner must accept it. */
  namespace: { name: string; labels: Record<string, string> };
  /** The workload's organization, derived from its namespace (organization.ts). */
  organizationId?: string;
  runnerRef?: string;
  /** The workload's runnerSelector (matchLabels and matchExpressions). */
  selector?: LabelSelector;
  capabilities: string[];
}

export interface PlacementCandidate {
  name: string;
  ready: boolean;
  /** Absent means cluster scope. */
  organizationId?: string;
  /** The namespaces whose workloads it takes: by name, or by a selector over their labels. */
  accepts: { names: readonly string[]; selector?: LabelSelector };
  labels: Record<string, string>;
  capabilities: string[];
}

export type PlacementFilter =
  'runnerRef' | 'ready' | 'namespace' | 'scope' | 'labels' | 'capabilities';

export type PlacementResult =
  { placed: true; runner: string } | { placed: false; filter: PlacementFilter; message: string };

interface Stage {
  filter: Exclude<PlacementFilter, 'runnerRef'>;
  keep: (r: PlacementCandidate) => boolean;
  /** Completes "no Runner …", e.g. "offers capabilities [gpu]". */
  none: string;
  /** Why the named Runner of a runnerRef fails this filter. */
  refused: (r: PlacementCandidate) => string;
}

/**
 * Chooses a Runner for a workload (design "Placement"): Ready, then scope (the Runner accepts
 * the workload's namespace and serves its organization or the whole cluster), then labels,
 * then capabilities, then a random pick among the survivors sorted by name (no draw for a single
 * survivor), so the result depends only on the inputs and `random`. A runnerRef names the only candidate, which
 * must pass the same filters.
 */
export function placeWorkload(
  request: PlacementRequest,
  runners: readonly PlacementCandidate[],
  random: () => number = Math.random,
): PlacementResult {
  const ref = blankToUndefined(request.runnerRef);
  let candidates = runners
    .filter((r) => ref === undefined || r.name === ref)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (ref !== undefined && candidates.length === 0) {
    return { placed: false, filter: 'runnerRef', message: `Runner "${ref}" not found` };
  }

  let previous: string | undefined;
  for (const stage of stages(request)) {
    const survivors = candidates.filter(stage.keep);
    if (survivors.length === 0) {
      const [first] = candidates;
      const message =
        ref !== undefined && first !== undefined
          ? `Runner "${ref}" ${stage.refused(first)}`
          : `no Runner ${stage.none} (${pool(candidates.length, previous)})`;
      return { placed: false, filter: stage.filter, message };
    }
    candidates = survivors;
    previous = stage.filter;
  }

  const index =
    candidates.length === 1
      ? 0
      : Math.min(Math.max(Math.floor(random() * candidates.length), 0), candidates.length - 1);
  const chosen = candidates[index];
  if (chosen === undefined) throw new Error('placement: no candidate left to pick');
  return { placed: true, runner: chosen.name };
}

function stages(request: PlacementRequest): Stage[] {
  const org = blankToUndefined(request.organizationId);
  const required = [...new Set(request.capabilities)];
  const labels = describeSelector(request.selector);
  const ns = request.namespace;
  return [
    {
      filter: 'ready',
      keep: (r) => r.ready,
      none: 'is Ready',
      refused: () => 'is not Ready',
    },
    {
      filter: 'namespace',
      keep: (r) =>
        r.accepts.names.includes(ns.name) ||
        (r.accepts.selector !== undefined && selectorMatches(r.accepts.selector, ns.labels)),
      none: `accepts namespace "${ns.name}"`,
      refused: () => `does not accept namespace "${ns.name}"`,
    },
    {
      filter: 'scope',
      keep: (r) => {
        const scope = blankToUndefined(r.organizationId);
        return scope === undefined || scope === org;
      },
      none:
        org === undefined
          ? 'is cluster-scoped, as the workload has no organization'
          : `serves organization "${org}" or the whole cluster`,
      refused: (r) =>
        org === undefined
          ? `serves organization "${r.organizationId}" and the workload has no organization`
          : `serves organization "${r.organizationId}", not "${org}"`,
    },
    {
      filter: 'labels',
      keep: (r) => selectorMatches(request.selector, r.labels),
      none: `matches labels ${labels}`,
      refused: () => `does not match labels ${labels}`,
    },
    {
      filter: 'capabilities',
      keep: (r) => required.every((c) => r.capabilities.includes(c)),
      none: `offers capabilities [${required.join(', ')}]`,
      refused: (r) =>
        `does not offer capabilities [${required.filter((c) => !r.capabilities.includes(c)).join(', ')}]`,
    },
  ];
}

function pool(count: number, previous: string | undefined): string {
  return previous === undefined
    ? `${count} Runner${count === 1 ? '' : 's'}`
    : `${count} candidate${count === 1 ? '' : 's'} after ${previous}`;
}

/** An empty organizationId or runnerRef (a proto3 default) means none. */
function blankToUndefined(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s;
}
