/**
 * The seed's install path, word for word, against a private test cluster: the operator
 * image (scripts/build-image.sh) and the packaged chart are pushed to the cluster's OCI
 * registry, `helm install … oci://…/charts/k8s-runner --version <v> --namespace agyn-runners
 * --create-namespace --values <seed values>` plus one `--set` for the image installs it,
 * and the operator Pod becomes Ready on the real node: pulled from the registry, non-root,
 * reaching the API server through the `kubernetes` Service (kube-proxy) with its own
 * ServiceAccount token. `kubectl -n agyn-runners get pods -l app=k8s-runner` lists it.
 * The registry speaks plain HTTP on loopback, so helm gets --plain-http.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { binDir } from '../support/kube.ts';
import {
  REAL_NODE,
  REAL_NODE_LABEL,
  startPrivateRealNodeCluster,
  type PrivateRealNodeCluster,
} from '../support/real-node.ts';
import { buildOperatorImage, registryHost, root } from '../support/registry.ts';

const run = promisify(execFile);
const chart = path.join(root, 'charts/k8s-runner');
const seedValues = path.join(root, 'test/fixtures/seed-values.yaml');
const version = (parse(readFileSync(path.join(chart, 'Chart.yaml'), 'utf8')) as { version: string })
  .version;

let cluster: PrivateRealNodeCluster;
let work: string;
let registry: string;

async function tool(name: 'kubectl' | 'helm', ...args: string[]): Promise<string> {
  const { stdout } = await run(path.join(binDir(), name), args, {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

beforeAll(async () => {
  cluster = await startPrivateRealNodeCluster();
  work = mkdtempSync(path.join(os.tmpdir(), 'install-oci-'));
  registry = registryHost(cluster.dir);
  await buildOperatorImage(path.join(work, 'image'), `${registry}/k8s-runner:${version}`);
  await tool('helm', 'package', chart, '--destination', work);
  const packaged = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!packaged) throw new Error('helm package wrote no chart archive');
  await tool('helm', 'push', path.join(work, packaged), `oci://${registry}/charts`, '--plain-http');
  // Only the real node takes Pods in this private cluster, so the chart needs no toleration.
  await tool('kubectl', 'cordon', '-l', 'type=kwok');
  await tool('kubectl', 'taint', 'node', REAL_NODE, `${REAL_NODE_LABEL}-`);
}, 900_000);

afterAll(async () => {
  await cluster?.down();
  if (work) rmSync(work, { recursive: true, force: true });
}, 180_000);

describe('helm install from the OCI registry, as the seed does it', () => {
  it('runs the operator Pod Ready on the real node, found by app=k8s-runner', async () => {
    await tool(
      'helm',
      'install',
      'acme-runner',
      `oci://${registry}/charts/k8s-runner`,
      '--version',
      version,
      '--namespace',
      'agyn-runners',
      '--create-namespace',
      '--values',
      seedValues,
      '--set',
      `image.repository=${registry}/k8s-runner`,
      '--plain-http',
    );
    await tool(
      'kubectl',
      '-n',
      'agyn-runners',
      'create',
      'secret',
      'generic',
      'k8s-runner-token',
      '--from-literal=token=seed-service-token',
    );
    await tool(
      'kubectl',
      '-n',
      'agyn-runners',
      'label',
      'secret',
      'k8s-runner-token',
      'agyn.io/runner-token=true',
    );
    const waited = await run(
      path.join(binDir(), 'kubectl'),
      [
        '-n',
        'agyn-runners',
        'wait',
        '--for=condition=Ready',
        'pod',
        '-l',
        'app=k8s-runner',
        '--timeout=240s',
      ],
      { env: { ...process.env, KUBECONFIG: cluster.kubeconfig } },
    ).catch(async (err: Error) => {
      const pods = await tool('kubectl', '-n', 'agyn-runners', 'describe', 'pods');
      const logs = await tool(
        'kubectl',
        '-n',
        'agyn-runners',
        'logs',
        '-l',
        'app=k8s-runner',
        '--tail=40',
      ).catch((e: Error) => e.message);
      throw new Error(`${err.message}\n${pods}\n${logs}`);
    });
    expect(waited.stdout).toContain('condition met');
    const listed = await tool(
      'kubectl',
      '-n',
      'agyn-runners',
      'get',
      'pods',
      '-l',
      'app=k8s-runner',
      '-o',
      'json',
    );
    const pods = (
      JSON.parse(listed) as {
        items: { spec: { nodeName: string; containers: { image: string }[] } }[];
      }
    ).items;
    // The chart's default: two replicas, one of them the leader.
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.spec.nodeName).toBe(REAL_NODE);
      expect(pod.spec.containers[0]!.image).toBe(`${registry}/k8s-runner:${version}`);
    }
  }, 400_000);
});
