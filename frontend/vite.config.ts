/// <reference types="vitest/config" />
import basicSsl from "@vitejs/plugin-basic-ssl";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API to a proxy started with `make run` (or GLIMPSE_PROXY_URL).
// VITE_HTTPS=1 serves the page over HTTPS with a self-signed certificate: browsers only
// give the microphone to a secure context, and plain http is secure on localhost only.
const proxyTarget = process.env.GLIMPSE_PROXY_URL ?? "http://127.0.0.1:8080";
const https = process.env.VITE_HTTPS === "1";

export default defineConfig({
  plugins: [react(), ...(https ? [basicSsl({ name: "glimpse-dev" })] : [])],
  server: {
    host: https ? true : "127.0.0.1",
    port: 5173,
    proxy: {
      "/v1": { target: proxyTarget, changeOrigin: true },
      "/healthz": proxyTarget,
    },
  },
  build: { outDir: "dist", sourcemap: false },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./tests/setup.ts"],
    include: ["tests/**/*.test.{ts,tsx}"],
    // The real ConversationProvider runs in the tests; only the client's network side is faked.
    server: { deps: { inline: ["@elevenlabs/react"] } },
  },
});
