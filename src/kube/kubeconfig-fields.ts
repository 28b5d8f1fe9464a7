import type { OutgoingHttpHeaders } from 'node:http';

/**
 * The kubeconfig fields the operator's client honours. Anything else in the selected cluster
 * or user is refused at start-up, naming the field: a setting that is silently dropped fails
 * open (a proxy bypassed, an identity not impersonated, a server name not checked).
 */
const CLUSTER_FIELDS = new Set([
  'server',
  'certificate-authority',
  'certificate-authority-data',
  'insecure-skip-tls-verify',
  'tls-server-name',
  // The client never asks for compressed responses, so disabling compression holds.
  'disable-compression',
  'extensions',
]);

const USER_FIELDS = new Set([
  'client-certificate',
  'client-certificate-data',
  'client-key',
  'client-key-data',
  'token',
  'tokenFile',
  'as',
  'as-groups',
  'as-uid',
  'as-user-extra',
  'auth-provider',
  'exec',
  'extensions',
]);

const WHY: Record<string, string> = {
  'proxy-url': 'the operator dials the API server directly and cannot go through a proxy',
  username: 'basic authentication was removed from the API server in Kubernetes 1.19',
  password: 'basic authentication was removed from the API server in Kubernetes 1.19',
};

/** Auth providers that @kubernetes/client-node implements. */
const AUTH_PROVIDERS = new Set(['oidc', 'azure', 'gcp']);

type Raw = Record<string, unknown>;

function refuse(where: string, field: string): never {
  const why = WHY[field] ?? 'the operator does not support it';
  throw new Error(`kubeconfig ${where}.${field} is not supported (${why})`);
}

/** Throws, naming the field, when the selected cluster or user needs what the client cannot do. */
export function checkSupportedFields(
  cluster: { name: string; raw: Raw },
  user: { name: string; raw: Raw },
): void {
  const clusterAt = `clusters["${cluster.name}"].cluster`;
  const userAt = `users["${user.name}"].user`;
  for (const key of Object.keys(cluster.raw)) if (!CLUSTER_FIELDS.has(key)) refuse(clusterAt, key);
  for (const key of Object.keys(user.raw)) if (!USER_FIELDS.has(key)) refuse(userAt, key);
  const exec = user.raw.exec as Raw | undefined;
  if (exec?.provideClusterInfo === true)
    throw new Error(
      `kubeconfig ${userAt}.exec.provideClusterInfo is not supported (the plugin would not get KUBERNETES_EXEC_INFO)`,
    );
  if (exec?.interactiveMode === 'Always')
    throw new Error(
      `kubeconfig ${userAt}.exec.interactiveMode "Always" is not supported (the operator has no terminal)`,
    );
  const provider = user.raw['auth-provider'] as Raw | undefined;
  if (provider && !AUTH_PROVIDERS.has(String(provider.name)))
    throw new Error(
      `kubeconfig ${userAt}.auth-provider.name "${String(provider.name)}" is not supported (only ${[...AUTH_PROVIDERS].join(', ')})`,
    );
  const credentials = ['token', 'exec', 'auth-provider'].filter((k) => user.raw[k] !== undefined);
  if (user.raw.tokenFile !== undefined && credentials.length > 0)
    throw new Error(
      `kubeconfig ${userAt}.tokenFile together with ${credentials.join(', ')} is not supported`,
    );
}

/** The Impersonate-* headers for the user's as, as-groups, as-uid and as-user-extra. */
export function impersonationHeaders(raw: Raw): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  if (typeof raw.as === 'string' && raw.as) headers['Impersonate-User'] = raw.as;
  if (Array.isArray(raw['as-groups']) && raw['as-groups'].length > 0)
    headers['Impersonate-Group'] = raw['as-groups'].map(String);
  if (typeof raw['as-uid'] === 'string' && raw['as-uid'])
    headers['Impersonate-Uid'] = raw['as-uid'];
  const extra = (raw['as-user-extra'] ?? {}) as Record<string, unknown>;
  for (const [key, values] of Object.entries(extra)) {
    headers[`Impersonate-Extra-${encodeURIComponent(key)}`] = (
      Array.isArray(values) ? values : [values]
    ).map(String);
  }
  return headers;
}
