import { ServerCredentials, type Server } from '@grpc/grpc-js';

/** Binds a benchmark's gRPC server to a free loopback port, in plain text; returns the port. */
export function bindLoopback(server: Server): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
}
