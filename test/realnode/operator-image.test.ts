/**
 * The operator image built without Docker (scripts/build-image.sh): it describes the same
 * image as the Dockerfile (files under /app, user, entrypoint, env, ports), it is pushed to
 * the test cluster's OCI registry, and the real node's containerd pulls it from there and
 * runs its Node.js as the non-root user.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDockerfile, type DockerfileImage } from '../support/dockerfile.ts';
import {
  createTestNamespace,
  eventually,
  testKubeClient,
  type TestNamespace,
} from '../support/kube.ts';
import { REAL_NODE, REAL_NODE_LABEL, kubectl } from '../support/real-node.ts';
import { buildOperatorImage, registryHost, root } from '../support/registry.ts';

/** The entrypoint of the Dockerfile's runtime base (distroless Node.js images run node). */
const DISTROLESS_NODE_ENTRYPOINT = ['/nodejs/bin/node'];

interface ImageConfig {
  config: {
    User?: string;
    WorkingDir?: string;
    Entrypoint?: string[];
    Cmd?: string[];
    Env?: string[];
    ExposedPorts?: Record<string, object>;
  };
}

let layout: string;
let ref: string;
let ns: TestNamespace;

function blob(digest: string): Buffer {
  return readFileSync(path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

function manifest(): { config: { digest: string }; layers: { digest: string }[] } {
  const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  return JSON.parse(blob(index.manifests[0]!.digest).toString()) as ReturnType<typeof manifest>;
}

/** The entries directly under /app across every layer. */
function appEntries(): string[] {
  const top = new Set<string>();
  for (const layer of manifest().layers) {
    const file = path.join(layout, 'blobs', 'sha256', layer.digest.replace(/^sha256:/, ''));
    const list = execFileSync('tar', ['-tzf', file], { maxBuffer: 256 * 1024 * 1024 }).toString();
    for (const entry of list.split('\n')) {
      const m = /^\.\/app\/([^/]+)/.exec(entry);
      if (m) top.add(`/app/${m[1]}`);
    }
  }
  return [...top].sort();
}

beforeAll(async () => {
  layout = mkdtempSync(path.join(os.tmpdir(), 'operator-image-'));
  ref = `${registryHost()}/k8s-runner:image-test`;
  await buildOperatorImage(layout, ref);
  ns = await createTestNamespace(testKubeClient(), 'rn-image');
}, 600_000);

afterAll(async () => {
  await ns?.cleanup();
  rmSync(layout, { recursive: true, force: true });
});

describe('the operator image built without Docker', () => {
  let dockerfile: DockerfileImage;
  let config: ImageConfig['config'];

  beforeAll(() => {
    dockerfile = parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
    config = (JSON.parse(blob(manifest().config.digest).toString()) as ImageConfig).config;
  });

  it('has the same files under /app as the Dockerfile copies there', () => {
    expect(appEntries()).toEqual([...dockerfile.copied].sort());
  });

  it('has the Dockerfile user, workdir, entrypoint, command, env and ports', () => {
    expect(dockerfile.runtimeImage).toMatch(/^gcr\.io\/distroless\/nodejs24-/);
    expect(config.User).toBe(dockerfile.user);
    expect(config.WorkingDir).toBe(dockerfile.workdir);
    expect(config.Entrypoint).toEqual(DISTROLESS_NODE_ENTRYPOINT);
    expect(config.Cmd).toEqual(dockerfile.cmd);
    for (const [key, value] of Object.entries(dockerfile.env)) {
      expect(config.Env).toContain(`${key}=${value}`);
    }
    expect(Object.keys(config.ExposedPorts ?? {}).sort()).toEqual(
      dockerfile.exposed.map((p) => `${p}/tcp`).sort(),
    );
  });

  it('is pulled by the real node from the cluster registry and runs Node 24 as 65532', async () => {
    const pod = 'image-probe';
    const podJson = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod, namespace: ns.name },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        nodeSelector: { [REAL_NODE_LABEL]: 'true' },
        tolerations: [{ key: REAL_NODE_LABEL, operator: 'Exists', effect: 'NoSchedule' }],
        containers: [
          {
            name: 'node',
            image: ref,
            imagePullPolicy: 'Always',
            args: ['-e', 'console.log(process.version, process.getuid(), process.cwd())'],
            securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
          },
        ],
      },
    });
    const file = path.join(layout, 'pod.json');
    writeFileSync(file, podJson);
    await kubectl('apply', '-f', file);
    const phase = await eventually(
      async () => {
        const p = await kubectl('-n', ns.name, 'get', 'pod', pod, '-o', 'jsonpath={.status.phase}');
        return p === 'Succeeded' || p === 'Failed' ? p : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 500, what: `Pod ${pod} to finish` },
    );
    expect(phase).toBe('Succeeded');
    const node = await kubectl('-n', ns.name, 'get', 'pod', pod, '-o', 'jsonpath={.spec.nodeName}');
    expect(node).toBe(REAL_NODE);
    const logs = await kubectl('-n', ns.name, 'logs', pod);
    expect(logs.trim()).toMatch(/^v24\.\d+\.\d+ 65532 \/app$/);
  });
});
