import { expect, test } from '@jest/globals';
import {
  chooseFaults,
  describeRequest,
  requestsPerSecond,
  writesForwardedSince,
  type FaultRule,
  type RecordedRequest,
} from '../../test/support/api-fault-rules.ts';

test('requests are told apart: watches, reads and writes', () => {
  expect(describeRequest('GET', '/api/v1/pods?watch=true&resourceVersion=5')).toMatchObject({
    path: '/api/v1/pods',
    watch: true,
    write: false,
  });
  expect(describeRequest('GET', '/api/v1/pods?watch=false')).toMatchObject({ watch: false });
  expect(describeRequest('PATCH', '/api/v1/namespaces/a/pods/p')).toMatchObject({
    watch: false,
    write: true,
  });
});

test('delays add up before the first terminal rule that fires; watch rules skip other requests', () => {
  const rules: FaultRule[] = [
    { kind: 'delay', ms: 100 },
    { kind: 'endWatch' },
    { kind: 'status', code: 503, probability: 0.5 },
    { kind: 'delay', ms: 50 },
    { kind: 'reset' },
  ];
  const read = describeRequest('GET', '/api/v1/pods');
  expect(chooseFaults(rules, read, () => 0.9)).toEqual({ delayMs: 150, rule: { kind: 'reset' } });
  expect(chooseFaults(rules, read, () => 0.1).rule).toEqual({
    kind: 'status',
    code: 503,
    probability: 0.5,
  });
  const watch = describeRequest('GET', '/api/v1/pods?watch=1');
  expect(chooseFaults(rules, watch, () => 0.9)).toEqual({
    delayMs: 100,
    rule: { kind: 'endWatch' },
  });
  expect(chooseFaults([{ kind: 'reset', match: (r) => r.write }], read, () => 0)).toEqual({
    delayMs: 0,
  });
});

const at = (ms: number, extra: Partial<RecordedRequest> = {}): RecordedRequest => ({
  ...describeRequest('GET', '/x'),
  at: ms,
  outcome: 'forwarded',
  ...extra,
});

test('requests per second bucket every request received in the window', () => {
  const records = [at(999), at(1000), at(1500), at(2999), at(3000), at(4100)];
  expect(requestsPerSecond(records, 1000, 4000)).toEqual([2, 1, 1]);
  expect(requestsPerSecond(records, 1000, 1000)).toEqual([]);
});

test('writes counted are those that reached the API server after the instant', () => {
  const post = (ms: number, forwardedAt?: number): RecordedRequest =>
    at(ms, { ...describeRequest('POST', '/api/v1/namespaces/a/pods'), forwardedAt });
  const records = [post(100, 100), post(200), post(300, 900), at(950, { forwardedAt: 950 })];
  expect(writesForwardedSince(records, 500)).toEqual([records[2]]);
});
