/**
 * Two projects: `unit` (test files that need no database and no Redis: no global set-up, so
 * `npx jest test/flows-engine` starts at once) and `integration` (everything else, with the run's template database
 * created by test/global-setup.ts). Jest runs a project's globalSetup only when one of its test files is selected.
 * A test file listed in UNIT must not touch PostgreSQL or Redis: `templateDatabase()` throws there, since
 * WABOT_TEST_TEMPLATE_DB is not set without the integration project's set-up.
 */

/** Test files (or whole folders, ending in /) that talk to no database and no Redis. */
const UNIT = [
  "test/flows-engine/",
  "test/sandbox/",
  "test/crypto.test.ts",
  "test/chaos/report.test.ts",
  "test/docs/openapi.test.ts",
  "test/events/signature.test.ts",
  "test/flows-publish/cli.test.ts",
  "test/ingest/envelope.test.ts",
  "test/journeys/flows-static.test.ts",
  "test/journeys-pin/smtp-sender.test.ts",
  "test/limits/sandbox-tier.test.ts",
  "test/ops/config-doc.test.ts",
  "test/ops/log-redaction.test.ts",
  "test/ops/metrics-unit.test.ts",
  "test/outbound/client.test.ts",
  "test/providers/recording-sender.test.ts",
  "test/providers/signature.test.ts",
  "test/providers/status-route.test.ts",
  "test/providers/texts.test.ts",
  "test/providers/twilio-adapters.test.ts",
  "test/shared/",
  "test/tenants/settings-memo.test.ts",
  "test/web/flow-lines.test.ts",
];
/** as testMatch globs */
const UNIT_GLOBS = UNIT.map((p) => "<rootDir>/" + p + (p.endsWith("/") ? "**/*.test.ts" : ""));
/** as testPathIgnorePatterns (regular expressions on the absolute path) */
const UNIT_PATTERNS = UNIT.map((p) => "<rootDir>/" + p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + (p.endsWith("/") ? "" : "$"));

const shared = {
  testEnvironment: "node",
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest"] },
  // a production build (npm run build, or the compiled-build test's) holds compiled copies of src: not modules here
  modulePathIgnorePatterns: ["<rootDir>/dist/"],
};

// the 10,000-message scale-out run (four processes) has its own command, `npm run test:scale`, which .ci/run runs
// after `npm test` on its own so the two do not fight over two cores
const ignored = process.env.WABOT_SCALE ? ["/node_modules/"] : ["/node_modules/", "<rootDir>/test/scale/scale-out.test.ts"];

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      ...shared,
      displayName: "unit",
      testMatch: UNIT_GLOBS,
      testPathIgnorePatterns: ignored,
    },
    {
      ...shared,
      displayName: "integration",
      testMatch: ["<rootDir>/test/**/*.test.ts"],
      testPathIgnorePatterns: [...ignored, ...UNIT_PATTERNS],
      globalSetup: "<rootDir>/test/global-setup.ts",
      globalTeardown: "<rootDir>/test/global-teardown.ts",
    },
  ],
  // a test system's close (workers, queues, database) can take tens of seconds while the chaos tests load both cores
  testTimeout: 60_000,
  // two cores: more workers only fight over PostgreSQL and Redis
  maxWorkers: 2,
};
