import { randomBytes } from 'node:crypto';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { Logger } from 'pino';
import type { KubeObject, ResourceClient } from '../kube/client.ts';
import { isAlreadyExists, isNotFound } from '../kube/errors.ts';

type Secret = ISecret & KubeObject;

/**
 * Creates the gRPC token Secret with a random token when it does not exist, so that the
 * chart renders no secret material (a GitOps render stays the same every time). An existing
 * Secret is never changed; when replicas race, the first create wins and the rest keep it.
 */
export async function ensureGrpcTokenSecret(
  secrets: ResourceClient<Secret>,
  namespace: string,
  name: string,
  logger: Logger,
): Promise<'created' | 'exists'> {
  try {
    await secrets.get(namespace, name);
    return 'exists';
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const token = randomBytes(32).toString('hex');
  try {
    await secrets.create(namespace, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels: {
          'app.kubernetes.io/managed-by': 'k8s-runner',
          'app.kubernetes.io/component': 'grpc',
        },
      },
      type: 'Opaque',
      data: { token: Buffer.from(token).toString('base64') },
    });
  } catch (err) {
    if (isAlreadyExists(err)) return 'exists';
    throw err;
  }
  logger.info({ secret: `${namespace}/${name}` }, 'created the gRPC token Secret');
  return 'created';
}
