import type { IncomingMessage } from 'node:http';
import { KubeApiError } from './errors.ts';

export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The API's Status as an error, with the Retry-After the server asked for (seconds). */
export function toApiError(
  statusCode: number,
  text: string,
  retryAfter?: string | string[],
): KubeApiError {
  const header = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  const seconds = header !== undefined && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
  let err: KubeApiError;
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    err = new KubeApiError(
      statusCode,
      status.reason ?? 'Unknown',
      status.message ?? text,
      status.details,
    );
  } catch {
    err = new KubeApiError(statusCode, 'Unknown', text.slice(0, 1024) || `HTTP ${statusCode}`);
  }
  if (seconds !== undefined) err.retryAfterSeconds = seconds;
  return err;
}
