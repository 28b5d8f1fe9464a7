/** A Kubernetes LabelSelector (metav1.LabelSelector) and its matching rules. */
export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** The selector of a workload's runnerSelector; the deprecated `labels` join matchLabels. */
export function runnerSelectorOf(
  spec: (LabelSelector & { labels?: Record<string, string> }) | undefined,
): LabelSelector | undefined {
  if (!spec) return undefined;
  return {
    matchLabels: { ...spec.labels, ...spec.matchLabels },
    matchExpressions: spec.matchExpressions ?? [],
  };
}

function requirementHolds(r: LabelSelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  switch (r.operator) {
    case 'In':
      return has && (r.values ?? []).includes(labels[r.key]!);
    case 'NotIn':
      return !has || !(r.values ?? []).includes(labels[r.key]!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
  }
}

/** Every matchLabels entry and every matchExpressions requirement holds (empty matches all). */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return true;
  const exact = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return exact && (selector.matchExpressions ?? []).every((r) => requirementHolds(r, labels));
}

/** kubectl's selector syntax: `{region=eu, tier in (gold, silver), !legacy}`. */
export function describeSelector(selector: LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of selector?.matchExpressions ?? []) {
    const values = `(${(r.values ?? []).join(', ')})`;
    parts.push(
      r.operator === 'In'
        ? `${r.key} in ${values}`
        : r.operator === 'NotIn'
          ? `${r.key} notin ${values}`
          : r.operator === 'Exists'
            ? r.key
            : `!${r.key}`,
    );
  }
  return `{${parts.join(', ')}}`;
}
