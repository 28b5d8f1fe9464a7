/**
 * The Helm chart and the kustomize base carry copies of the generated CRDs (neither can
 * read crds/ directly). A stale copy fails here: run scripts/sync-chart-crds.sh. The workload
 * finalizer's admission policy is generated into both too (npm run generate).
 */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderAdmissionPolicy, renderCrds } from '../../scripts/generate-crds.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const yamlFiles = (dir: string) =>
  readdirSync(path.join(root, dir))
    .filter((f) => f.endsWith('.yaml'))
    .sort();

describe('CRD copies', () => {
  it('crds/ is what src/api generates (npm run generate)', () => {
    const generated = renderCrds();
    expect(yamlFiles('crds')).toEqual(Object.keys(generated).sort());
    for (const [name, text] of Object.entries(generated)) {
      expect(readFileSync(path.join(root, 'crds', name), 'utf8')).toBe(text);
    }
  });

  it('the admission policy files are what src/api generates (npm run generate)', () => {
    for (const [file, text] of Object.entries(renderAdmissionPolicy())) {
      expect(readFileSync(path.join(root, file), 'utf8')).toBe(text);
    }
  });

  it.each(['charts/k8s-runner/crds', 'charts/k8s-runner-crds/files/crds', 'config/crd/crds'])(
    '%s is a byte-for-byte copy of crds/',
    (dir) => {
      expect(yamlFiles(dir)).toEqual(yamlFiles('crds'));
      for (const name of yamlFiles('crds')) {
        const copy = readFileSync(path.join(root, dir, name), 'utf8');
        const source = readFileSync(path.join(root, 'crds', name), 'utf8');
        if (copy !== source)
          throw new Error(`${dir}/${name} is stale: run scripts/sync-chart-crds.sh`);
      }
    },
  );

  it('config/crd lists every CRD', () => {
    const kustomization = readFileSync(path.join(root, 'config/crd/kustomization.yaml'), 'utf8');
    for (const name of yamlFiles('crds')) expect(kustomization).toContain(`crds/${name}`);
  });

  it('scripts/sync-chart-crds.sh --check agrees', () => {
    const r = spawnSync('bash', [path.join(root, 'scripts/sync-chart-crds.sh'), '--check'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
