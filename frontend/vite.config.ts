/// <reference types="vitest/config" />
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

import basicSsl from "@vitejs/plugin-basic-ssl";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

// The proxy (aiohttp) serves `x.js.br` / `x.js.gz` in place of `x.js` to browsers that accept them,
// so the page's ~800 KB of JavaScript (most of it the ElevenLabs SDK) goes out as ~200 KB.
function precompress(): Plugin {
  return {
    name: "glimpse-precompress",
    apply: (_config, { mode }) => mode === "production",
    writeBundle(options, bundle) {
      for (const fileName of Object.keys(bundle)) {
        if (!/\.(js|css|html|svg|json)$/.test(fileName)) continue;
        const path = join(options.dir ?? "dist", fileName);
        const data = readFileSync(path);
        if (data.length < 1024) continue;
        writeFileSync(`${path}.gz`, gzipSync(data, { level: 9 }));
        writeFileSync(`${path}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: data.length > 1_000_000 ? 9 : 11 } }));
      }
    },
  };
}

// `npm run dev` proxies the API to a proxy started with `make run` (or GLIMPSE_PROXY_URL).
// VITE_HTTPS=1 serves the page over HTTPS with a self-signed certificate: browsers only
// give the microphone to a secure context, and plain http is secure on localhost only.
const proxyTarget = process.env.GLIMPSE_PROXY_URL ?? "http://127.0.0.1:8080";
const https = process.env.VITE_HTTPS === "1";

export default defineConfig({
  plugins: [react(), precompress(), ...(https ? [basicSsl({ name: "glimpse-dev" })] : [])],
  server: {
    host: https ? true : "127.0.0.1",
    port: 5173,
    proxy: {
      "/v1": { target: proxyTarget, changeOrigin: true },
      "/healthz": proxyTarget,
    },
  },
  // The ElevenLabs SDK (with LiveKit for WebRTC) is most of the bundle, and the page needs it at once.
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 900 },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./tests/setup.ts"],
    include: ["tests/**/*.test.{ts,tsx}"],
    // The real ConversationProvider runs in the tests; only the client's network side is faked.
    server: { deps: { inline: ["@elevenlabs/react"] } },
  },
});
