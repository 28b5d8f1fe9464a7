import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {
  newClusters,
  newContexts,
  newUsers,
  type Cluster,
  type Context,
  type User,
} from '@kubernetes/client-node/dist/config_types.js';
import type { parse } from 'yaml';
import { credentialSource, type ConnectionOptions } from './credentials.ts';
import { checkSupportedFields, impersonationHeaders } from './kubeconfig-fields.ts';

/** Where the API server is and how to authenticate to it. */
export interface ClusterConnection {
  server: string;
  /** TLS and auth settings, fetched per request (tokens rotate, plugin credentials expire). */
  requestOptions(): Promise<ConnectionOptions>;
  /** Drops cached credentials, so the next requestOptions() fetches fresh ones (after a 401). */
  invalidate?(): void;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

type Raw = Record<string, unknown>;
interface Entry<T> {
  name: string;
  parsed: T;
  raw: Raw;
}

/** Every file's clusters, users and contexts, merged the way kubectl merges $KUBECONFIG. */
interface Merged {
  currentContext?: string;
  clusters: Map<string, Entry<Cluster>>;
  users: Map<string, Entry<User>>;
  contexts: Map<string, Entry<Context>>;
}

const absolute = (dir: string, file: unknown): string | undefined =>
  typeof file === 'string' && file ? path.resolve(dir, file) : undefined;

function rawEntries(list: unknown, field: string): Array<{ name: string; raw: Raw }> {
  if (!Array.isArray(list)) return [];
  return list.map((e: Raw) => ({ name: String(e.name), raw: (e[field] ?? {}) as Raw }));
}

/**
 * The YAML parser, loaded with the first kubeconfig file read (synchronously, as this module's
 * callers are): in a cluster the operator reads the service account and never needs it.
 */
const parseYaml = (text: string): unknown =>
  (createRequire(import.meta.url)('yaml') as { parse: typeof parse }).parse(text);

/** Adds one file: client-node parses the entries; paths are relative to the file's folder. */
function addFile(merged: Merged, file: string): void {
  const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Raw;
  const dir = path.dirname(file);
  merged.currentContext ||= (doc['current-context'] as string | undefined) || undefined;
  const clusters = newClusters(doc.clusters);
  rawEntries(doc.clusters, 'cluster').forEach(({ name, raw }, i) => {
    const parsed = clusters[i]!;
    parsed.caFile = absolute(dir, parsed.caFile);
    if (!merged.clusters.has(name)) merged.clusters.set(name, { name, parsed, raw });
  });
  const rawUsers = rawEntries(doc.users, 'user');
  // kubectl's token file field is tokenFile; client-node reads its own "token-file" key.
  const users = newUsers(
    rawUsers.map(({ name, raw }) => ({ name, user: { ...raw, 'token-file': undefined } })),
  );
  rawUsers.forEach(({ name, raw }, i) => {
    const tokenFile = absolute(dir, raw.tokenFile);
    const parsed: User = {
      ...users[i]!,
      certFile: absolute(dir, users[i]!.certFile),
      keyFile: absolute(dir, users[i]!.keyFile),
      ...(tokenFile ? { authProvider: { name: 'tokenFile', config: { tokenFile } } } : {}),
    };
    if (!merged.users.has(name)) merged.users.set(name, { name, parsed, raw });
  });
  const contexts = newContexts(doc.contexts);
  rawEntries(doc.contexts, 'context').forEach(({ name, raw }, i) => {
    if (!merged.contexts.has(name)) merged.contexts.set(name, { name, parsed: contexts[i]!, raw });
  });
}

function fromFiles(files: string[]): ClusterConnection {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const file of files) addFile(merged, file);
  const where = files.join(path.delimiter);
  const contextName = merged.currentContext;
  if (!contextName) throw new Error(`kubeconfig ${where} sets no current-context`);
  const context = merged.contexts.get(contextName)?.parsed;
  if (!context) throw new Error(`kubeconfig ${where} has no context "${contextName}"`);
  const cluster = merged.clusters.get(context.cluster);
  if (!cluster) throw new Error(`kubeconfig ${where} has no cluster "${context.cluster}"`);
  const user = merged.users.get(context.user) ?? {
    name: context.user,
    parsed: { name: context.user },
    raw: {},
  };
  checkSupportedFields(cluster, user);
  return {
    server: cluster.parsed.server,
    ...credentialSource(cluster.parsed, user.parsed, impersonationHeaders(user.raw)),
  };
}

/** The service account's projected token and CA, as client-go's in-cluster config reads them. */
function inCluster(host: string, serviceAccountDir: string): ClusterConnection {
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const cluster: Cluster = {
    name: 'in-cluster',
    server,
    caFile: path.join(serviceAccountDir, 'ca.crt'),
    skipTLSVerify: false,
  };
  const user: User = {
    name: 'in-cluster',
    authProvider: {
      name: 'tokenFile',
      config: { tokenFile: path.join(serviceAccountDir, 'token') },
    },
  };
  return { server, ...credentialSource(cluster, user, {}) };
}

/**
 * The API server connection, through @kubernetes/client-node's kubeconfig parsing and
 * authenticators (exec plugins, OIDC, token files) without its generated API (see
 * docs/kubernetes-client.md). `kubeconfig` is a path or a list like $KUBECONFIG; without it,
 * $KUBECONFIG, then ~/.kube/config, then the in-cluster service account. A list is merged as
 * kubectl does: the first current-context and the first entry of each name win; files that do
 * not exist are skipped. Fields the client cannot honour are an error naming the field.
 */
export function loadClusterConnection(
  kubeconfig?: string,
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): ClusterConnection {
  const list = kubeconfig ?? process.env.KUBECONFIG ?? '';
  const named = list.split(path.delimiter).filter(Boolean);
  const files = named.filter((f) => existsSync(f));
  if (files.length > 0) return fromFiles(files);
  if (named.length > 0) throw new Error(`no kubeconfig at ${named.join(path.delimiter)}`);
  const home = path.join(os.homedir(), '.kube', 'config');
  if (existsSync(home)) return fromFiles([home]);
  const host = process.env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error(`no kubeconfig at ${home} and not running in a cluster`);
  return inCluster(host, serviceAccountDir);
}
