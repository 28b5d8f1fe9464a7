import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'src');

/**
 * Which part of src/ may import which (ARCHITECTURE.md): api ← kube ← workload ← runner ←
 * main, grpc beside runner; `app` is src/main.ts and src/config.ts. A part may always
 * import itself.
 */
export const LAYERS = {
  api: [],
  kube: [],
  observability: ['api', 'kube'],
  workload: ['api', 'kube', 'observability'],
  runner: ['api', 'kube', 'observability', 'workload', 'gen'],
  grpc: ['api', 'kube', 'observability', 'workload', 'gen'],
  gen: [],
  app: ['api', 'kube', 'observability', 'workload', 'runner', 'grpc', 'gen'],
};

function layerOf(file) {
  const rel = path.relative(SRC, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const parts = rel.split(path.sep);
  return parts.length === 1 ? 'app' : parts[0];
}

const importLayers = {
  meta: {
    type: 'problem',
    docs: { description: 'enforce the import boundaries of ARCHITECTURE.md' },
    schema: [],
  },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    if (from === undefined) return {};
    const allowed = new Set([from, ...(LAYERS[from] ?? [])]);
    const check = (node) => {
      const source = node.source;
      if (!source || typeof source.value !== 'string' || !source.value.startsWith('.')) return;
      const to = layerOf(path.resolve(path.dirname(file), source.value));
      if (to === undefined || allowed.has(to)) return;
      context.report({
        node: source,
        message: `src/${from === 'app' ? '*.ts' : from} may not import src/${to === 'app' ? path.basename(source.value) : to} (import boundaries: ARCHITECTURE.md, LAYERS in eslint.config.js)`,
      });
    };
    return {
      ImportDeclaration: check,
      ExportNamedDeclaration: check,
      ExportAllDeclaration: check,
      ImportExpression: check,
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      'node_modules',
      'dist',
      'src/gen',
      'coverage',
      '.bench-build',
      '.test-cluster',
      '.quickstart',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'k8s-runner': { rules: { 'import-layers': importLayers } } },
    rules: { 'k8s-runner/import-layers': 'error' },
  },
  { files: ['scripts/**', 'bench/**', 'test/**'], rules: { 'no-console': 'off' } },
);
