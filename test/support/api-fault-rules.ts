/**
 * What the API fault proxy may do to one request, and what it records about each. Pure: the
 * proxy (api-fault-proxy.ts) applies the rules; the tests read the records.
 */

/** The parts of a request the rules and the counters look at. */
export interface RequestInfo {
  method: string;
  /** Path and query, as sent. */
  url: string;
  path: string;
  /** A GET with watch=true|1. */
  watch: boolean;
  /** Anything but GET, HEAD and OPTIONS. */
  write: boolean;
}

export type Match = (request: RequestInfo) => boolean;

interface RuleBase {
  /** Which requests the rule applies to (all by default). */
  match?: Match;
  /** Chance that it fires for a matching request (1 by default). */
  probability?: number;
}

/** Answers with this status (and a Kubernetes Status body) instead of forwarding. */
export interface StatusRule extends RuleBase {
  kind: 'status';
  code: 429 | 500 | 502 | 503 | 504;
  retryAfterSeconds?: number;
}
/** Resets the client's connection before anything is forwarded. */
export interface ResetRule extends RuleBase {
  kind: 'reset';
}
/** Holds the request this long, then goes on with the next rules. */
export interface DelayRule extends RuleBase {
  kind: 'delay';
  ms: number;
}
/** A watch answered 200 with no events and closed at once (a clean, very short watch). */
export interface EndWatchRule extends RuleBase {
  kind: 'endWatch';
}
/** A watch forwarded, then its connection reset after a random time in [minMs, maxMs]. */
export interface ResetWatchRule extends RuleBase {
  kind: 'resetWatch';
  minMs: number;
  maxMs: number;
}

/** A watch forwarded with every chunk of its stream held this long: a cache that lags behind. */
export interface LagWatchRule extends RuleBase {
  kind: 'lagWatch';
  ms: number;
}

export type FaultRule =
  StatusRule | ResetRule | DelayRule | EndWatchRule | ResetWatchRule | LagWatchRule;

export type Outcome =
  | 'forwarded'
  | 'status'
  | 'reset'
  | 'endWatch'
  /** Refused while the client was partitioned (connection reset). */
  | 'partitioned'
  /** Held by a partition, and the client had given up on it when it healed: never forwarded. */
  | 'dropped'
  | 'pending';

export interface RecordedRequest extends RequestInfo {
  /** When the proxy received it (ms since the epoch). */
  at: number;
  outcome: Outcome;
  /** When it was sent on to kube-apiserver, if it was. */
  forwardedAt?: number;
  /** The status the client got (from kube-apiserver or injected). */
  status?: number;
  /** The body of a write (its first 4 KiB). */
  body?: string;
}

export const isWatch = (url: URL): boolean =>
  ['true', '1'].includes(url.searchParams.get('watch') ?? '');

export function describeRequest(method: string, rawUrl: string): RequestInfo {
  const url = new URL(rawUrl, 'https://proxy.invalid');
  return {
    method,
    url: rawUrl,
    path: url.pathname,
    watch: method === 'GET' && isWatch(url),
    write: !['GET', 'HEAD', 'OPTIONS'].includes(method),
  };
}

/** The terminal rule that fires for a request, after the delays that fire before it. */
export function chooseFaults(
  rules: readonly FaultRule[],
  request: RequestInfo,
  random: () => number,
): { delayMs: number; rule?: Exclude<FaultRule, DelayRule> } {
  let delayMs = 0;
  for (const rule of rules) {
    if (rule.match && !rule.match(request)) continue;
    const watchOnly = ['endWatch', 'resetWatch', 'lagWatch'].includes(rule.kind);
    if (watchOnly && !request.watch) continue;
    if (random() >= (rule.probability ?? 1)) continue;
    if (rule.kind === 'delay') delayMs += rule.ms;
    else return { delayMs, rule };
  }
  return { delayMs };
}

/** The body kube-apiserver sends with an error status. */
export function statusBody(code: number): string {
  const reason =
    code === 429 ? 'TooManyRequests' : code === 503 ? 'ServiceUnavailable' : 'InternalError';
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `injected by the API fault proxy (${code})`,
    reason,
    code,
  });
}

/**
 * Requests per second in [from, to): index i counts those received in second i. Counts every
 * request the client sent, whatever the proxy did with it.
 */
export function requestsPerSecond(
  records: readonly RecordedRequest[],
  from: number,
  to: number,
): number[] {
  const seconds = Math.max(0, Math.ceil((to - from) / 1000));
  const counts = new Array<number>(seconds).fill(0);
  for (const r of records) {
    if (r.at < from || r.at >= to) continue;
    const i = Math.floor((r.at - from) / 1000);
    counts[i] = (counts[i] ?? 0) + 1;
  }
  return counts;
}

/** Writes that reached kube-apiserver at or after `since`. */
export function writesForwardedSince(
  records: readonly RecordedRequest[],
  since: number,
): RecordedRequest[] {
  return records.filter((r) => r.write && r.forwardedAt !== undefined && r.forwardedAt >= since);
}
