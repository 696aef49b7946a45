/**
 * The inspector in a real browser: headless Chromium (Debian's) driven by playwright-core finds a
 * pod made through the CRI socket, sees RUNNING lit, then sees STOPPED lit and the new history row
 * after a stop through the socket, without reloading. Screenshots land in test-artifacts/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { chromium, type Browser } from 'playwright-core';
import { Daemon, REPO, eventually, podConfig, tempPaths } from './daemon.js';
import { forceCleanup } from './host-checks.js';
import { layoutProblems, type Box } from './chart-boxes.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'test-artifacts');
const daemon = new Daemon(tempPaths('pc-browser-'));
let browser: Browser;

interface DrawnChart { boxes: Box[]; clipped: string[]; width: number; height: number; edges: number }

/**
 * Run in the page: the chart's boxes as drawn. State rectangles, compound states with their
 * title band, and each edge label's rendered text (getBBox, so the font the browser really used);
 * also any state's own text that does not fit its rectangle. A string, as the project's
 * TypeScript has no DOM types.
 */
const READ_CHART_BOXES = `(() => {
  const num = (el, name) => Number(el.getAttribute(name));
  const rectOf = (g) => { const r = g.querySelector('rect'); return { x: num(r, 'x'), y: num(r, 'y'), width: num(r, 'width'), height: num(r, 'height') }; };
  const svg = document.querySelector('#chart');
  const boxes = [
    ...[...svg.querySelectorAll('g.node')].map((g) => ({ kind: 'state', id: g.dataset.state, ...rectOf(g) })),
    ...[...svg.querySelectorAll('g.compound')].map((g) => ({ kind: 'compound', id: g.dataset.state, header: Number(g.dataset.header), ...rectOf(g) })),
    ...[...svg.querySelectorAll('text.edge-label')].map((t) => { const b = t.getBBox(); return { kind: 'label', id: t.textContent, x: b.x, y: b.y, width: b.width, height: b.height }; }),
  ];
  const clipped = [...svg.querySelectorAll('g.node, g.compound')].flatMap((g) => {
    const r = rectOf(g);
    return [...g.querySelectorAll('text')].filter((t) => {
      const b = t.getBBox();
      return b.x < r.x || b.y < r.y || b.x + b.width > r.x + r.width || b.y + b.height > r.y + r.height;
    }).map((t) => g.dataset.state + ': ' + t.textContent);
  });
  return { boxes, clipped, width: svg.width.baseVal.value, height: svg.height.baseVal.value, edges: svg.querySelectorAll('g.edge-group path').length };
})()`;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await daemon.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root, and with no network: no sandbox, no background connections.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await daemon.dispose();
});

