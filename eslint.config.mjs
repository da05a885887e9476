// Lint rules every change must pass (`npm run lint`, part of `npm test`); layout is Prettier's job.
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

// What the product is built from (util, crds, provider) never imports what is built on it.
const LOWER_LAYER = {
  group: ['**/driver/*', '**/reconciler/*', '**/commands/*'],
  message: 'a lower layer (util, crds, provider) may not import driver, reconciler or commands',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scripts/**', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test runs what these register; their promises are the runner's to await.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'before', 'after'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-unused-expressions': 'error',
      '@typescript-eslint/require-await': 'off',
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // No import cycles in the product: a cycle makes the order modules load in matter.
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    rules: { 'import-x/no-cycle': 'error' },
  },
  {
    // Layers (LOWER_LAYER above).
    files: ['src/util/**/*.ts', 'src/crds/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [LOWER_LAYER],
        },
      ],
    },
  },
  {
    // The CSMS provider knows nothing of Kubernetes or of the provider API built on it.
    files: ['src/provider/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            LOWER_LAYER,
            {
              group: ['@kubernetes/*', '**/kube/*', '**/access/*', '**/admission/*', '**/provider-api/*'],
              message: 'the CSMS provider knows nothing of Kubernetes, access policy or the provider API',
            },
          ],
        },
      ],
    },
  },
  {
    // Tests read free-form JSON (kubectl, helm, the API); they may handle it untyped.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
