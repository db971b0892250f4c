import type { Page } from '@playwright/test';
import { test, expect, adminApi, bootstrap, signInAsAdmin, tenantNamed } from './fixtures/console';
import { hydrated, LoginPage } from './fixtures/pages';
import { seriousViolations } from './fixtures/axe';

async function checkPage(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
  expect(await seriousViolations(page), path).toEqual([]);
}

/** The outline the focused element shows (a keyboard user must see where they are). */
async function focusOutline(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    if (!el) return 'none';
    const s = getComputedStyle(el);
    return s.outlineStyle === 'none' || s.outlineWidth === '0px' ? 'none' : `${s.outlineStyle} ${s.outlineWidth}`;
  });
}

test.describe('accessibility', () => {
  test('the sign-in page passes axe and signs in from the keyboard alone', async ({ page }) => {
    await checkPage(page, '/login');
    const login = new LoginPage(page);
    const { adminEmail, adminPassword } = bootstrap();
    // Tab from the top of the page reaches the e-mail field.
    for (let i = 0; i < 6; i++) {
      if (await login.email.evaluate((el) => el === document.activeElement)) break;
      await page.keyboard.press('Tab');
    }
    await expect(login.email).toBeFocused();
    expect(await focusOutline(page)).not.toBe('none');
    await page.keyboard.type(adminEmail);
    await page.keyboard.press('Tab');
    await expect(login.password).toBeFocused();
    await page.keyboard.type(adminPassword);
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/\/$/);
    await expect(page.getByTestId('user-role')).toHaveText('admin');
  });

  test('every staff page has no serious or critical axe violation', async ({ page, request }) => {
    test.setTimeout(90_000);
    const tenant = await tenantNamed(request, 'Axe Check GmbH');
    await signInAsAdmin(page);
    // A rollout of this tenant only (nobody else's traffic moves), for its page.
    const rollout = await adminApi(request, 'POST', '/rollouts', {
      model: 'gpt-4.1',
      tenant_id: tenant.id,
      to: { provider: 'simulated-b', upstream_model: 'gpt-4.1-b' },
    });
    const paths = ['/', '/?range=7d', '/tenants', '/tenants/new', `/tenants/${tenant.id}`, '/costs', '/costs?range=month', '/audit', '/users', '/rollouts', `/rollouts/${rollout.id}`, '/analyses'];
    for (const path of paths) await checkPage(page, path);
    // The phone layout with its menu open.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto('/tenants');
    await hydrated(page);
    await page.getByTestId('nav-toggle').click();
    expect(await seriousViolations(page), 'phone menu').toEqual([]);
    await adminApi(request, 'POST', `/rollouts/${rollout.id}/rollback`, { reason: 'a11y check done' });
  });

  test('a key is created and revoked from the keyboard, with visible focus', async ({ page, request }) => {
    const tenant = await tenantNamed(request, 'Keyboard Keys SA');
    await signInAsAdmin(page);
    await page.goto(`/tenants/${tenant.id}`);
    await hydrated(page);
    await page.getByTestId('key-name').focus();
    await page.keyboard.type('keyboard');
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('create-key')).toBeFocused();
    expect(await focusOutline(page)).not.toBe('none');
    await page.keyboard.press('Enter');
    const created = page.locator('[data-testid="key-row"][data-state="active"]', { hasText: 'keyboard' }).first();
    await expect(created).toBeVisible();
    const keyId = await created.getAttribute('data-key-id');
    const row = page.locator(`[data-testid="key-row"][data-key-id="${keyId}"]`);
    await row.getByTestId('revoke-key').focus();
    await page.keyboard.press('Enter');
    const dialog = row.getByTestId('confirm-dialog');
    await expect(dialog).toBeVisible();
    expect(await seriousViolations(page), 'confirmation dialog').toEqual([]);
    await dialog.getByTestId('confirm-yes').focus();
    await page.keyboard.press('Enter');
    await expect(row).toHaveAttribute('data-state', 'revoked');
  });

  test('a tenant is onboarded from the keyboard alone', async ({ page }) => {
    await signInAsAdmin(page);
    await page.goto('/tenants/new');
    await hydrated(page);
    const stamp = Date.now();
    await page.getByTestId('onboard-name').focus();
    await page.keyboard.type(`Keyboard Onboard ${stamp}`);
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('onboard-tier')).toBeFocused();
    expect(await focusOutline(page)).not.toBe('none');
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('onboard-aliases')).toBeFocused();
    await page.keyboard.type(`kb-${stamp}`);
    await page.keyboard.press('Tab');
    await expect(page.getByTestId('onboard-rpm')).toBeFocused();
    await page.keyboard.type('120');
    // Enter in a field submits the form.
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('onboard-done')).toBeVisible();
    await expect(page.getByTestId('key-secret')).toHaveValue(/^sk-sd-/);
    await page.getByTestId('open-tenant').focus();
    expect(await focusOutline(page)).not.toBe('none');
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/\/tenants\/[0-9a-f-]{36}$/);
    await expect(page.getByTestId('limit-rpm')).toHaveValue('120');
  });

  test('the tenant portal has no serious or critical axe violation', async ({ page, request }) => {
    const tenant = await tenantNamed(request, 'Axe Portal BV');
    const email = 'axe-portal@example.test';
    const users = await adminApi(request, 'GET', '/users');
    if (!users.data.some((u: { email: string }) => u.email === email)) {
      await adminApi(request, 'POST', '/users', { email, role: 'tenant', tenant_id: tenant.id, password: 'axe portal password' });
    }
    const login = new LoginPage(page);
    await login.goto();
    await login.signIn(email, 'axe portal password');
    await expect(page).toHaveURL(/\/portal$/);
    for (const path of ['/portal', '/portal/keys']) await checkPage(page, path);
  });
});

test.describe('accessibility of the 404 page', () => {
  test.use({ allowedErrors: [/status of 404/] });
  test('the console 404 page has no serious or critical axe violation', async ({ page }) => {
    await signInAsAdmin(page);
    await checkPage(page, '/no-such-page');
  });
});
