import * as path from 'node:path';
import { test, expect, adminApi, bootstrap, consoleURL, screenshot, signInAsAdmin, tenantNamed } from './fixtures/console';
import { hydrated } from './fixtures/pages';

// tests/fixtures/analysis-log.jsonl: 93 requests over 40 minutes of JSON lines
// (tenant in metadata.tenant_id). `analysis-e2e-bigco` sends bursts of 6
// parallel requests (it holds 6 of the 7 in flight at the peak: dedicated),
// `Analysis E2E Small` one request a minute, `analysis-e2e-stranger` three
// requests and has no tenant in the console.
const LOG = path.join(__dirname, 'fixtures', 'analysis-log.jsonl');
const num = (text: string) => Number(text.replace(/[^0-9]/g, ''));

test('upload a log, read the report, apply a recommendation to the tenant', async ({ page, request, analysis, shell }, testInfo) => {
  test.setTimeout(90_000);
  // The tenants the log names: one by alias, one by name; back to defaults if a retry finds them changed.
  const big = await tenantNamed(request, 'Analysis E2E BigCo', { aliases: ['analysis-e2e-bigco'] });
  await adminApi(request, 'PATCH', `/tenants/${big.id}`, { tier: 'shared' });
  await adminApi(request, 'PUT', `/tenants/${big.id}/limits`, { requests_per_minute: 1000, tokens_per_minute: 1000000 });
  await tenantNamed(request, 'Analysis E2E Small');

  await signInAsAdmin(page);
  await analysis.goto();
  await hydrated(page);
  await expect(shell.nav.getByTestId('nav-analyses')).toHaveAttribute('aria-current', 'page');
  await analysis.file.setInputFiles(LOG);
  await page.getByTestId('analysis-tenant-field').fill('metadata.tenant_id');
  await page.getByTestId('analysis-map').fill('gpt-4.1=deepseek-v3.2');
  await analysis.submit.click();
  await expect(analysis.result).toBeVisible({ timeout: 30_000 });

  // The summary: what was read, the peak, the cost now and under the mapping.
  await expect(page.getByTestId('analysis-records').locator('.stat-value')).toHaveText('93');
  await expect(page.getByTestId('analysis-peak').locator('.stat-value')).toHaveText('7');
  const now = await page.getByTestId('analysis-cost-now').locator('.stat-value').textContent();
  const projected = await page.getByTestId('analysis-cost-projected').locator('.stat-value').textContent();
  expect(now).toMatch(/^\$/);
  expect(projected).not.toBe(now);
  await expect(page.getByTestId('analysis-cost-projected')).toContainText('gpt-4.1 → deepseek-v3.2');

  // Per tenant: matched by alias, by name, or not at all.
  await expect(analysis.rows).toHaveCount(3);
  const bigRow = analysis.row('analysis-e2e-bigco');
  await expect(bigRow.getByTestId('analysis-match')).toHaveText('Analysis E2E BigCo');
  await expect(bigRow.getByTestId('analysis-peak-concurrency')).toHaveText('6');
  await expect(bigRow.getByTestId('analysis-tier')).toHaveAttribute('data-tier', 'dedicated');
  await expect(bigRow.getByTestId('analysis-limits')).toContainText('concurrent');
  const smallRow = analysis.row('Analysis E2E Small');
  await expect(smallRow.getByTestId('analysis-match')).toHaveText('Analysis E2E Small');
  await expect(smallRow.getByTestId('analysis-tier')).toHaveAttribute('data-tier', 'shared');
  const stranger = analysis.row('analysis-e2e-stranger');
  await expect(stranger.getByTestId('analysis-no-match')).toBeVisible();
  await expect(stranger.getByTestId('apply-recommendation')).toBeDisabled();
  await expect(stranger.getByTestId('apply-unavailable')).toContainText('No tenant has the id, alias or name');

  // The charts: ours, and the report's own in a sandboxed frame.
  await expect(page.getByTestId('analysis-chart-requests').locator('circle').first()).toBeAttached();
  const frame = page.frameLocator('[data-testid="analysis-report-frame"]');
  await expect(frame.locator('svg').first()).toBeVisible();
  await expect(page.getByTestId('analysis-report-frame')).toHaveAttribute('sandbox', '');

  // Apply BigCo's recommendation: the confirmation shows exactly what changes.
  await bigRow.getByTestId('apply-recommendation').click();
  const confirm = page.getByTestId('apply-confirm');
  await expect(confirm).toBeVisible();
  await expect(page.getByTestId('apply-change-tier')).toHaveAttribute('data-before', 'shared');
  await expect(page.getByTestId('apply-change-tier')).toHaveAttribute('data-after', 'dedicated');
  await expect(page.getByTestId('apply-change-rpm')).toHaveAttribute('data-before', '1,000');
  await expect(page.getByTestId('apply-change-concurrency')).toHaveAttribute('data-before', 'no limit');
  const rpm = num(await analysis.planned('rpm'));
  const tpm = num(await analysis.planned('tpm'));
  const conc = num(await analysis.planned('concurrency'));
  expect(rpm).toBeGreaterThan(0);
  expect(tpm).toBeGreaterThan(0);
  expect(conc).toBeGreaterThanOrEqual(6);
  await screenshot(page, testInfo, 'analysis');
  await page.getByTestId('apply-submit').click();
  await expect(page.getByTestId('apply-saved')).toHaveText('Applied to Analysis E2E BigCo.');
  await expect(confirm).toBeHidden();
  await expect(bigRow.getByTestId('apply-done')).toBeVisible();

  // The tenant changed, through the admin API, audited under the operator's name.
  const after = await adminApi(request, 'GET', `/tenants/${big.id}`);
  expect(after.tier).toBe('dedicated');
  expect(after.limits).toEqual({ requests_per_minute: rpm, tokens_per_minute: tpm, max_concurrency: conc });
  const audit = await adminApi(request, 'GET', `/audit?target=${big.id}`);
  const actions = audit.data.filter((e: { actor: string }) => e.actor === `console:${bootstrap().adminEmail}`).map((e: { action: string }) => e.action);
  expect(actions).toEqual(expect.arrayContaining(['tenant.update', 'tenant.limits']));
  // And the tenant's page shows it.
  await page.goto(`/tenants/${big.id}`);
  await expect(page.getByTestId('limit-rpm')).toHaveValue(String(rpm));
});

