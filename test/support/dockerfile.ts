/**
 * What the Dockerfile's final stage says about the image it builds (WORKDIR, ENV, USER,
 * CMD, EXPOSE and the COPY destinations), for comparing it with scripts/build-image.sh.
 */
export interface DockerfileImage {
  runtimeImage: string;
  workdir: string;
  env: Record<string, string>;
  user: string;
  cmd: string[];
  exposed: string[];
  /** COPY destinations, resolved against WORKDIR. */
  copied: string[];
}

function resolveArgs(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? '');
}

export function parseDockerfile(source: string): DockerfileImage {
  const lines = source
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  let image: DockerfileImage | undefined;
  for (const line of lines) {
    const [instr = '', ...rest] = line.split(/\s+/);
    const value = rest.join(' ');
    switch (instr.toUpperCase()) {
      case 'ARG': {
        const [name = '', def = ''] = value.split('=');
        if (!image) args[name] = def;
        break;
      }
      case 'FROM': {
        const ref = resolveArgs(rest[0] ?? '', args);
        image = {
          runtimeImage: ref,
          workdir: '/',
          env: {},
          user: '',
          cmd: [],
          exposed: [],
          copied: [],
        };
        break;
      }
      default:
        if (image) applyInstruction(image, instr.toUpperCase(), rest);
    }
  }
  if (!image) throw new Error('the Dockerfile has no FROM');
  return image;
}

function applyInstruction(image: DockerfileImage, instr: string, rest: string[]): void {
  const value = rest.join(' ');
  switch (instr) {
    case 'WORKDIR':
      image.workdir = value;
      break;
    case 'ENV':
      Object.assign(image.env, envPairs(value));
      break;
    case 'USER':
      image.user = value;
      break;
    case 'CMD':
      image.cmd = JSON.parse(value) as string[];
      break;
    case 'EXPOSE':
      image.exposed.push(...rest);
      break;
    case 'COPY': {
      const dest = rest.filter((a) => !a.startsWith('--')).at(-1) ?? '';
      const abs = dest.startsWith('/') ? dest : `${image.workdir}/${dest.replace(/^\.\//, '')}`;
      image.copied.push(abs.replace(/\/+$/, ''));
      break;
    }
  }
}

/** `K=V [K2=V2 ...]` (values double- or single-quoted or bare) or the legacy `K V`. */
export function envPairs(value: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(value)) {
    const [key = '', ...rest] = value.split(/\s+/);
    env[key] = unquote(rest.join(' '));
    return env;
  }
  for (const pair of value.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g))
    env[pair[1] ?? ''] = unquote(pair[2] ?? '');
  return env;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1);
  return value;
}
