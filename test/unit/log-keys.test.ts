/** No log line carries a key twice: pino appends child bindings, childLogger binds each once. */
import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { Controller } from '../../src/kube/controller.ts';
import { childLogger } from '../../src/kube/child-logger.ts';
import { createLogger } from '../../src/observability/logging.ts';
import { duplicateKeys } from '../support/json-keys.ts';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

describe('duplicateKeys', () => {
  it('finds a key repeated in one object, at any depth, and nothing else', () => {
    expect(duplicateKeys('{"a":1,"b":{"c":1,"c":2},"a":"x"}')).toEqual(['c', 'a']);
    expect(duplicateKeys('{"a":[{"k":1},{"k":2}],"s":"\\"a\\":1,\\"a\\":2"}')).toEqual([]);
  });
});

describe('operator log lines', () => {
  it('name the process once and each subsystem once', () => {
    const { lines, stream } = capture();
    const root = createLogger('info', stream);
    const grpc = childLogger(root, { component: 'grpc' });
    grpc.child({ rpc: 'Ready' }).info('rpc handled');
    childLogger(root, { component: 'runner-controller' }).info('enrolled');
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([
      { name: 'k8s-runner', component: 'grpc', rpc: 'Ready' },
      { name: 'k8s-runner', component: 'runner-controller' },
    ]);
    expect(lines.flatMap(duplicateKeys)).toEqual([]);
  });

  it('bind a controller once when its caller already bound it (the workload controller)', async () => {
    const { lines, stream } = capture();
    const workloads = createLogger('debug', stream).child({ controller: 'agentworkload' });
    const controller = new Controller({
      name: 'agentworkload',
      logger: workloads,
      reconcile: () => Promise.resolve({}),
    });
    controller.start();
    await controller.stop();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.flatMap(duplicateKeys)).toEqual([]);
  });

  it('refuse to bind a key again with another value', () => {
    const root = createLogger('info', capture().stream);
    expect(() => childLogger(childLogger(root, { component: 'a' }), { component: 'b' })).toThrow(
      /already binds component=a/,
    );
  });
});
