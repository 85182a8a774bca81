import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Kind modules (src/kind-module.ts imports them with `?digest=...`) are imported by Node itself, as in the
    // CLI: Vite's transform would turn their syntax errors and stack traces into its own.
    server: { deps: { external: [/[?&]digest=[0-9a-f]+$/] } },
  },
})
