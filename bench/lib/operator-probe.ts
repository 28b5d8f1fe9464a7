/**
 * Imported (`--import`) before the operator's own entry, src/main.ts, in the benchmark's
 * operator process (bench/lib/operator-child.ts): tallies every API request of the process by
 * resource and answers the parent over IPC (bench/lib/child-ipc.ts). It wires nothing:
 * the operator is main.ts's, configured by the environment as the chart configures it.
 */
import { KubeClient } from '../../src/kube/client.ts';
import { serveParent } from './child-ipc.ts';
import { tallyRequests } from './request-tally.ts';

const byResource = tallyRequests(KubeClient.prototype);

// Ready is main.ts's own "k8s-runner started" line (with its ports) and /readyz.
serveParent(
  {
    counts: () => ({ byResource: [...byResource] }),
    // main.ts's shutdown: stops reconciling, the servers and the caches, then exits.
    stop: async () => {
      process.kill(process.pid, 'SIGTERM');
      await new Promise(() => undefined);
    },
  },
  null,
);
