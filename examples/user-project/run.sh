npx fanc compile idl/           # checks idl/, writes generated/
npx tsc                         # strict typecheck, JavaScript to dist/
npx vitest run                  # test/wines.test.ts, against a mock of IntegrationApi
node dist/src/main.js           # serves both services and calls one, in one process
