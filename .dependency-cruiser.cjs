/**
 * The import structure, checked by `npm run lint`. Dependencies run one way: packages never import a
 * service; the API, the worker and the simulator (the runnables) import packages only; composite
 * services (stack, drop, bench, chaos) may build on the runnables; no workspace reaches into another
 * by a relative path; and nothing imports in a circle.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules that import each other, directly or through others.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'packages-never-import-services',
      severity: 'error',
      comment: 'packages/* are what services share: they (and their tests) depend on no service.',
      from: { path: '^packages/' },
      to: { path: '^services/' },
    },
    {
      name: 'runnables-import-packages-only',
      severity: 'error',
      comment: 'The API, the worker and the simulator stand alone: they (and their tests) import no other service. What needs two of them lives in a composite service (services/stack, drop, bench, chaos).',
      from: { path: '^services/(api|worker|portone-sim)/' },
      to: { path: '^services/', pathNot: '^services/$1/' },
    },
    {
      name: 'composites-never-import-each-other-back',
      severity: 'error',
      comment: 'The stack is the lowest composite: it imports no other composite.',
      from: { path: '^services/stack/' },
      to: { path: '^services/(drop|bench|chaos)/' },
    },
    {
      name: 'workspaces-by-name-only',
      severity: 'error',
      comment: 'Another workspace is imported by its package name (@dropgate/...), never by a relative path into its files.',
      from: { path: '^(packages|services)/([^/]+)/' },
      to: { path: '^(packages|services)/', pathNot: '^$1/$2/', dependencyTypesNot: ['aliased-workspace', 'aliased'] },
    },
    {
      name: 'declared-dependencies-only',
      severity: 'error',
      comment: 'An npm package imported but not declared in a package.json.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
