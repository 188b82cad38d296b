// Builds the dashboard into the Python package, where `iotscope serve` finds it (not in git).
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: {
    outDir: '../../src/iotscope/web/static',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
});
