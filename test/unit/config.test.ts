import { loadConfig } from '../../src/config.ts';

describe('loadConfig', () => {
  it('requires a workload namespace other than the operator namespace', () => {
    expect(() => loadConfig({ OPERATOR_NAMESPACE: 'ops' })).toThrow(/WORKLOAD_NAMESPACE/);
    expect(() => loadConfig({ OPERATOR_NAMESPACE: 'ops', WORKLOAD_NAMESPACE: 'ops' })).toThrow(
      /WORKLOAD_NAMESPACE: must not be OPERATOR_NAMESPACE/,
    );
    expect(loadConfig({ OPERATOR_NAMESPACE: 'ops', WORKLOAD_NAMESPACE: 'wl' })).toMatchObject({
      OPERATOR_NAMESPACE: 'ops',
      WORKLOAD_NAMESPACE: 'wl',
      POD_ANNOTATION_PREFIXES: ['pod.agyn.io/'],
    });
  });
});
