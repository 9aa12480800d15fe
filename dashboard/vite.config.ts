/**
 * Builds the operator dashboard into dashboard/dist, which wrangler.jsonc
 * serves as static assets (`npm run build`). `npm run dashboard:dev` serves
 * it with hot reload and forwards /v1 (REST and the live socket) to a hub
 * on http://127.0.0.1:8787 (`npm start` in another terminal).
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2023",
    // No source maps: the deployed page would hand them to anyone (docs/security.md).
    sourcemap: false,
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: {
      "/v1": { target: "http://127.0.0.1:8787", ws: true, changeOrigin: true },
    },
  },
});
