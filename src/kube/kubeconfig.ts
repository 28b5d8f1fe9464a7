import { readFileSync, existsSync } from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

/** Where the API server is and how to authenticate to it. */
export interface ClusterConnection {
  server: string;
  /** TLS and auth settings, fetched per request (tokens may rotate). */
  requestOptions(): Promise<https.RequestOptions>;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface NamedEntry<T> {
  name: string;
  [key: string]: T | string;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<NamedEntry<{ cluster: string; user: string }>>;
  clusters?: Array<NamedEntry<Record<string, unknown>>>;
  users?: Array<NamedEntry<Record<string, unknown>>>;
}

function entry<T>(
  list: Array<NamedEntry<T>> | undefined,
  name: string,
  field: string,
): T | undefined {
  return list?.find((e) => e.name === name)?.[field] as T | undefined;
}

/** A token read from a file, re-read now and then (projected tokens rotate). */
function fileToken(file: string): () => string {
  let cached = { at: 0, value: '' };
  return () => {
    if (Date.now() - cached.at > 60_000)
      cached = { at: Date.now(), value: readFileSync(file, 'utf8').trim() };
    return cached.value;
  };
}

function connection(
  server: string,
  tls: Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>,
  token?: () => string,
): ClusterConnection {
  return {
    server,
    requestOptions: async () => ({
      ...tls,
      headers: token ? { authorization: `Bearer ${token()}` } : {},
    }),
  };
}

/**
 * Reads a kubeconfig (or the in-cluster service account) for the common cases: client
 * certificates, bearer tokens and token files. Returns undefined for what it does not
 * handle (exec plugins, auth providers), so the caller can fall back to a full library.
 */
export function loadClusterConnection(kubeconfigPath?: string): ClusterConnection | undefined {
  const candidate =
    kubeconfigPath ??
    process.env.KUBECONFIG?.split(path.delimiter)[0] ??
    path.join(os.homedir(), '.kube', 'config');
  if (!existsSync(candidate)) {
    const host = process.env.KUBERNETES_SERVICE_HOST;
    if (kubeconfigPath || !host)
      throw new Error(`no kubeconfig at ${candidate} and not running in a cluster`);
    const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return connection(
      server,
      { ca: readFileSync(path.join(SERVICE_ACCOUNT_DIR, 'ca.crt')) },
      fileToken(path.join(SERVICE_ACCOUNT_DIR, 'token')),
    );
  }
  const dir = path.dirname(candidate);
  const file = parse(readFileSync(candidate, 'utf8')) as KubeconfigFile;
  const contextName = file['current-context'] ?? '';
  const context = entry<{ cluster: string; user: string }>(file.contexts, contextName, 'context');
  if (!context) throw new Error(`kubeconfig ${candidate} has no context "${contextName}"`);
  const cluster = entry<Record<string, unknown>>(file.clusters, context.cluster, 'cluster');
  const user = entry<Record<string, unknown>>(file.users, context.user, 'user') ?? {};
  if (!cluster || typeof cluster.server !== 'string')
    throw new Error(`kubeconfig cluster "${context.cluster}" has no server`);
  if (user.exec || user['auth-provider'] || user.username) return undefined;

  const bytes = (
    dataKey: string,
    fileKey: string,
    from: Record<string, unknown>,
  ): Buffer | undefined => {
    if (typeof from[dataKey] === 'string') return Buffer.from(from[dataKey] as string, 'base64');
    if (typeof from[fileKey] === 'string')
      return readFileSync(path.resolve(dir, from[fileKey] as string));
    return undefined;
  };
  const token =
    typeof user.token === 'string'
      ? () => user.token as string
      : typeof user.tokenFile === 'string'
        ? fileToken(path.resolve(dir, user.tokenFile))
        : undefined;
  return connection(
    cluster.server,
    {
      ca: bytes('certificate-authority-data', 'certificate-authority', cluster),
      cert: bytes('client-certificate-data', 'client-certificate', user),
      key: bytes('client-key-data', 'client-key', user),
      rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    },
    token,
  );
}
