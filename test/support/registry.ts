/**
 * The test cluster's OCI registry (scripts/test-cluster): its loopback address, the same on
 * the machine and inside the cluster's network namespace, served over TLS with a
 * certificate of the cluster's CA; and the operator image build.
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

/**
 * The environment that makes Go clients (helm, crane) trust the registry of the cluster in
 * `stateDir`: it serves TLS with a certificate of the cluster's CA.
 */
export function registryEnv(stateDir = clusterStateDir()): { SSL_CERT_FILE: string } {
  return { SSL_CERT_FILE: path.join(stateDir, 'pki', 'ca.crt') };
}

/**
 * Runs scripts/build-image.sh: the OCI layout in `outDir`, pushed to `ref` (a reference in
 * the registry of the cluster in `stateDir`) when given.
 */
export async function buildOperatorImage(
  outDir: string,
  ref?: string,
  stateDir = clusterStateDir(),
): Promise<void> {
  const args = [path.join(root, 'scripts/build-image.sh'), outDir, ...(ref ? [ref] : [])];
  await run('bash', args, {
    cwd: root,
    env: { ...process.env, ...registryEnv(stateDir) },
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Pushes the OCI layout in `layout` (from buildOperatorImage) as `ref` with crane. */
export async function pushImageLayout(
  layout: string,
  ref: string,
  stateDir = clusterStateDir(),
): Promise<void> {
  await run(path.join(portsEnv('REGISTRY_BIN_DIR', stateDir), 'crane'), ['push', layout, ref], {
    env: { ...process.env, ...registryEnv(stateDir) },
  });
}
