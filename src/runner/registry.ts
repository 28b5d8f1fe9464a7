import type { Logger } from 'pino';
import type { AgentWorkload } from '../api/agentworkload.ts';
import type { Runner, RunnerSpec } from '../api/runner.ts';
import { objectKey, type Informer } from '../kube/informer.ts';
import type { RunnerSettings } from '../workload/runner-settings.ts';
import { runnerSettingsFromSpec } from '../workload/runner-settings.ts';
import type { PlacementDecision, RunnerDirectory } from '../workload/seams.ts';
import { placeWorkload, type PlacementCandidate } from './placement.ts';
import { RUNNER_CONDITIONS } from './runner-status.ts';
import { runnerSpecOf } from './spec.ts';
import { childLogger } from '../kube/child-logger.ts';
import { runnerSelectorOf } from './label-selector.ts';
import type { Namespace } from './namespace-informer.ts';
import { workloadOrganization } from './organization.ts';

export interface RunnerRegistryOptions {
  /** The Runner informer of the operator's namespace (e.g. RunnerController.runnerInformer). */
  runners: Informer<Runner>;
  /** The workload namespace(s) (workloadNamespaceInformer): their labels decide organization and acceptance. */
  namespaces: Informer<Namespace>;
  logger?: Logger;
  /** Random source of the final pick among equal candidates. */
  random?: () => number;
  now?: () => Date;
}

/** What placement sees of a Runner; a change of any of it is announced to listeners. */
interface View {
  key: string;
  candidate: PlacementCandidate;
  signature: string;
}

function viewOf(runner: Runner): View {
  const spec = runnerSpecOf(runner);
  const capabilities = [...new Set(spec.capabilities)];
  if (spec.capabilityImplementations.docker !== undefined && !capabilities.includes('docker')) {
    capabilities.push('docker');
  }
  const ready =
    !runner.metadata.deletionTimestamp &&
    (runner.status?.conditions?.some(
      (c) => c.type === RUNNER_CONDITIONS.ready && c.status === 'True',
    ) ??
      false);
  const organizationId = spec.organizationId?.trim() ? spec.organizationId : undefined;
  const accepted = spec.acceptedNamespaces;
  const candidate: PlacementCandidate = {
    name: runner.metadata.name,
    ready,
    organizationId,
    accepts: {
      names: [spec.workloadNamespace, ...(accepted?.names ?? [])],
      selector: accepted?.selector,
    },
    labels: { ...spec.labels },
    capabilities,
  };
  const sortedLabels = Object.entries(candidate.labels).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const signature = JSON.stringify([
    ready,
    organizationId ?? null,
    candidate.accepts,
    sortedLabels,
    [...capabilities].sort(),
  ]);
  return { key: objectKey(runner), candidate, signature };
}

/** When a not-Ready Runner stopped being Ready, as its own status tells. */
function notReadyTransition(runner: Runner): Date | undefined {
  if (runner.metadata.deletionTimestamp) return parseDate(runner.metadata.deletionTimestamp);
  const ready = runner.status?.conditions?.find((c) => c.type === RUNNER_CONDITIONS.ready);
  return ready && ready.status !== 'True' ? parseDate(ready.lastTransitionTime) : undefined;
}

