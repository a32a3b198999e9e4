/**
 * `fan/testing`: the test kit users import (createTestApp, mocks).
 * OWNER: runtime-core helper.
 */
export { createMock } from "../runtime/mock.js";
export type { MethodMock, ServiceMock, RecordedCall } from "../runtime/mock.js";
