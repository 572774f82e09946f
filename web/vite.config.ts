/**
 * Vite builds the web UI into web/dist: hashed assets under /assets (served with a
 * long cache), index.html served no-cache by the proxy. No inline scripts, so the
 * proxy's Content-Security-Policy can say `script-src 'self'`.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  resolve: {
    alias: { react: 'preact/compat', 'react-dom': 'preact/compat' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    // Inlined assets would become data: URLs; keep them files so the CSP stays simple.
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
});
