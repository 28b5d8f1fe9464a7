import { readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import type https from 'node:https';
import type { Authenticator } from '@kubernetes/client-node/dist/auth.js';
import type { Cluster, User } from '@kubernetes/client-node/dist/config_types.js';

/** TLS and auth settings for one request to the API server. */
export type ConnectionOptions = Pick<
  https.RequestOptions,
  'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'
> & { headers?: OutgoingHttpHeaders };

/**
 * client-node's authenticator for the user, as KubeConfig picks it, each loaded on the first
 * connection that may need it (not with the operator's modules): exec plugins and token files
 * always; OIDC, Azure and GCP only when a kubeconfig names them (they bring openid-client and
 * jsonpath-plus).
 */
async function authenticatorFor(user: User): Promise<Authenticator | undefined> {
  const [{ ExecAuth }, { FileAuth }] = await Promise.all([
    import('@kubernetes/client-node/dist/exec_auth.js'),
    import('@kubernetes/client-node/dist/file_auth.js'),
  ]);
  const candidates: Authenticator[] = [new ExecAuth(), new FileAuth()];
  const provider = (user.authProvider as { name?: string } | undefined)?.name;
  if (provider === 'oidc')
    candidates.push(
      new (await import('@kubernetes/client-node/dist/oidc_auth.js')).OpenIDConnectAuth(),
    );
  if (provider === 'azure')
    candidates.push(new (await import('@kubernetes/client-node/dist/azure_auth.js')).AzureAuth());
  if (provider === 'gcp')
    candidates.push(
      new (await import('@kubernetes/client-node/dist/gcp_auth.js')).GoogleCloudPlatformAuth(),
    );
  return candidates.find((a) => a.isAuthProvider(user));
}

/** client-node leaves a token file's trailing newline in the header; client-go trims it. */
const bearerOf = (header: unknown): string | undefined =>
  typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;

const fileOrData = (file?: string, data?: string): Buffer | undefined =>
  data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined;

/**
 * Request options for a cluster and user as client-node's KubeConfig.applyToHTTPSOptions
 * builds them (CA, client certificate, tls-server-name, insecure-skip-tls-verify, bearer token
 * or plugin credential), plus impersonation headers. `invalidate` drops whatever the
 * authenticator cached (an exec plugin's credential, a token file's contents).
 */
export function credentialSource(
  cluster: Cluster,
  user: User,
  impersonation: OutgoingHttpHeaders,
): { requestOptions(): Promise<ConnectionOptions>; invalidate(): void } {
  const tls: ConnectionOptions = {
    ca: fileOrData(cluster.caFile, cluster.caData),
    cert: fileOrData(user.certFile, user.certData),
    key: fileOrData(user.keyFile, user.keyData),
    rejectUnauthorized: !cluster.skipTLSVerify,
    servername: cluster.tlsServerName,
  };
  let authenticator: Promise<Authenticator | undefined> | undefined;
  return {
    async requestOptions() {
      const opts: ConnectionOptions = { ...tls, headers: { ...impersonation } };
      authenticator ??= authenticatorFor(user);
      const auth = await authenticator;
      if (auth) await auth.applyAuthentication(user, opts as https.RequestOptions);
      const token = user.token ?? bearerOf(opts.headers?.Authorization);
      if (token) opts.headers = { ...opts.headers, Authorization: `Bearer ${token.trim()}` };
      return opts;
    },
    invalidate() {
      authenticator = undefined;
    },
  };
}
