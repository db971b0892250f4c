import { test, expect, signInAsAdmin, tenantNamed } from './fixtures/console';
import { seriousViolations } from './fixtures/axe';
import { hydrated } from './fixtures/pages';

test.describe('console smoke', () => {
  test('sign-in page is rendered on the server', async ({ request }) => {
    const res = await request.get('/login');
    expect(res.status()).toBe(200);
    expect(res.headers()['content-type']).toContain('text/html');
    const html = await res.text();
    expect(html).toMatch(/<h1[^>]*data-testid="page-title"[^>]*>Sign in<\/h1>/);
    expect(html).toContain('data-testid="login-form"');
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

  test('pages need a session: a real redirect to the sign-in page', async ({ request }) => {
    for (const path of ['/', '/tenants', '/rollouts', '/costs', '/audit', '/portal']) {
      const res = await request.get(path, { maxRedirects: 0, headers: { Accept: 'text/html' } });
      expect(res.status(), path).toBe(302);
      expect(res.headers()['location'], path).toMatch(/^\/login/);
    }
  });

  test('the sign-in page hydrates without console errors', async ({ page, login }) => {
    await login.goto();
    await hydrated(page);
    await expect(login.submit).toHaveText('Sign in');
  });

  test('the rollouts page renders for the admin without console errors', async ({ page, rollouts, shell }) => {
    await signInAsAdmin(page);
    await rollouts.goto();
    await hydrated(page);
    await expect(page.getByTestId('page-title')).toHaveText('Rollouts');
    await expect(shell.nav.getByTestId('nav-rollouts')).toHaveAttribute('aria-current', 'page');
    // The simulated provider config has no rollouts: the empty state and the form.
    // Empty on a fresh server; another test may have started one already.
    await expect(rollouts.empty.or(rollouts.table)).toBeVisible();
    await expect(rollouts.form).toBeVisible();
    await expect(page.getByTestId('rollout-model')).toBeVisible();
    await expect(page.getByTestId('rollout-create')).toHaveText('Start rollout');
  });

  test('the onboarding form does not overlap itself at 1280×800', async ({ page, onboard }) => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await signInAsAdmin(page);
    await onboard.goto();
    await hydrated(page);
    const boxes = await page.locator('form fieldset').evaluateAll((sets) =>
      sets.map((f) => {
        const r = f.getBoundingClientRect();
        return { x: r.left, y: r.top, right: r.right, bottom: r.bottom };
      }),
    );
    expect(boxes.length).toBeGreaterThan(1);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, b] = [boxes[i], boxes[j]];
        const overlap = a.x < b.right - 1 && b.x < a.right - 1 && a.y < b.bottom - 1 && b.y < a.bottom - 1;
        expect(overlap, `fieldsets ${i} and ${j} overlap: ${JSON.stringify([a, b])}`).toBe(false);
      }
    }
    // Nothing wider than the page.
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(scroll).toBeLessThanOrEqual(0);
  });

  test('on a phone the navigation is a menu button, and every page stays inside the screen', async ({ page, request }) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await signInAsAdmin(page);
    await page.goto('/');
    await hydrated(page);
    const nav = page.getByTestId('main-nav');
    const toggle = page.getByTestId('nav-toggle');
    await expect(nav).toBeHidden();
    await expect(toggle).toHaveAttribute('aria-expanded', 'false');
    // Keyboard operable: focus and Enter open it.
    await toggle.focus();
    await page.keyboard.press('Enter');
    await expect(toggle).toHaveAttribute('aria-expanded', 'true');
    await expect(nav).toBeVisible();
    await nav.getByRole('link', { name: 'Tenants' }).click();
    await expect(page).toHaveURL(/\/tenants$/);
    await expect(nav).toBeHidden();
    await expect(page.getByTestId('logout')).toBeInViewport();

    // No page scrolls sideways: wide tables scroll inside their card.
    const tenant = await tenantNamed(request, 'Phone Check Ltd');
    const pages = ['/', '/tenants', '/tenants/new', `/tenants/${tenant.id}`, '/costs', '/costs?range=month', '/audit', '/users', '/rollouts', '/analyses'];
    for (const path of pages) {
      await page.goto(path);
      await hydrated(page);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, `${path} scrolls sideways by ${overflow} px at 390 px`).toBeLessThanOrEqual(0);
      // Tables that scroll inside their card can be reached from the keyboard.
      expect(await seriousViolations(page), `${path} at 390 px`).toEqual([]);
    }
  });
});