function parseDate(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * The workload controller's view of the Runners, from the Runner informer's cache: placement
 * among Ready Runners, the settings of a named Runner, and since when a Runner has not been
 * Ready. Listeners hear of every change of readiness, labels, scope or capabilities.
 */
export class RunnerRegistry implements RunnerDirectory {
  private readonly informer: Informer<Runner>;
  private readonly namespaces: Informer<Namespace>;
  private readonly logger?: Logger;
  private readonly random: () => number;
  private readonly now: () => Date;
  private readonly views = new Map<string, View>();
  /** Since when each known not-Ready (or vanished) Runner has not been Ready. */
  private readonly notReady = new Map<string, Date>();
  private readonly listeners: Array<() => void> = [];
  /** One settings object per Runner spec, so that callers may compare settings by identity. */
  private readonly settingsBySpec = new WeakMap<RunnerSpec, RunnerSettings>();
  /** Runners never seen are taken as not Ready since the registry began watching. */
  private readonly startedAt: Date;

  constructor(options: RunnerRegistryOptions) {
    this.informer = options.runners;
    this.logger = options.logger && childLogger(options.logger, { component: 'runner-registry' });
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => new Date());
    this.startedAt = this.now();
    this.informer.addHandler({
      onAdd: (r) => this.observe(r),
      onUpdate: (_old, r) => this.observe(r),
      onDelete: (r) => this.vanished(r),
    });
    this.namespaces = options.namespaces;
    const labelsOf = (n: Namespace | undefined): string =>
      JSON.stringify(
        Object.entries(n?.metadata?.labels ?? {}).sort(([x], [y]) => (x < y ? -1 : 1)),
      );
    const labelsChanged = (a: Namespace | undefined, b: Namespace | undefined): void => {
      if (labelsOf(a) !== labelsOf(b)) this.changed(`namespace ${(a ?? b)?.metadata?.name}`);
    };
    this.namespaces.addHandler({
      onAdd: (n) => labelsChanged(undefined, n),
      onUpdate: (old, n) => labelsChanged(old, n),
      onDelete: (n) => labelsChanged(n, undefined),
    });
  }

  /**
   * A Runner for the workload, among those that accept its namespace and serve its
   * namespace's organization. A spec.organizationId naming another organization is refused
   * with the field (the workload fails config_invalid).
   */
  place(workload: AgentWorkload): PlacementDecision {
    const spec = workload.spec;
    const name = workload.metadata.namespace ?? '';
    const namespace = {
      name,
      labels: { ...this.namespaces.getByKey(name)?.metadata?.labels },
    };
    const organization = workloadOrganization(spec.organizationId, namespace);
    if (!organization.ok) {
      const { field, message } = organization;
      return { placed: false, filter: 'organization', message, field };
    }
    const candidates = [...this.views.values()].map((v) => v.candidate);
    const result = placeWorkload(
      {
        namespace,
        organizationId: organization.organizationId,
        runnerRef: spec.runnerRef?.name,
        selector: runnerSelectorOf(spec.runnerSelector),
        capabilities: spec.capabilities ?? [],
      },
      candidates,
      this.random,
    );
    if (!result.placed) return result;
    const settings = this.settings(result.runner);
    if (!settings)
      return { placed: false, filter: 'runnerRef', message: `Runner "${result.runner}" not found` };
    return { placed: true, runner: settings };
  }

  settings(name: string): RunnerSettings | undefined {
    const runner = this.find(name);
    if (!runner) return undefined;
    const spec = runnerSpecOf(runner);
    let settings = this.settingsBySpec.get(spec);
    if (settings?.name !== name) {
      settings = runnerSettingsFromSpec(name, spec);
      this.settingsBySpec.set(spec, settings);
    }
    return settings;
  }

  notReadySince(name: string): Date | undefined {
    const view = this.views.get(name);
    if (view?.candidate.ready) return undefined;
    return this.notReady.get(name) ?? this.startedAt;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private find(name: string): Runner | undefined {
    const key = this.views.get(name)?.key;
    return key === undefined ? undefined : this.informer.getByKey(key);
  }

  private observe(runner: Runner): void {
    const name = runner.metadata.name;
    const next = viewOf(runner);
    const previous = this.views.get(name);
    this.views.set(name, next);
    if (next.candidate.ready) {
      this.notReady.delete(name);
    } else if (!previous || previous.candidate.ready || !this.notReady.has(name)) {
      this.notReady.set(name, notReadyTransition(runner) ?? this.now());
    }
    if (previous?.signature !== next.signature) this.changed(name);
  }

  private vanished(runner: Runner): void {
    const name = runner.metadata.name;
    const previous = this.views.get(name);
    this.views.delete(name);
    if (previous?.candidate.ready !== false || !this.notReady.has(name))
      this.notReady.set(name, this.now());
    this.changed(name);
  }

  private changed(what: string): void {
    this.logger?.debug({ changed: what }, 'runner placement view changed');
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.logger?.error({ err }, 'runner change listener failed');
      }
    }
  }
}
