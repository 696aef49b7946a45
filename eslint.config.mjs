// Type-checked typescript-eslint rules, as in XState's eslint.config.mjs; a daemon cannot afford
// floating promises, so that rule is on.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test/describe return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/require-await': 'off', // CRI handlers are async by contract
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...layerFences(),
);

/**
 * Which folder may import which (README.md, "Layout"): imports flow one way, from bin/ down to
 * the leaves (errors/, host/, machines/, proto/), never back up and never in a cycle. Tests,
 * test/ and bench/ are outside the fences. This rule is the check of the import graph.
 */
function layerFences() {
  const allowed = {
    errors: [],
    proto: [],
    machines: ['errors'], // the error catalogue's codes: plain data
    host: ['errors'],
    storage: ['errors', 'machines'],
    network: ['errors', 'host'],
    images: ['errors', 'host', 'storage'],
    runtime: ['errors', 'host', 'images', 'machines'],
    config: ['errors', 'host', 'images'],
    streaming: ['errors', 'host', 'config', 'runtime'],
    actors: ['errors', 'host', 'machines', 'storage', 'network', 'images', 'runtime', 'config'],
    inspector: ['errors', 'machines', 'storage', 'config', 'streaming', 'actors'],
    cri: ['errors', 'host', 'machines', 'storage', 'network', 'images', 'runtime', 'config', 'streaming', 'actors', 'inspector', 'proto'],
  };
  const folders = [...Object.keys(allowed), 'bin', 'test', 'bench'];
  return Object.entries(allowed).map(([folder, may]) => {
    const banned = folders.filter((f) => f !== folder && !may.includes(f));
    return {
      files: [`${folder}/**/*.ts`],
      ignores: [`${folder}/**/*.test.ts`],
      rules: {
        'no-restricted-imports': ['error', {
          patterns: [
            // machines/ is pure: only xstate and its own types (the charts are what the inspector draws).
            ...(folder === 'machines' ? [{ group: ['node:*', 'execa', 'better-sqlite3', 'pino'], message: 'machines/ is pure: no I/O.' }] : []),
            {
              regex: `^(\\.\\./)+(${banned.join('|')})/`,
              message: `${folder}/ may import only from ${may.length ? may.map((f) => f + '/').join(', ') : 'no other folder'} (README.md, Layout).`,
            },
          ],
        }],
      },
    };
  });
}
