import { test, expect, adminApi, chat, screenshot, signInAsAdmin } from './fixtures/console';
import { hydrated } from './fixtures/pages';

// A rollout from the console: start it, watch both sides live while traffic
// flows, roll it back with a reason. scripts/e2e.sh gives the server a second
// simulated provider, `simulated-b`, to roll out to.
test('start a rollout, watch both sides live, roll it back with a reason', async ({
  page,
  request,
  rollouts,
  rollout,
  shell,
}, testInfo) => {
  test.setTimeout(120_000);
  // Its own tenant, so the rollout touches no other test's traffic.
  const alias = `rollout-${Date.now()}`;
  const tenant = await adminApi(request, 'POST', '/tenants', { name: `Rollout ${alias}`, tier: 'shared', aliases: [alias] });
  const key = (await adminApi(request, 'POST', `/tenants/${tenant.id}/keys`, { name: 'rollout' })).key;

  await signInAsAdmin(page);
  await rollouts.goto();
  await hydrated(page);
  await expect(shell.nav.getByTestId('nav-rollouts')).toHaveAttribute('aria-current', 'page');
  await rollouts.create({ model: 'gpt-4.1', provider: 'simulated-b', upstreamModel: 'gpt-4.1-b', tenant: alias, phase: 'shadow' });

  // The list shows it: scope is the tenant, route from → to, phase shadow.
  const row = rollouts.row('simulated-b/gpt-4.1-b').filter({ hasText: tenant.id.slice(0, 8) });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('simulated/gpt-4.1 → simulated-b/gpt-4.1-b');
  await expect(row.getByTestId('rollout-phase')).toHaveText('shadow');

  await row.getByTestId('rollout-link').click();
  await expect(page).toHaveURL(/\/rollouts\/ro_[0-9a-f]+$/);
  const id = page.url().split('/').pop()!;
  await expect(page.getByTestId('page-title')).toHaveText('Rollout of gpt-4.1');
  await expect(rollout.phase).toHaveText('shadow');
  await expect(page.getByTestId('rollout-live')).toBeVisible();
  // In shadow: advance and roll back apply; pause and resume say why not.
  await expect(page.getByTestId('rollout-advance')).toBeEnabled();
  await expect(page.getByTestId('rollout-resume')).toBeDisabled();
  await expect(page.getByTestId('rollout-resume')).toHaveAttribute('title', /Only a running canary/);
  await expect(rollout.compare('total', 'from')).toHaveText('0');
  for (const chart of ['error-rate', 'p50', 'p99', 'throughput', 'cost', 'diff-rate'] as const) {
    await expect(rollout.chart(chart)).toBeVisible();
  }

  // Traffic through the gateway with the tenant's key: served by `from`, mirrored to `to`.
  for (let i = 0; i < 10; i++) {
    const res = await chat(request, key, { model: 'gpt-4.1', text: `Rollout ${i} [sim:tokens=${120 + i * 10}]` });
    expect(res.status(), await res.text()).toBe(200);
    expect(res.headers()['x-sheepdog-provider']).toBe('simulated');
  }

  // The page refreshes by itself (no reload): the table and the charts fill in.
  await expect(rollout.compare('total', 'from')).toHaveText('10', { timeout: 20_000 });
  await expect(rollout.compare('total', 'to')).toHaveText('10', { timeout: 20_000 });
  await expect(rollout.compare('requests', 'from')).toHaveText('10');
  await expect(rollout.compare('cost', 'from')).not.toHaveText(/^(\$0|—)$/);
  // `to` serves nobody in shadow, but its mirrored calls have a price.
  await expect(rollout.compare('cost', 'to')).not.toHaveText(/^(\$0|—)$/, { timeout: 20_000 });
  await expect(page.getByTestId('shadow-pairs')).toHaveText('10', { timeout: 20_000 });
  // Two lines (from and to) with points in each side-by-side chart.
  for (const chart of ['throughput', 'p50', 'p99', 'cost', 'error-rate'] as const) {
    await expect(rollout.chart(chart).locator('g.series'), chart).toHaveCount(2);
    await expect(rollout.chart(chart).locator('.legend li').first(), chart).toHaveText('from simulated/gpt-4.1');
    await expect(rollout.chart(chart).locator('.legend li').nth(1), chart).toHaveText('to simulated-b/gpt-4.1-b');
  }
  const fromPoints = rollout.chart('throughput').locator('g.series').first().locator('circle title');
  await expect(fromPoints.filter({ hasText: /from simulated\/gpt-4\.1: [1-9]/ }).first()).toBeAttached();
  const toPoints = rollout.chart('throughput').locator('g.series').nth(1).locator('circle title');
  await expect(toPoints.filter({ hasText: /to simulated-b\/gpt-4\.1-b: [1-9]/ }).first()).toBeAttached();
  await expect(rollout.chart('cost').locator('circle').first()).toBeAttached({ timeout: 20_000 });
  await expect(rollout.chart('diff-rate').locator('circle').first()).toBeAttached({ timeout: 20_000 });
  // Hovering a point shows its value.
  await rollout.chart('throughput').locator('circle').last().hover();
  await expect(rollout.chart('throughput').locator('.chart-tip')).toBeVisible();
  await screenshot(page, testInfo, 'rollout-detail');

  // Roll back, confirmed, with a reason: the phase changes and the history says why.
  // From the keyboard: the button, Enter, Tab to the reason, Enter.
  const reason = `e2e: simulated-b is not ready (${alias})`;
  await page.getByTestId('rollout-rollback').focus();
  await page.keyboard.press('Enter');
  const confirm = page.getByTestId('rollout-confirm');
  await expect(confirm).toHaveAttribute('role', 'alertdialog');
  await expect(confirm).toContainText(`Roll back rollout ${id}?`);
  await page.keyboard.press('Tab');
  await expect(page.getByTestId('rollout-reason')).toBeFocused();
  await page.keyboard.type(reason);
  await page.keyboard.press('Enter');
  await expect(confirm).toBeHidden();
  await expect(rollout.phase).toHaveText('rolled back');
  await expect(rollout.phase).toHaveAttribute('data-phase', 'rolled_back');
  // Nothing applies after a rollback, and the page no longer claims to be live.
  for (const a of ['advance', 'pause', 'resume', 'rollback']) {
    await expect(page.getByTestId(`rollout-${a}`)).toBeDisabled();
    await expect(page.getByTestId(`rollout-${a}`)).toHaveAttribute('title', /rolled back/);
  }
  await expect(page.getByTestId('rollout-live')).toHaveCount(0);
  const event = rollout.events.filter({ hasText: reason });
  await expect(event).toHaveCount(1);
  await expect(event).toContainText('shadow → rolled_back');
  await expect(event).toContainText('console:');

  // The gateway agrees, and the audit log names the operator.
  const detail = await adminApi(request, 'GET', `/rollouts/${id}`);
  expect(detail.phase).toBe('rolled_back');
  expect(detail.events.map((e: { reason: string }) => e.reason)).toContain(reason);
  expect(detail.events.find((e: { reason: string }) => e.reason === reason).actor).toMatch(/^console:/);
  const audit = await adminApi(request, 'GET', `/audit?action=rollout.rollback&target=${id}`);
  expect(audit.data[0].actor).toMatch(/^console:/);
  await rollouts.goto();
  await expect(rollouts.row(tenant.id.slice(0, 8)).getByTestId('rollout-phase')).toHaveText('rolled back');
});