test('a pod\'s chart lights RUNNING, then STOPPED with a new history row, live', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('browsed') });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${daemon.inspectorPort}/`);
  const pod = page.locator(`li.actor[data-id="${podSandboxId}"]`);
  await pod.waitFor({ timeout: 10_000 });
  assert.match(await pod.innerText(), /e2e\/browsed\s+RUNNING/);
  await pod.click();
  await page.locator('g.node.current[data-state="RUNNING"]').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('g.node.current').count(), 1, 'exactly one state lit');
  assert.ok((await page.locator('g.node').count()) >= 8, 'the whole chart is drawn');
  await page.screenshot({ path: join(ARTIFACTS, 'inspector-running.png'), fullPage: true });
  // Marks this page load: a reload would lose it.
  await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

  await daemon.cri.call('StopPodSandbox', { podSandboxId });
  await page.locator('g.node.current[data-state="STOPPED"]').waitFor({ timeout: 5_000 });
  const done = page.locator('#history tr', { hasText: 'stopSandbox.done' });
  await done.waitFor({ timeout: 5_000 });
  assert.match(await done.innerText(), /StopPodSandbox#\d+/, 'the stop effect is credited to the CRI call that asked for it');
  assert.match(await page.locator('#actor-state').innerText(), /^STOPPED$/);
  assert.match(await page.locator('#why-summary').innerText(), /^NotReady since .* UTC: stopped by StopPodSandbox \(call #\d+\)$/, 'why it is NotReady, on top');
  assert.equal(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded), true, 'updated without a reload');
  assert.match(await pod.innerText(), /STOPPED/, 'the tree follows too');
  // The stop's timeline across actors, the slowest step marked; a history row lights its edge.
  await page.locator('#history a.call', { hasText: /^StopPodSandbox#/ }).first().click();
  await page.locator('#timeline-steps tr.slow').waitFor({ timeout: 5_000 });
  assert.ok((await page.locator('#timeline-steps tr').count()) >= 3, 'a header and the stop\'s steps');
  await page.locator('#history tr', { hasText: 'stopSandbox.done' }).locator('td').first().click();
  assert.equal(await page.locator('.edge-group.taken[data-edge="STOPPING.pause>STOPPED"]').count(), 1, 'the edge that row took');
  await page.screenshot({ path: join(ARTIFACTS, 'inspector-stopped.png'), fullPage: true });
  await page.locator('#why').screenshot({ path: join(ARTIFACTS, 'inspector-why.png') });
  await page.locator('#timeline').screenshot({ path: join(ARTIFACTS, 'inspector-timeline.png') });
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
});

test('a deep link opens its actor; search by name or id prefix and the last-error filter narrow the tree', async () => {
  const { podSandboxId: a } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('found-alpha') });
  const { podSandboxId: b } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('found-beta') });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${daemon.inspectorPort}/#/pod/${b}`);
  await page.locator('#actor-title', { hasText: b.slice(0, 13) }).waitFor({ timeout: 10_000 });
  assert.match(await page.locator('#why-summary').innerText(), /^Ready since/);
  assert.equal(await page.locator(`li.actor.selected[data-id="${b}"]`).count(), 1, 'the linked actor is the selected one');
  const shown = (id: string) => page.locator(`#tree li.actor[data-id="${id}"]`).count();
  await page.fill('#f-search', 'alpha');
  assert.equal(await shown(a), 1);
  assert.equal(await shown(b), 0, 'by name');
  await page.fill('#f-search', b.slice(0, 10));
  assert.equal(await shown(a), 0);
  assert.equal(await shown(b), 1, 'by id prefix');
  await page.fill('#f-search', '');
  await page.check('#f-error');
  assert.equal(await shown(a) + await shown(b), 0, 'neither has a last error');
  await page.uncheck('#f-error');
  // Clicking another actor moves the URL to it.
  await page.locator(`#tree li.actor[data-id="${a}"]`).click();
  await page.locator('#actor-title', { hasText: a.slice(0, 13) }).waitFor({ timeout: 5_000 });
  assert.equal(new URL(page.url()).hash, `#/pod/${a}`);
  await page.screenshot({ path: join(ARTIFACTS, 'inspector-search.png'), fullPage: true });
  for (const id of [a, b]) await daemon.cri.call('RemovePodSandbox', { podSandboxId: id });
});

test('every machine\'s chart, laid out by ELK in the page: no label overlaps another or a state, nothing clipped', async () => {
  for (const kind of ['sandbox', 'container', 'supervisor']) {
    // A page of its own per chart (a hash change would leave the last chart up a moment), tall
    // enough for the whole chart in its screenshot.
    const page = await browser.newPage({ viewport: { width: 1800, height: 2400 } });
    await page.goto(`http://127.0.0.1:${daemon.inspectorPort}/#/chart/${kind}`);
    await page.locator('#chart g.node').first().waitFor({ timeout: 15_000 });
    // The boxes as drawn: state rectangles, compound states with their title band, and each edge
    // label's rendered text (getBBox, so the font the browser really used).
    const drawn = await page.evaluate<DrawnChart>(READ_CHART_BOXES);
    const boxes = drawn.boxes;
    const chart = await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/charts/${kind}`)).json() as { states: unknown[]; transitions: { from: string; to: string }[] };
    assert.equal(boxes.filter((b) => b.kind !== 'label').length, chart.states.length, `${kind}: every state is drawn`);
    const pairs = new Set(chart.transitions.filter((t) => t.from !== t.to && t.from !== '(root)').map((t) => `${t.from}>${t.to}`));
    assert.equal(drawn.edges, pairs.size, `${kind}: one edge per pair of states`);
    assert.equal(boxes.filter((b) => b.kind === 'label').length, drawn.edges, `${kind}: every edge has its label`);
    assert.deepEqual(layoutProblems(boxes), [], `${kind}: overlaps`);
    assert.deepEqual(drawn.clipped, [], `${kind}: text outside its state`);
    const outside = boxes.filter((b) => b.x < 0 || b.y < 0 || b.x + b.width > drawn.width || b.y + b.height > drawn.height);
    assert.deepEqual(outside, [], `${kind}: everything inside the drawing`);
    if (kind === 'supervisor') assert.equal(await page.locator('#chart g.node.current[data-state="SERVING"]').count(), 1, 'the daemon\'s own state lit');
    await page.locator('#chart').screenshot({ path: join(ARTIFACTS, `chart-${kind}.png`) });
    await page.close();
  }
});

test('with the network blocked except loopback, the page asks nothing of it and draws everything', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('offline') });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const offLoopback: string[] = [];
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]') return route.continue();
    offLoopback.push(route.request().url());
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${daemon.inspectorPort}/#/pod/${podSandboxId}`);
  await page.locator('g.node.current[data-state="RUNNING"]').waitFor({ timeout: 15_000 });
  assert.match(await page.locator('#why-summary').innerText(), /^Ready since/);
  await page.click('#restore-link');
  await page.locator('#restore-title').waitFor({ timeout: 5_000 });
  assert.deepEqual(offLoopback, [], 'no request left loopback');
  await context.close();
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
});

