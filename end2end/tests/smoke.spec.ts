import { test, expect, gatewayURL } from './fixtures/console';

test.describe('console smoke', () => {
  test('home page is rendered on the server', async ({ request }) => {
    const res = await request.get('/');
    expect(res.status()).toBe(200);
    expect(res.headers()['content-type']).toContain('text/html');
    const html = await res.text();
    expect(html).toMatch(/<h1[^>]*data-testid="page-title"[^>]*>Sheepdog console<\/h1>/);
    expect(html).toContain('data-testid="coming-soon"');
    // The hydration scripts point at the wasm bundle cargo-leptos built.
    expect(html).toContain('/pkg/sheepdog.js');
    expect(html).toContain('/pkg/sheepdog.wasm');
    expect(html).toContain('/pkg/sheepdog.css');
  });

  test('site bundle is served', async ({ request }) => {
    const wasm = await request.get('/pkg/sheepdog.wasm');
    expect(wasm.status()).toBe(200);
    expect(wasm.headers()['content-type']).toBe('application/wasm');
    expect((await wasm.body()).subarray(0, 4)).toEqual(Buffer.from([0x00, 0x61, 0x73, 0x6d]));

    for (const path of ['/pkg/sheepdog.js', '/pkg/sheepdog.css']) {
      expect((await request.get(path)).status(), path).toBe(200);
    }
  });

  test('unknown pages get the console 404 page', async ({ request }) => {
    const res = await request.get('/no-such-page');
    expect(res.status()).toBe(404);
    expect(await res.text()).toContain('data-testid="not-found"');
  });

  test('home page hydrates and the toggle works', async ({ homePage }) => {
    await homePage.goto();
    await expect(homePage.heading).toHaveText('Sheepdog console');
    await expect(homePage.comingSoon).toContainText('coming');
    await homePage.waitForHydration();

    await expect(homePage.details).toHaveCount(0);
    await expect(homePage.detailsToggle).toHaveText('Show details');
    await homePage.detailsToggle.click();
    await expect(homePage.detailsToggle).toHaveText('Hide details');
    await expect(homePage.detailsToggle).toHaveAttribute('aria-expanded', 'true');
    await expect(homePage.details).toBeVisible();
    await homePage.detailsToggle.click();
    await expect(homePage.details).toHaveCount(0);
  });

  test('gateway health comes from the server function', async ({ homePage, request }) => {
    // The gateway itself is up...
    const healthz = await request.get(`${gatewayURL}/healthz`);
    expect(healthz.ok()).toBeTruthy();

    // ...and the console, which asks it over HTTP, says so.
    await homePage.goto();
    await expect(homePage.gatewayHealth).toHaveAttribute('data-state', 'healthy');
    await expect(homePage.gatewayHealth).toHaveText('Healthy');

    // After hydration, re-checking calls the server function from the browser.
    await homePage.waitForHydration();
    const call = homePage.page.waitForResponse(
      (res) => res.url().includes('/api/') && res.request().method() === 'POST',
    );
    await homePage.gatewayHealthRefresh.click();
    expect((await call).status()).toBe(200);
    await expect(homePage.gatewayHealth).toHaveAttribute('data-state', 'healthy');
  });

  test('no page errors or console errors; screenshot', async ({ homePage, browserErrors }, testInfo) => {
    await homePage.goto();
    await homePage.waitForHydration();
    await expect(homePage.gatewayHealth).toHaveAttribute('data-state', 'healthy');
    await homePage.page.waitForLoadState('networkidle');

    const path = testInfo.outputPath('home.png');
    await homePage.page.screenshot({ path, fullPage: true });
    await testInfo.attach('home page', { path, contentType: 'image/png' });

    // The auto fixture checks again after the test; this makes the intent explicit.
    expect(browserErrors).toEqual([]);
  });
});
