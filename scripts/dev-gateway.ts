// A local stand-in for the platform gateway (the same in-process server the tests use),
// for the quickstart. Prints its URL, then serves until killed.
import { startTestGateway } from '../test/support/test-gateway.ts';

const token = process.argv[2] ?? 'dev-token';
const gateway = await startTestGateway({
  tokens: {
    [token]: {
      identityJson: JSON.stringify({ runner_id: 'dev-runner', ztAPI: 'https://ziti.invalid' }),
      serviceName: 'dev-runner.agyn',
      identityId: 'dev-identity',
    },
  },
});
process.stdout.write(`${gateway.url}\n`);
const stop = (): void => void gateway.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
