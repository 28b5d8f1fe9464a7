import { describe, expect, it } from '@jest/globals';
import { runnerSpecSchema } from '../../src/api/runner.ts';
import { RUNNER_TOKEN_LABEL, tokenSendProblem } from '../../src/runner/token-rule.ts';

const spec = (gateway: Record<string, unknown>) =>
  runnerSpecSchema.parse({
    gateway,
    serviceToken: { secretRef: { name: 'tok' } },
    workloadNamespace: 'agents',
  });
const labelled = { metadata: { name: 'tok', labels: { [RUNNER_TOKEN_LABEL]: 'true' } } };

describe('when the service token may be sent', () => {
  it.each(['https://gw.example.com', 'grpcs://gw.example.com:443'])(
    'to %s from a labelled Secret',
    (url) => expect(tokenSendProblem(spec({ url }), labelled)).toBeUndefined(),
  );

  it.each(['http://gw.example.com', 'grpc://127.0.0.1:9000'])(
    'to %s only with spec.gateway.insecure',
    (url) => {
      expect(tokenSendProblem(spec({ url }), labelled)?.reason).toBe('GatewayInsecure');
      expect(tokenSendProblem(spec({ url, insecure: false }), labelled)?.reason).toBe(
        'GatewayInsecure',
      );
      expect(tokenSendProblem(spec({ url, insecure: true }), labelled)).toBeUndefined();
    },
  );

  it.each([
    ['no labels', { metadata: { name: 'tok' } }],
    ['another value', { metadata: { name: 'tok', labels: { [RUNNER_TOKEN_LABEL]: 'yes' } } }],
  ])('never from a Secret without the label (%s), even to a TLS gateway', (_what, secret) => {
    expect(tokenSendProblem(spec({ url: 'https://gw.example.com' }), secret)).toEqual({
      reason: 'TokenSecretNotLabelled',
      message:
        'token Secret "tok" lacks the label agyn.io/runner-token: "true"; nothing is sent until it has it',
    });
  });
});
