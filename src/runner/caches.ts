import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Runner } from '../api/runner.ts';
import { InformerCache, InformerGroup } from '../kube/cache.ts';
import type { KubeObject } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import { RUNNERS } from '../api/resources.ts';
import { runnerSecretRefs } from './identity-store.ts';
import { operatorSecretCache, type OperatorSecrets } from './operator-secrets.ts';

type Secret = ISecret & KubeObject;

/** Runners by the Secrets they reference (token, gateway CA). */
export const SECRET_REF_INDEX = 'secretRefs';

const RUNNER_INDEXES = { [SECRET_REF_INDEX]: runnerSecretRefs };

/**
 * The informers of the operator's namespace: Runners, and only the Secrets the operator needs
 * (OPERATOR_SECRET_SELECTORS, plus the gRPC token Secret by name when given); Helm releases
 * and every other Secret never enter the cache.
 */
export class RunnerCaches extends InformerGroup {
  readonly runners: Informer<Runner>;
  readonly secrets: OperatorSecrets<Secret>;

  constructor(cache: InformerCache, namespace: string, grpcTokenSecret?: string) {
    const runners = cache.informer<Runner>({
      resource: RUNNERS,
      namespace,
      indexes: RUNNER_INDEXES,
    });
    const secrets = operatorSecretCache<Secret>(cache, namespace, grpcTokenSecret);
    super([runners, secrets]);
    this.runners = runners;
    this.secrets = secrets;
  }
}
