/**
 * The API server of the gRPC fuzz test: one managed workload (Pod, AgentWorkload, PVC) in
 * namespace NS; reads answer it, writes succeed or fail at random, watches stay open (events
 * end), logs and exec (a WebSocket echoing stdin) work or fail at random, all from `rnd`.
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';

export const NS = 'fuzz';
export const ID = '0f0f0f0f-1111-4222-8333-444444444444';
export const POD = `workload-${ID}`;

const labels = {
  'app.kubernetes.io/managed-by': 'k8s-runner',
  'agyn.io/workload-id': ID,
  workload_key: 'k',
};
const objects: Record<string, unknown> = {
  pods: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: NS, uid: 'pod-uid', resourceVersion: '1', labels },
    spec: {
      containers: [{ name: 'main', image: 'alpine' }],
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
    },
    status: {
      phase: 'Running',
      containerStatuses: [
        { name: 'main', image: 'alpine', restartCount: 0, state: { running: {} } },
      ],
    },
  },
  agentworkloads: {
    apiVersion: 'agyn.io/v1alpha1',
    kind: 'AgentWorkload',
    metadata: { name: POD, namespace: NS, uid: 'aw-uid', resourceVersion: '1', labels },
    spec: {
      workloadId: ID,
      main: { name: 'main', image: 'alpine', mounts: [{ volume: 'data', mountPath: '/d' }] },
      sidecars: [],
      initContainers: [],
      volumes: [{ name: 'data', kind: 'Persistent', persistentName: 'data' }],
      capabilities: [],
      stopped: false,
      restartPolicy: 'Never',
      deleteVolumesWithWorkload: false,
      labels: { workload_key: 'k' },
    },
    status: { phase: 'Running', podName: POD },
  },
  persistentvolumeclaims: {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: 'data',
      namespace: NS,
      resourceVersion: '1',
      labels: { 'app.kubernetes.io/managed-by': 'k8s-runner', volume_key: 'v' },
    },
  },
};

const STATUSES: Array<[number, string]> = [
  [404, 'NotFound'],
  [409, 'AlreadyExists'],
  [409, 'Conflict'],
  [422, 'Invalid'],
  [401, 'Unauthorized'],
  [403, 'Forbidden'],
  [400, 'BadRequest'],
  [500, 'InternalError'],
];

export function fakeApi(rnd: () => number): http.Server {
  const chance = (p: number): boolean => rnd() < p;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    const nsIndex = parts.indexOf('namespaces');
    const plural = parts[nsIndex + 2] ?? '';
    const name = parts[nsIndex + 3];
    const sub = parts[nsIndex + 4];
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (): void => {
      const [code, reason] = pick(STATUSES);
      json(code, { kind: 'Status', status: 'Failure', reason, code, message: `fake ${reason}` });
    };
    req.resume();
    if (url.searchParams.get('watch')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (plural !== 'events') return; // informer watches stay open
      const event = {
        metadata: { name: 'e', namespace: NS },
        involvedObject: { kind: 'Pod', name: POD },
        reason: 'Started',
        type: 'Normal',
      };
      res.write(`${JSON.stringify({ type: 'ADDED', object: event })}\n`);
      if (chance(0.2)) res.write('{garbage\n');
      if (chance(0.2))
        res.write(`${JSON.stringify({ type: 'ERROR', object: { code: 410, message: 'gone' } })}\n`);
      setTimeout(() => res.end(), 20);
      return;
    }
    if (req.method === 'GET' && name === undefined) {
      const obj = objects[plural];
      json(200, { metadata: { resourceVersion: '1' }, items: obj ? [obj] : [] });
      return;
    }
    if (sub === 'log') {
      if (chance(0.3)) return fail();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('line 1\n');
      setTimeout(() => res.end('line 2\n'), 5);
      return;
    }
    if (chance(0.5)) {
      const obj = objects[plural] ?? { metadata: { name, namespace: NS } };
      json(req.method === 'POST' ? 201 : 200, obj);
      return;
    }
    fail();
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'v5.channel.k8s.io' });
  server.on('upgrade', (req, socket, head) => {
    if (chance(0.2)) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (raw: Buffer) => {
        if (raw[0] === 0) ws.send(Buffer.concat([Buffer.from([1]), raw.subarray(1)]));
        if (raw[0] === 255) {
          ws.send(
            Buffer.concat([
              Buffer.from([3]),
              Buffer.from(
                JSON.stringify({
                  status: chance(0.5) ? 'Success' : 'Failure',
                  message: 'exit status 3',
                }),
              ),
            ]),
          );
          ws.close();
        }
      });
      ws.on('error', () => {});
    });
  });
  return server;
}
