import type { RunnerSpec } from '../api/runner.ts';
import type { Failure } from './runner-status.ts';

/** The label that marks a Secret as made to hold a Runner's service token. */
export const RUNNER_TOKEN_LABEL = 'agyn.io/runner-token';

interface LabelledObject {
  metadata?: { name?: string; labels?: Record<string, string> };
}

function usesTls(url: string): boolean {
  return /^(https|grpcs):\/\//.test(url);
}

/**
 * Why the service token in `tokenSecret` may not be sent to the Runner's gateway, or
 * undefined: the Secret must be labelled as a Runner token (so that a Runner cannot
 * borrow any other Secret of the namespace), and the gateway must use TLS unless the
 * Runner sets `spec.gateway.insecure: true`.
 */
export function tokenSendProblem(
  spec: RunnerSpec,
  tokenSecret: LabelledObject,
): Failure | undefined {
  const name = tokenSecret.metadata?.name ?? spec.serviceToken.secretRef.name;
  if (tokenSecret.metadata?.labels?.[RUNNER_TOKEN_LABEL] !== 'true') {
    return {
      reason: 'TokenSecretNotLabelled',
      message: `token Secret "${name}" lacks the label ${RUNNER_TOKEN_LABEL}: "true"; nothing is sent until it has it`,
    };
  }
  if (!usesTls(spec.gateway.url) && spec.gateway.insecure !== true) {
    return {
      reason: 'GatewayInsecure',
      message: `spec.gateway.url "${spec.gateway.url}" is not https:// or grpcs://: the service token is sent in plain text only with spec.gateway.insecure: true`,
    };
  }
  return undefined;
}
