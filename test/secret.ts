/** Secret the workerd tests run with (vitest.config.ts binds it as HUB_SECRET). */
export const TEST_SECRET = "test-secret-for-vitest";