test('a quarantined row is shown with its reason, and its pod is no actor', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('to-quarantine') });
  const { podSandboxId: kept } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('restored-beside') });
  await daemon.stop();
  // The row, as a crash mid-write or a bad upgrade might leave it: its pid is no number.
  const db = new BetterSqlite3(join(daemon.paths.root, 'podchart.db'));
  try {
    const row = db.prepare('SELECT context FROM sandboxes WHERE id = ?').get(podSandboxId) as { context: string };
    db.prepare('UPDATE sandboxes SET context = ? WHERE id = ?').run(JSON.stringify({ ...(JSON.parse(row.context) as object), pid: 'x' }), podSandboxId);
  } finally {
    db.close();
  }
  await daemon.start();
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`http://127.0.0.1:${daemon.inspectorPort}/`);
  const entry = page.locator(`#quarantine tr[data-id="${podSandboxId}"]`);
  await entry.waitFor({ timeout: 10_000 });
  assert.match(await entry.innerText(), /sandbox\s+[0-9a-f]{13}\s+RUNNING\s+.*pid: Expected number, received string/);
  assert.equal(await page.locator(`li.actor[data-id="${podSandboxId}"]`).count(), 0, 'not in the tree');
  // The restart's restore, as a table: the quarantined pod is not among its actors.
  await page.click('#restore-link');
  await page.locator('#restore-title').waitFor({ timeout: 5_000 });
  assert.match(await page.locator('#restore-title').innerText(), /^Last restore: .*, \d+ actors, \d+ ms$/);
  assert.equal(await page.locator(`#restore tr[data-id="${podSandboxId}"]`).count(), 0, 'a quarantined row is not restored');
  assert.match(await page.locator(`#restore tr[data-id="${kept}"]`).innerText(), /sandbox\s+[0-9a-f]{13}\s+RUNNING\s+.*READY\s+RUNNING\s+.*namespaces are still mounted/, 'the pod beside it is restored, with why');
  await page.screenshot({ path: join(ARTIFACTS, 'inspector-quarantine.png'), fullPage: true });
  await page.locator('#restore').screenshot({ path: join(ARTIFACTS, 'inspector-restore.png') });
  // Before the cleanup by hand below, which kills every process of this daemon's paths: the
  // removal answered, and its host cleanup (the netns unmount, done after the reply) finished.
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: kept });
  await eventually('the removed pod\'s host cleanup to finish', async () => {
    const left = await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/cleanup`)).json() as unknown[];
    return left.length === 0;
  });
  // Its pause process, netns and mounts are left as they were (the row that names them is out of
  // reach): taken down here by hand, as an operator would.
  const forced = forceCleanup(daemon.paths, new Set([podSandboxId]));
  assert.ok(forced.length > 0, 'the quarantined pod had left its processes and mounts for the operator');
});
