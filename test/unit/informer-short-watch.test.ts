import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { KubeClient, type KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { CONFIGMAPS } from '../../src/kube/resources.ts';

// A loopback HTTP server whose watches end at once (what a proxy or an overloaded API
// server may do); the fifth carries one event, i.e. is healthy.
test('watches that end at once without events back off 800 ms doubling; a healthy one resets', async () => {
  let watches = 0;
  const running: { informer?: Informer<KubeObject> } = {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') !== '1') {
      res.end(JSON.stringify({ metadata: { resourceVersion: '10' }, items: [] }));
      return;
    }
    watches++;
    if (watches === 4) {
      const obj = { metadata: { name: 'a', namespace: 'ns', resourceVersion: '11' } };
      res.end(JSON.stringify({ type: 'ADDED', object: obj }) + '\n');
      return;
    }
    if (watches >= 6) void running.informer?.stop();
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const client = new KubeClient({
    server: `http://127.0.0.1:${port}`,
    requestOptions: () => Promise.resolve({}),
  });
  const delays: number[] = [];
  const informer = new Informer(client.resource<KubeObject>(CONFIGMAPS), {
    namespace: 'ns',
    logger: pino({ level: 'silent' }),
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  });
  running.informer = informer;
  informer.start();
  await informer.waitForSync();
  await new Promise<void>((resolve) => {
    const check = (): void => (watches >= 6 ? resolve() : void setTimeout(check, 10));
    check();
  });
  await informer.stop();
  client.close();
  server.close();
  const bases = [800, 1600, 3200, 800];
  expect(delays.length).toBeGreaterThanOrEqual(4);
  delays.slice(0, 4).forEach((d, i) => {
    const base = bases[i] ?? 0;
    expect(d).toBeGreaterThanOrEqual(base * 0.8);
    expect(d).toBeLessThanOrEqual(base * 1.2);
  });
  expect(informer.stats.shortWatches).toBeGreaterThanOrEqual(4);
});
