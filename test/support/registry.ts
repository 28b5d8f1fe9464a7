/**
 * The test cluster's OCI registry (scripts/test-cluster): its loopback address, the same on
 * the machine and inside the cluster's network namespace, and the operator image build.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { clusterStateDir } from './kube.ts';

const run = promisify(execFile);
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function portsEnv(key: string, stateDir: string): string {
  const ports = readFileSync(path.join(stateDir, 'ports.env'), 'utf8');
  const value = new RegExp(`^${key}=(.+)$`, 'm').exec(ports)?.[1];
  if (!value) throw new Error(`${key} not found in ports.env`);
  return value;
}

/** host:port of the registry of the cluster in `stateDir` (default: the shared one). */
export function registryHost(stateDir = clusterStateDir()): string {
  return `127.0.0.1:${portsEnv('REGISTRY_PORT', stateDir)}`;
}

/** Runs scripts/build-image.sh: the OCI layout in `outDir`, pushed to `ref` when given. */
export async function buildOperatorImage(outDir: string, ref?: string): Promise<void> {
  const args = [path.join(root, 'scripts/build-image.sh'), outDir, ...(ref ? [ref] : [])];
  await run('bash', args, { cwd: root, maxBuffer: 64 * 1024 * 1024 });
}
