/**
 * Tenant isolation seen from inside a real container: a workload that was granted nothing
 * has no effective capability (even as root, where the Runner allows root), cannot gain
 * one, and sees neither another workload's files nor its processes.
 */
import { randomUUID } from 'node:crypto';
import { StartWorkloadRequest, VolumeKind } from '../../src/gen/agynio/api/runner/v1/runner.ts';
import { call, startHarness, type GrpcHarness } from '../fixtures/grpc-harness.ts';
import { BUSYBOX, exec, realNodeRunner, waitForWorkloadPhase } from '../support/real-node.ts';

let h: GrpcHarness;

beforeAll(async () => {
  h = await startHarness({ prefix: 'rn-iso', runner: realNodeRunner() });
});

afterAll(async () => {
  await h?.close();
});

async function start(script: string): Promise<string> {
  const id = randomUUID();
  await call(
    h.client,
    'startWorkload',
    StartWorkloadRequest.fromPartial({
      workloadId: id,
      volumes: [{ name: 'work', kind: VolumeKind.VOLUME_KIND_EPHEMERAL }],
      main: {
        name: 'agent',
        image: BUSYBOX,
        cmd: ['sh', '-c', `${script}\ntrap "exit 0" TERM; sleep 3600 & wait`],
        mounts: [{ volume: 'work', mountPath: '/work' }],
      },
    }),
  );
  await waitForWorkloadPhase(h, id, 'Running');
  return id;
}

/**
 * Looks for the marker (read from stdin, so that no command line carries it) among the
 * files and the command lines of the processes this container can see.
 */
const LOOK =
  'read -r M; printf %s "$M" > /work/.pattern; ' +
  'find / \\( -path /proc -o -path /sys \\) -prune -o -name "$M" -print 2>/dev/null; ' +
  "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null | grep -c -F -f /work/.pattern; true";

test('a workload has no capability, and sees no file or process of another workload', async () => {
  const marker = `secret-${randomUUID()}`;
  const victim = await start(`echo ok > /work/${marker}; sh -c 'sleep 7200; true' ${marker} &`);
  const intruder = await start('true');

  const caps = await exec(h.client, {
    targetId: `workload-${intruder}`,
    commandShell: 'id -u; grep -E "^Cap(Eff|Prm|Bnd)|^NoNewPrivs" /proc/self/status',
  });
  expect(caps.exit?.exitCode).toBe(0);
  expect(caps.stdout).toMatch(/^0\n/); // root, which this Runner allows …
  expect(caps.stdout).toContain('CapEff:\t0000000000000000');
  expect(caps.stdout).toContain('CapPrm:\t0000000000000000');
  expect(caps.stdout).toContain('CapBnd:\t0000000000000000');
  expect(caps.stdout).toContain('NoNewPrivs:\t1'); // … yet it holds nothing and cannot gain it.

  const look = await exec(
    h.client,
    { targetId: `workload-${intruder}`, commandShell: LOOK },
    `${marker}\n`,
  );
  expect(look.stdout).toBe('0\n');

  // The same look from the victim finds both: the check can see what it looks for.
  const own = await exec(
    h.client,
    { targetId: `workload-${victim}`, commandShell: LOOK },
    `${marker}\n`,
  );
  expect(own.stdout).toMatch(new RegExp(`^/work/${marker}\\n[1-9]\\d*\\n$`));
});
