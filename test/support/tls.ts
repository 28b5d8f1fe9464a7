import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestKeyPair {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

/** A throwaway CA with a server certificate (127.0.0.1, localhost) and a client certificate. */
export interface TestPki {
  dir: string;
  ca: TestKeyPair;
  server: TestKeyPair;
  client: TestKeyPair;
  cleanup(): Promise<void>;
}

export interface TestPkiOptions {
  caCommonName?: string;
  serverCommonName?: string;
  clientCommonName?: string;
  /** Extra subjectAltName entries of the server certificate, e.g. `DNS:runner.example`. */
  serverAltNames?: string[];
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function load(dir: string, name: string): Promise<TestKeyPair> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { cert: await readFile(certPath), key: await readFile(keyPath), certPath, keyPath };
}

async function issue(
  dir: string,
  name: string,
  commonName: string,
  serial: number,
  extensions: string[],
): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), `${extensions.join('\n')}\n`);
  await openssl(dir, [
    'req',
    ...KEY_ARGS,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${commonName}`,
  ]);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-set_serial',
    String(serial),
    '-days',
    '2',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
}

export async function generateTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'k8s-runner-pki-'));
  try {
    await openssl(dir, [
      'req',
      '-x509',
      ...KEY_ARGS,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-sha256',
      '-subj',
      `/CN=${options.caCommonName ?? 'k8s-runner test CA'}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const serverAltNames = ['IP:127.0.0.1', 'DNS:localhost', ...(options.serverAltNames ?? [])];
    await issue(dir, 'server', options.serverCommonName ?? 'localhost', 2, [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${serverAltNames.join(',')}`,
    ]);
    await issue(dir, 'client', options.clientCommonName ?? 'k8s-runner test client', 3, [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=clientAuth',
    ]);
    return {
      dir,
      ca: await load(dir, 'ca'),
      server: await load(dir, 'server'),
      client: await load(dir, 'client'),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
