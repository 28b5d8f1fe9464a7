import { ExecRequest, RunnerServiceService } from '../gen/agynio/api/runner/v1/runner.ts';

/**
 * Exec's request messages are decoded without throwing: one that does not decode becomes an
 * empty ExecRequest marked here, and the Exec handler answers it (exec.ts, exec-run.ts).
 *
 * When grpc-js fails to decode a message of a client stream itself, it ends the call on the
 * spot, unknown to the handler. A handler's write in the moment before the trailers go out
 * (an `exec_already_started` event, output) is then a write after end: it errors the HTTP/2
 * stream, the trailers never go, and the client waits for its deadline with no status.
 */
const malformed = new WeakMap<ExecRequest, string>();

export function decodeExecRequest(bytes: Buffer): ExecRequest {
  try {
    return ExecRequest.decode(bytes);
  } catch (err) {
    const request = ExecRequest.fromPartial({});
    malformed.set(request, err instanceof Error ? err.message : String(err));
    return request;
  }
}

/** Why `request` did not decode; undefined for a well-formed message. */
export function malformedReason(request: ExecRequest): string | undefined {
  return malformed.get(request);
}

export function withTolerantExecDecoding(
  definition: typeof RunnerServiceService,
): typeof RunnerServiceService {
  return { ...definition, exec: { ...definition.exec, requestDeserialize: decodeExecRequest } };
}
