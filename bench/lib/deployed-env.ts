/**
 * The environment the operator image runs with (the Dockerfile's runtime stage: NODE_ENV,
 * NODE_OPTIONS, allocator settings), so that every benchmark process running operator code
 * is measured as deployed. The Dockerfile is the one home of these settings, read by the
 * same parser the image test compares scripts/build-image.sh with.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDockerfile } from '../../test/support/dockerfile.ts';
import { ROOT } from './cluster.ts';

/** Variables of the runtime stage that change how Node runs the operator. */
const RUNTIME_VARIABLES = /^(NODE_ENV|NODE_OPTIONS|MALLOC_[A-Z_]+|UV_[A-Z_]+)$/;

/** Of a Dockerfile's runtime-stage ENV, what changes how Node runs (for a child's env). */
export function runtimeEnv(dockerfile: string): Record<string, string> {
  const env = parseDockerfile(dockerfile).env;
  return Object.fromEntries(Object.entries(env).filter(([k]) => RUNTIME_VARIABLES.test(k)));
}

/** The repository Dockerfile's runtime variables. */
export function deployedNodeEnv(
  dockerfile = path.join(ROOT, 'Dockerfile'),
): Record<string, string> {
  return runtimeEnv(readFileSync(dockerfile, 'utf8'));
}
