/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest"] },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  // the 10,000-message scale-out run (four processes) has its own command, `npm run test:scale`, which .ci/run runs
  // after `npm test` on its own so the two do not fight over two cores
  testPathIgnorePatterns: process.env.WABOT_SCALE ? ["/node_modules/"] : ["/node_modules/", "<rootDir>/test/scale/scale-out.test.ts"],
  // a production build (npm run build, or the compiled-build test's) holds compiled copies of src: not modules here
  modulePathIgnorePatterns: ["<rootDir>/dist/"],
  globalSetup: "<rootDir>/test/global-setup.ts",
  globalTeardown: "<rootDir>/test/global-teardown.ts",
  // a test system's close (workers, queues, database) can take tens of seconds while the chaos tests load both cores
  testTimeout: 60_000,
  // two cores: more workers only fight over PostgreSQL and Redis
  maxWorkers: 2,
};
