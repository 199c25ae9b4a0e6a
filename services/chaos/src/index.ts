/**
 * `@dropgate/chaos`: the randomized campaign (`npm run chaos`) as a library, for its tests: generate
 * scenarios from seeds, run them against a private stack, report.
 */
export { runCampaign, runScenarios, type CampaignOptions, type CampaignResult } from './campaign.ts';
export { runScenario, type ScenarioResult, type Violation } from './run-scenario.ts';
export { generateScenario, describeScenario, isGlobal, type ScenarioSpec, type Action, type GlobalFaultKind } from './scenario.ts';
export { startChaosStack, BASE_FAULTS, type ChaosStack } from './stack.ts';
export { Rng, scenarioSeed, parseSeed } from './random.ts';
export { byKind, replayCommand, scenarioLine, summaryText, violationKind } from './report.ts';
export { parseChaosArgs, helpText, UsageError, type ChaosOptions } from './options.ts';
