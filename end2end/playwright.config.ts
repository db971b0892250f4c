import { defineConfig, devices } from '@playwright/test';

// scripts/e2e.sh starts `sheepdog serve` on free ports and exports these; the
// defaults match a `sheepdog serve` with the default configuration.
const consoleURL = process.env.SHEEPDOG_CONSOLE_URL ?? 'http://127.0.0.1:3000';

// Playwright drives Debian's Chromium (`apt-get install chromium`);
// `npx playwright install` needs a download that is not available here.
const chromiumPath = process.env.SHEEPDOG_CHROMIUM ?? '/usr/bin/chromium';

const launchOptions = {
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};

export default defineConfig({
  testDir: './tests',
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: process.env.CI ? 1 : 0,
  reporter: process.env.CI ? [['list'], ['html', { open: 'never' }]] : [['list']],
  timeout: 30_000,
  expect: { timeout: 10_000 },
  outputDir: './test-results',
  use: {
    baseURL: consoleURL,
    trace: 'on-first-retry',
    screenshot: 'only-on-failure',
  },
  // The whole suite on a 1280×800 desktop; the operator's journey again on
  // a 390×844 phone (its own tenants: see journey.spec.ts).
  projects: [
    {
      name: 'chromium',
      use: { ...devices['Desktop Chrome'], viewport: { width: 1280, height: 800 }, launchOptions },
    },
    {
      name: 'phone',
      testMatch: /journey\.spec\.ts/,
      use: { ...devices['Desktop Chrome'], viewport: { width: 390, height: 844 }, launchOptions },
    },
  ],
  // No webServer: scripts/e2e.sh owns the server's lifecycle.
});
