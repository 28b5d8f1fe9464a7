import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ESLint } from 'eslint';

const root = path.resolve(import.meta.dirname, '../..');
const RULE = 'k8s-runner/import-layers';

async function layerErrors(code: string, file: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === RULE).map((m) => m.message);
}

describe('import boundaries (npm run lint)', () => {
  it('fails on a planted violation: the generic kube layer importing the runner controller', async () => {
    const planted = `import { RunnerController } from '../runner/controller.ts';\nexport const planted = RunnerController;\n`;
    const errors = await layerErrors(planted, 'src/kube/planted-violation.ts');
    expect(errors).toEqual([expect.stringContaining('src/kube may not import src/runner')]);
  }, 60_000);

  it('fails on observability importing workload, and on grpc importing runner', async () => {
    expect(
      await layerErrors(
        `export type { WorkloadStateSink } from '../workload/seams.ts';\n`,
        'src/observability/planted.ts',
      ),
    ).toEqual([expect.stringContaining('src/observability may not import src/workload')]);
    expect(
      await layerErrors(
        `export const load = () => import('../runner/controller.ts');\n`,
        'src/grpc/planted.ts',
      ),
    ).toEqual([expect.stringContaining('src/grpc may not import src/runner')]);
  }, 60_000);

  it('lets a layer import what sits below it', async () => {
    const code = `export { workloadIdOf } from '../workload/identity.ts';\n`;
    expect(await layerErrors(code, 'src/runner/planted.ts')).toEqual([]);
  }, 60_000);

  it('passes on the real tree', async () => {
    const eslint = new ESLint({ cwd: root });
    const results = await eslint.lintFiles(['src']);
    const found = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId === RULE).map((m) => `${r.filePath}: ${m.message}`),
    );
    expect(found).toEqual([]);
  }, 120_000);
});
