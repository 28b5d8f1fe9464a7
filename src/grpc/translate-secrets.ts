import type { ISecret } from 'kubernetes-models/v1/Secret';
import { workloadLabels } from '../api/common.ts';
import { inlineFilesSecretName, pullSecretName } from '../workload/pod-builder.ts';
import type { StartWorkloadRequest } from '../gen/agynio/api/runner/v1/runner.ts';
import { invalidArgument } from './errors.ts';
import { checkInlinePath } from './translate-containers.ts';

// The Secrets a StartWorkloadRequest needs: image pull credentials and inline files.

export type Secret = ISecret & { metadata: { name: string; namespace: string } };

/** A Secret's data may hold at most 1 MiB (the API server's limit). */
const MAX_INLINE_FILES_BYTES = 1024 * 1024;

export function pullCredentialSecret(
  req: StartWorkloadRequest,
  workloadId: string,
  podName: string,
  namespace: string,
): Secret | undefined {
  if (req.imagePullCredentials.length === 0) return undefined;
  const auths: Record<string, { username: string; password: string; auth: string }> = {};
  req.imagePullCredentials.forEach((cred, i) => {
    const field = `image_pull_credentials[${i}]`;
    if (cred.registry.trim() === '')
      throw invalidArgument('image_pull_registry_required', `${field}.registry`);
    if (cred.username.trim() === '')
      throw invalidArgument('image_pull_username_required', `${field}.username`);
    if (cred.password === '')
      throw invalidArgument('image_pull_password_required', `${field}.password`);
  });
  for (const cred of req.imagePullCredentials) {
    const registry = cred.registry.trim();
    const username = cred.username.trim();
    auths[registry] = {
      username,
      password: cred.password,
      auth: Buffer.from(`${username}:${cred.password}`).toString('base64'),
    };
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: { name: pullSecretName(podName), namespace, labels: workloadLabels(workloadId) },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
  };
}

export interface InlinePlan {
  secret: Secret;
  files: Array<{ path: string; key: string }>;
  keys: Map<string, string>;
  paths: string[];
}

export function inlineFiles(
  req: StartWorkloadRequest,
  workloadId: string,
  podName: string,
  namespace: string,
): InlinePlan | undefined {
  const paths = Object.keys(req.inlineFiles).sort();
  if (paths.length === 0) return undefined;
  const data: Record<string, string> = {};
  const files: InlinePlan['files'] = [];
  const keys = new Map<string, string>();
  let total = 0;
  paths.forEach((path, i) => {
    checkInlinePath(path, 'inline_files');
    const key = `inline-file-${i}`;
    const content = req.inlineFiles[path] ?? Buffer.alloc(0);
    total += content.length;
    data[key] = Buffer.from(content).toString('base64');
    files.push({ path, key });
    keys.set(path, key);
  });
  // They all go into one Secret, which the API server refuses beyond 1 MiB (after the
  // pull Secret may have been written): refuse them here, naming the field.
  if (total > MAX_INLINE_FILES_BYTES) {
    throw invalidArgument(
      'inline_files_too_large',
      `inline_files: ${total} bytes in total, at most ${MAX_INLINE_FILES_BYTES} (one Secret)`,
    );
  }
  return {
    secret: {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: inlineFilesSecretName(podName),
        namespace,
        labels: workloadLabels(workloadId),
      },
      data,
    },
    files,
    keys,
    paths,
  };
}

export function checkInlineFilesReferenced(
  paths: string[],
  containers: Array<{ inlineFileMounts?: string[] }>,
): void {
  const used = new Set(containers.flatMap((c) => c.inlineFileMounts ?? []));
  for (const path of paths) {
    if (!used.has(path)) throw invalidArgument('inline_file_not_referenced', path);
  }
}
