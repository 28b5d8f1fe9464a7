import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Runner, RunnerSpec } from '../api/runner.ts';
import { InformerCache, InformerGroup } from '../kube/cache.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import { RUNNERS, SECRETS } from '../kube/resources.ts';

type Secret = ISecret & KubeObject;

/** Runners by the Secrets they reference (token, gateway CA). */
export const SECRET_REF_INDEX = 'secretRefs';

export function runnerSecretRefs(runner: Runner): string[] {
  const spec = runner.spec as Partial<RunnerSpec> | undefined;
  const names = [spec?.serviceToken?.secretRef?.name, spec?.gateway?.caSecretRef?.name];
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

const RUNNER_INDEXES = { [SECRET_REF_INDEX]: runnerSecretRefs };

/** Helm keeps whole releases in Secrets of the release namespace; nothing here reads them. */
export function dropHelmReleaseData(secret: Secret): Secret {
  return secret.type === 'helm.sh/release.v1' ? { ...secret, data: undefined } : secret;
}

/** The informers of the operator's namespace: Runners and every Secret (Helm releases trimmed). */
export class RunnerCaches extends InformerGroup {
  readonly runners: Informer<Runner>;
  readonly secrets: Informer<Secret>;

  constructor(cache: InformerCache, namespace: string) {
    const runners = cache.informer<Runner>({
      resource: RUNNERS,
      namespace,
      indexes: RUNNER_INDEXES,
    });
    const secrets = cache.informer<Secret>({
      resource: SECRETS,
      namespace,
      transform: dropHelmReleaseData,
    });
    super([runners, secrets]);
    this.runners = runners;
    this.secrets = secrets;
  }
}
