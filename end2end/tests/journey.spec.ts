import { test, expect, adminApi, bootstrap, chat, consoleURL, screenshot, signInAsAdmin } from './fixtures/console';
import { hydrated, LoginPage, PortalPage, Shell } from './fixtures/pages';

// One operator's day, in order: the steps share the tenants and keys they create.
test.describe.configure({ mode: 'serial' });

test('onboard a tenant, watch its traffic and spend, limit it, revoke its key, hand it the portal', async ({
  page,
  request,
  browser,
  onboard,
  tenantPage,
  costs,
  overview,
  users,
  shell,
}, testInfo) => {
  test.setTimeout(180_000);
  // The same journey runs on a desktop and on a phone (playwright.config.ts):
  // each run has its own tenants, aliases and tenant user.
  const phone = testInfo.project.name === 'phone';
  const shot = (p: import('@playwright/test').Page, info: typeof testInfo, name: string) =>
    screenshot(p, info, phone ? `phone-${name}` : name);
  const sfx = phone ? ' (phone)' : '';
  const asfx = phone ? '-phone' : '';

  // Neighbours with their own traffic (through the admin API, as a script would).
  const globex = await adminApi(request, 'POST', '/tenants', {
    name: `Globex${sfx}`,
    tier: 'pooled',
    aliases: [`globex${asfx}`],
    signup_credit_usd: '50',
    budget: { monthly_limit_usd: '200', hard: true },
  });
  const initech = await adminApi(request, 'POST', '/tenants', { name: `Initech${sfx}`, tier: 'dedicated', aliases: [`initech${asfx}`] });
  const globexKey = (await adminApi(request, 'POST', `/tenants/${globex.id}/keys`, { name: 'prod' })).key;
  const initechKey = (await adminApi(request, 'POST', `/tenants/${initech.id}/keys`, {})).key;
  const models = ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2'];
  for (let i = 0; i < 8; i++) {
    const res = await chat(request, globexKey, { model: models[i % 4], costCenter: i % 2 ? 'search' : 'support', text: `Q${i} [sim:tokens=${200 + i * 40}]` });
    expect(res.status()).toBe(200);
  }
  for (let i = 0; i < 5; i++) {
    expect((await chat(request, initechKey, { model: models[(i + 1) % 4], costCenter: 'analytics' })).status()).toBe(200);
  }

  // Sign in and onboard Acme with the form; the first key is shown once.
  await signInAsAdmin(page);
  await onboard.goto();
  await hydrated(page);
  const acme = await onboard.onboard({ name: `Acme Corp${sfx}`, aliases: `acme${asfx}`, budget: '100' });
  expect(acme.key).toMatch(/^sk-sd-/);

  // Requests with that key go through the gateway (simulated provider).
  for (let i = 0; i < 10; i++) {
    const res = await chat(request, acme.key, {
      model: i % 3 ? 'gpt-4.1' : 'claude-sonnet-4.5',
      costCenter: i % 2 ? 'chat' : 'batch',
      text: `Hello ${i} [sim:tokens=${300 + i * 25}]`,
    });
    expect(res.status(), await res.text()).toBe(200);
    expect(res.headers()['x-sheepdog-provider']).toBe('simulated');
  }

  // They show on the tenant's charts and in its spend.
  await tenantPage.goto(acme.id);
  await hydrated(page);
  await expect(tenantPage.requests).toContainText('10');
  await expect(tenantPage.monthSpend.locator('.stat-value')).not.toHaveText('$0');
  await expect(page.getByTestId('chart-requests').locator('circle').first()).toBeAttached();
  await shot(page, testInfo, 'tenant-detail');

  // And in cost attribution, by tenant, model and cost center, with CSV export.
  await costs.goto('24h');
  await hydrated(page);
  await expect(costs.row(costs.byTenant, acme.id)).toContainText(`Acme Corp${sfx}`);
  await expect(costs.row(costs.byCostCenter, 'chat')).toBeVisible();
  await expect(costs.row(costs.byModel, 'claude-sonnet-4.5')).toBeVisible();
  // By client format: these were Chat Completions requests.
  await expect(costs.row(costs.byIngress, 'chat')).toBeVisible();
  // A tooltip appears on hover once hydrated.
  await costs.byTenant.locator('rect.bar').first().hover();
  await expect(costs.byTenant.locator('.chart-tip')).toBeVisible();
  await shot(page, testInfo, 'cost-attribution');
  const csv = await page.request.get('/costs/export.csv?group_by=tenant&range=24h');
  expect(csv.status()).toBe(200);
  expect(await csv.text()).toContain('Acme Corp');

  await overview.goto();
  await hydrated(page);
  // 23 of ours (other tests running next to this one may add theirs).
  const total = Number(((await overview.requests.locator('.stat-value').textContent()) ?? '').replace(/[^0-9]/g, ''));
  expect(total).toBeGreaterThanOrEqual(23);
  await expect(overview.topTenants).toContainText(`Acme Corp${sfx}`);
  await expect(overview.upstreams.first()).toContainText('simulated');
  // The gateway replica serving the console, from its heartbeat.
  await expect(overview.replicas.first()).toBeVisible();
  await expect(overview.redisState).toHaveAttribute('data-state', 'off');
  await shot(page, testInfo, 'overview');
  // The range picker: the last 7 days, per day, the same requests and more.
  await page.getByTestId('range-7d').click();
  await expect(page).toHaveURL(/[?&]range=7d/);
  await expect(page.getByTestId('overview-range')).toContainText('the last 7 days');
  await expect(page.getByRole('heading', { name: 'Traffic per day' })).toBeVisible();
  await expect(page.getByTestId('range-7d')).toHaveAttribute('aria-current', 'page');
  const week = Number(((await overview.requests.locator('.stat-value').textContent()) ?? '').replace(/[^0-9]/g, ''));
  expect(week).toBeGreaterThanOrEqual(total);

  // Tighten the limit: the next request is refused with 429.
  await tenantPage.goto(acme.id);
  await hydrated(page);
  await tenantPage.setRequestsPerMinute(2);
  const limited = await chat(request, acme.key);
  expect(limited.status()).toBe(429);
  expect((await limited.json()).error.code).toBe('rate_limit_exceeded');

  // Revoke the key: the gateway answers 401.
  const revokedKey = await tenantPage.revokeFirstActiveKey();
  const revoked = await chat(request, acme.key);
  expect(revoked.status()).toBe(401);
  expect((await revoked.json()).error.code).toBe('invalid_api_key');

  // The audit log names who did it.
  await page.goto(`/audit?actor=console%3A&target=${revokedKey}`);
  await hydrated(page);
  const rows = page.getByTestId('audit-row');
  await expect(rows.filter({ hasText: 'key.revoke' })).toHaveCount(1);
  await expect(rows.first().getByTestId('audit-actor-cell')).toHaveText(`console:${bootstrap().adminEmail}`);
  await shot(page, testInfo, 'audit-log');

  // Give Acme a tenant user.
  await users.goto();
  await hydrated(page);
  const owner = `owner${asfx}@acme.example`;
  await users.create({ email: owner, role: 'tenant', tenant: `acme${asfx}`, password: 'acme-owner-password' });
  await shell.signOut();

  // The tenant user sees Acme's portal, and only Acme.
  const ctx = await browser.newContext();
  const tp = await ctx.newPage();
  const errors: string[] = [];
  tp.on('pageerror', (e) => errors.push(e.message));
  tp.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const login = new LoginPage(tp);
  await login.goto();
  await login.signIn(owner, 'acme-owner-password');
  await expect(tp).toHaveURL(/\/portal$/);
  const portal = new PortalPage(tp);
  await expect(tp.getByTestId('page-title')).toHaveText(`Acme Corp${sfx}`);
  await expect(portal.requests).toContainText('10');
  await expect(portal.rpm).toHaveText('2');
  await hydrated(tp);
  await expect(tp.locator('body')).not.toContainText('Globex');
  await expect(tp.locator('body')).not.toContainText('Initech');
  await shot(tp, testInfo, 'portal');

  // The operator console is not theirs...
  await tp.goto(`/tenants/${globex.id}`);
  await expect(tp).toHaveURL(/\/portal$/);
  // ...and direct server-function calls naming another tenant are refused or ignored.
  const headers = { Origin: consoleURL, Accept: 'application/json' };
  const detail = await tp.request.post('/api/tenant_detail', { headers, form: { id: globex.id } });
  expect(detail.status()).toBe(403);
  const summary = await tp.request.post('/api/portal_summary', { headers, form: { tenant_id: globex.id } });
  expect((await summary.json()).tenant.id).toBe(acme.id);
  const globexKeys = await adminApi(request, 'GET', `/tenants/${globex.id}/keys`);
  const steal = await tp.request.post('/api/portal_revoke_key', { headers, form: { key_id: globexKeys.data[0].id } });
  expect(steal.status()).toBe(404);
  expect((await adminApi(request, 'GET', `/tenants/${globex.id}/keys`)).data[0].status).toBe('active');

  // Their own keys: create one (shown once), see it listed.
  await tp.goto('/portal/keys');
  await hydrated(tp);
  await tp.getByTestId('key-name').fill('ci');
  await tp.getByTestId('create-key').click();
  await expect(tp.getByTestId('key-secret')).toHaveValue(/^sk-sd-/);
  await expect(tp.locator('[data-testid="key-row"][data-state="active"]')).toHaveCount(1);
  await shot(tp, testInfo, 'portal-keys');

  await new Shell(tp).signOut();
  expect(errors, 'the tenant user’s pages logged errors').toEqual([]);
  await ctx.close();
});
