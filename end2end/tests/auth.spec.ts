import { test, expect, bootstrap, consoleURL, screenshot } from './fixtures/console';
import { hydrated } from './fixtures/pages';

test.describe('sign-in and sessions', () => {
  test.describe('wrong password', () => {
    // The browser logs the 401 of the failed sign-in; that one is expected.
    test.use({ allowedErrors: [/status of 401/] });

    test('a wrong password is refused with one message for every cause', async ({ page, login }) => {
      await login.goto();
      await hydrated(page);
      await login.signIn('admin@sheepdog.local', 'not-the-password');
      await expect(login.error).toHaveText('Wrong email or password.');
      await expect(login.error).toHaveAttribute('data-error', 'invalid_credentials');
      await login.signIn('nobody@example.com', 'not-the-password');
      await expect(login.error).toHaveAttribute('data-error', 'invalid_credentials');
    });
  });

  test('sign in, see the console, sign out', async ({ page, login, shell }, testInfo) => {
    const { adminEmail, adminPassword } = bootstrap();
    await login.goto('/tenants');
    await hydrated(page);
    await screenshot(page, testInfo, 'login');
    await login.signIn(adminEmail, adminPassword);
    await expect(page).toHaveURL(/\/tenants$/);
    await expect(shell.userEmail).toHaveText(adminEmail);
    await expect(shell.nav.getByTestId('nav-rollouts')).toHaveAttribute('href', '/rollouts');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'sheepdog_session');
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe('Lax');

    await hydrated(page);
    await shell.signOut();
    // The session is gone: protected pages send us back to sign in.
    await page.goto('/tenants');
    await expect(page).toHaveURL(/\/login\?next=/);
  });

  test('a cross-origin POST is refused', async ({ request }) => {
    const { adminEmail, adminPassword } = bootstrap();
    const res = await request.post('/api/login', {
      headers: { Origin: 'https://evil.example', Accept: 'application/json' },
      form: { email: adminEmail, password: adminPassword },
    });
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('cross_origin_refused');
    // The same call from the console's own origin works.
    const ok = await request.post('/api/login', {
      headers: { Origin: consoleURL, Accept: 'application/json' },
      form: { email: adminEmail, password: adminPassword },
    });
    expect(ok.status()).toBe(200);
  });

  test('pages read without JavaScript', async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const { adminEmail, adminPassword } = bootstrap();
    // The sign-in form is a plain form POST without JavaScript.
    await page.goto('/login');
    await page.getByTestId('login-email').fill(adminEmail);
    await page.getByTestId('login-password').fill(adminPassword);
    await page.getByTestId('login-submit').click();
    await expect(page.getByTestId('user-role')).toHaveText('admin');
    for (const [path, testid] of [
      ['/', 'stat-requests'],
      ['/tenants', 'tenant-filters'],
      ['/costs?range=24h', 'by-tenant'],
      ['/audit', 'audit-filters'],
    ]) {
      await page.goto(path);
      await expect(page.getByTestId(testid), path).toBeVisible();
    }
    await context.close();
  });
});