test.describe('uploads that cannot be analysed', () => {
  // The browser logs the refused uploads' 413 and 400; those are expected.
  test.use({ allowedErrors: [/status of (413|400)/] });

  test('a file over the limit and a file that is not a log get a clear error', async ({ page, analysis }) => {
    await signInAsAdmin(page);
    await analysis.goto();
    await hydrated(page);
    await expect(analysis.page.getByTestId('analysis-form')).toContainText('at most 1.0 MiB');

    // Too large: refused in the browser before anything is sent...
    await analysis.file.setInputFiles({ name: 'huge.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.alloc(1536 * 1024, 'x') });
    await analysis.submit.click();
    await expect(analysis.error).toContainText('The file is 1.5 MiB; the most an analysis accepts is 1.0 MiB');
    await expect(analysis.error).toContainText('gzip');
    // ...and by the console server for a client that sends it anyway.
    const res = await page.request.post('/analyses/upload', {
      headers: { Origin: consoleURL, 'Content-Type': 'application/octet-stream' },
      data: Buffer.alloc(2 * 1024 * 1024, 'x'),
    });
    expect(res.status()).toBe(413);
    expect((await res.json()).message).toContain('gateway.max_analysis_upload_bytes');

    // Not a log: the gateway says why.
    await analysis.file.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello\nthis is not a log\n') });
    await analysis.submit.click();
    await expect(analysis.error).toContainText('No usable request record');
    await expect(analysis.result).toHaveCount(0);
  });
});
