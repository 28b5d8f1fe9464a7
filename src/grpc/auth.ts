import { createHash, timingSafeEqual } from 'node:crypto';
import {
  ServerCredentials,
  experimental,
  type Metadata,
  type ServerInterceptingCallInterface,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';

export type AuthOptions =
  | { mode: 'mtls'; caPem: string | Buffer; certPem: string | Buffer; keyPem: string | Buffer }
  | {
      mode: 'token';
      /** The accepted bearer tokens, read on every call (e.g. from a Secret the caller watches). */
      tokens: () => string[];
      certPem?: string | Buffer;
      keyPem?: string | Buffer;
    }
  | { mode: 'insecure' };

/**
 * Hands the same certificates to grpc-js every time it asks. Listeners are called on a
 * later tick: grpc-js registers the server's watcher only after adding its listeners.
 */
class StaticCertificateProvider implements experimental.CertificateProvider {
  constructor(
    private readonly ca: Buffer,
    private readonly identity: { certificate: Buffer; privateKey: Buffer },
  ) {}

  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    queueMicrotask(() => listener({ caCertificate: this.ca }));
  }

  removeCaCertificateListener(): void {}

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    queueMicrotask(() => listener(this.identity));
  }

  removeIdentityCertificateListener(): void {}
}

const toBuffer = (pem: string | Buffer): Buffer =>
  typeof pem === 'string' ? Buffer.from(pem) : pem;

export function serverCredentials(auth: AuthOptions): ServerCredentials {
  switch (auth.mode) {
    case 'mtls': {
      const identity = { certificate: toBuffer(auth.certPem), privateKey: toBuffer(auth.keyPem) };
      // One provider serves both roles (grpc-js 1.14 forwards the two arguments in the
      // opposite order to the one it declares). The handshake admits clients without a
      // certificate so that every call can be answered UNAUTHENTICATED; grpc-js exposes a
      // peer certificate only once it verified against the CA.
      const provider = new StaticCertificateProvider(toBuffer(auth.caPem), identity);
      return experimental.createCertificateProviderServerCredentials(provider, provider, false);
    }
    case 'token':
      if (auth.certPem !== undefined && auth.keyPem !== undefined) {
        return ServerCredentials.createSsl(null, [
          { cert_chain: toBuffer(auth.certPem), private_key: toBuffer(auth.keyPem) },
        ]);
      }
      return ServerCredentials.createInsecure();
    case 'insecure':
      return ServerCredentials.createInsecure();
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Compares in time independent of where (or whether) the strings differ. */
export function tokenMatches(presented: string, accepted: readonly string[]): boolean {
  const wanted = digest(presented);
  let match = false;
  for (const token of accepted) {
    if (token === '') continue;
    if (timingSafeEqual(wanted, digest(token))) match = true;
  }
  return match;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** Why a call is not authenticated, or undefined when it is. */
export function authProblem(
  auth: AuthOptions,
  metadata: Metadata,
  call: Pick<ServerInterceptingCallInterface, 'getAuthContext'>,
  logger: Logger,
): string | undefined {
  switch (auth.mode) {
    case 'insecure':
      return undefined;
    case 'mtls':
      return call.getAuthContext().sslPeerCertificate
        ? undefined
        : 'a client certificate signed by the runner CA is required';
    case 'token': {
      const values = metadata.get('authorization');
      const header = values.length === 1 && typeof values[0] === 'string' ? values[0] : undefined;
      const token = header ? BEARER.exec(header)?.[1] : undefined;
      if (!token) return 'missing bearer token';
      let accepted: string[];
      try {
        accepted = auth.tokens();
      } catch (err) {
        logger.error({ err }, 'could not read the accepted tokens');
        return 'invalid bearer token';
      }
      return tokenMatches(token, accepted) ? undefined : 'invalid bearer token';
    }
  }
}
