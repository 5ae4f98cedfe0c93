// take.mjs takes the Temporal Web UI screenshots in docs/ from a running
// `go run ./worker dev`. It publishes nothing: publish a few events first
// (README, "Start here"), then run, from the repository root,
//
//	npm ci --prefix docs/screenshot && node docs/screenshot/take.mjs
//
// It asks the HTTP API for the demo account's /flaky subscription and its
// newest delivery (waiting up to WAIT_SECONDS for it to finish: /flaky
// answers 503 twice, so it ends delivered on attempt 3), and shoots, from
// the Web UI, with payloads decrypted by the dev command's codec server:
//
//	webui-deliveries.png      the workflow list filtered to the newest events,
//	                          userhooks' search attributes as columns (Temporal
//	                          UI 2.42.1 has no Summary column: visibility does
//	                          not return summaries)
//	webui-event.png           the newest event's User Metadata tab: its summary,
//	                          current details, and one line per delivery (the
//	                          children's summaries)
//	webui-delivery.png        its /flaky delivery's User Metadata tab: summary,
//	                          current details, and each attempt's and retry
//	                          timer's summary
//	webui-attempts.png        that delivery's history: timeline and attempts,
//	                          one Local Activity row (a LocalActivity marker)
//	                          per attempt, summarised "attempt N", and a
//	                          timer row after each failed one, whose summary
//	                          says how it failed
//	webui-attempt-failure.png its first attempt expanded: the marker's decrypted
//	                          details and its failure (message, error class and
//	                          the decrypted attempt record)
//
// It drives Debian's Chromium (apt-get install chromium) with playwright-core
// and downloads no browser. It exits non-zero, without writing that page's
// shot, when a page lacks what it should show (nothing published, a
// delivery still running, payloads left encrypted: blocking the codec
// server's address makes it stop at the first summary).
//
// Environment:
//
//	UI_URL        the Web UI (default http://127.0.0.1:8233)
//	API_URL       userhooks' HTTP API (default http://127.0.0.1:8000)
//	API_KEY_FILE  its key (default .userhooks/api-key in the repository)
//	NAMESPACE     the namespace (default default)
//	CHROMIUM      the browser (default /usr/bin/chromium)
//	OUT_DIR       where the PNGs go (default docs/)
//	WAIT_SECONDS  how long to wait for the delivery to finish (default 60)
//	LIST_EVENTS   how many of the newest events the workflow list shows (default 2)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const ui = (process.env.UI_URL ?? 'http://127.0.0.1:8233').replace(/\/+$/, '');
const api = (process.env.API_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, '');
const keyFile = process.env.API_KEY_FILE ?? path.join(repo, '.userhooks', 'api-key');
const ns = process.env.NAMESPACE ?? 'default';
const outDir = path.resolve(process.env.OUT_DIR ?? path.join(repo, 'docs'));
const waitSeconds = Number(process.env.WAIT_SECONDS ?? 60);
const listEvents = Number(process.env.LIST_EVENTS ?? 2);
const viewport = { width: 1400, height: 900 };
const listWidth = 1720;
const metadataHeight = 1040; // room for a delivery's attempts and timers under Events with Metadata
const failureHeight = 1200; // room for an expanded marker: its details and its whole failure
const sidebarWidth = 64; // the UI's navigation bar, left out of shots taken mid-page

// The columns of the workflow list: what a reader of the delivery log wants
// at a glance. Run ID, type (the workflow ID's prefix says it) and times
// make way for userhooks' search attributes, placed before the long
// workflow ID so that they fit the width.
const attr = { eventID: 'UserhooksEventID' };
const columns = {
  remove: ['Run ID', 'Type', 'Start', 'End'],
  add: ['UserhooksEventType', 'UserhooksUserID', 'UserhooksDeliveryStatus', 'UserhooksAttempts'],
};

const { delivery, recentEvents } = await newestFlakyDelivery();
console.log(`delivery ${delivery.workflow_id} (run ${delivery.run_id}): ${delivery.status} after ${delivery.attempts} attempts`);

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'userhooks-shot-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // The machine's network is closed: keep Chromium from calling home.
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport,
  timezoneId: 'UTC',
  colorScheme: 'light',
});
context.setDefaultTimeout(20_000);

try {
  const page = context.pages()[0] ?? (await context.newPage());
  await workflowList(page, delivery, recentEvents);
  await eventMetadata(page, delivery);
  await deliveryMetadata(page, delivery);
  await attempts(page, delivery);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

// newestFlakyDelivery returns the newest delivery of the demo account's
// /flaky subscription, as GET /v1/deliveries describes it, once it has
// finished, and the IDs of the newest LIST_EVENTS events delivered to
// /flaky (the list is newest first).
async function newestFlakyDelivery() {
  const key = fs.readFileSync(keyFile, 'utf8').trim();
  const get = async (p) => {
    const res = await fetch(api + p, { headers: { Authorization: `Bearer ${key}` } });
    if (!res.ok) throw new Error(`GET ${api}${p}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const { subscriptions } = await get('/v1/subscriptions');
  const flaky = subscriptions.find((s) => new URL(s.url).pathname === '/flaky');
  if (!flaky) throw new Error('no /flaky subscription: is this `go run ./worker dev`?');
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const { deliveries } = await get(`/v1/deliveries?subscription_id=${flaky.id}&limit=${listEvents}`);
    const d = deliveries[0];
    if (!d) throw new Error('no delivery to /flaky yet: publish an event first (README, "Start here")');
    if (!['pending', 'retrying'].includes(d.status)) {
      if (d.status !== 'delivered' || d.attempts < 2) {
        throw new Error(`${d.workflow_id} ended ${d.status} after ${d.attempts} attempt(s), not delivered after failures`);
      }
      return { delivery: d, recentEvents: [...new Set(deliveries.map((x) => x.event_id))] };
    }
    if (Date.now() > deadline) throw new Error(`${d.workflow_id} still ${d.status} after ${waitSeconds}s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// workflowList shoots the namespace's workflow list filtered to the given
// events (the event workflows and their deliveries), with the saved views
// panel collapsed and userhooks' search attributes as columns. The UI keeps
// the columns in the browser's local storage; the profile is new on every
// run, so they are set here as a user would, with the table's gear button.
async function workflowList(page, d, eventIDs) {
  // Wider than the other shots, so that delivery IDs fit in their column.
  await page.setViewportSize({ width: listWidth, height: viewport.height });
  const query = `${attr.eventID} IN (${eventIDs.map((id) => `'${id}'`).join(', ')})`;
  await page.goto(`${ui}/namespaces/${encodeURIComponent(ns)}/workflows?query=${encodeURIComponent(query)}`,
    { waitUntil: 'networkidle' });
  await page.getByRole('button', { name: 'Collapse saved views' }).click();
  await page.getByTestId('workflows-summary-table-configuration-button').click();
  for (const name of columns.remove) {
    await page.getByTestId(`orderable-list-item-${name}-remove-button`).click();
  }
  for (const name of columns.add) {
    await page.getByTestId(`orderable-list-item-${name}-add-button`).click();
    await page.getByTestId(`orderable-list-item-${name}-move-up-button`).click(); // above Workflow ID
  }
  await page.getByRole('button', { name: 'Close Workflows Table configuration' }).click();
  await page.getByRole('heading', { name: 'Configure Workflows Table' }).waitFor({ state: 'hidden' });
  await page.locator(`a[href*="${encodeURIComponent(d.workflow_id)}"]`).first().waitFor();
  await page.locator(`a[href*="${encodeURIComponent(`event/${d.event_id}`)}"]`).first().waitFor();
  await page.mouse.move(0, viewport.height - 1); // no hover highlight
  const pages = await page.getByText(/^1–\d+ of \d+$/).first().boundingBox(); // below the last row
  await shoot(page, 'webui-deliveries.png', { bottom: pages.y + pages.height + 48 });
  await page.setViewportSize(viewport);
}

// eventMetadata shoots the User Metadata tab of the delivery's event: the
// event's summary and current details, and under "Events with Metadata"
// one row per delivery with the child's summary and status.
async function eventMetadata(page, d) {
  await page.goto(`${ui}/namespaces/${encodeURIComponent(ns)}/workflows/${encodeURIComponent(`event/${d.event_id}`)}`,
    { waitUntil: 'networkidle' });
  await page.getByRole('tab', { name: 'User Metadata' }).click();
  await decoded(page, `${d.event_type} ${d.user_id} (account ${d.account_id})`);
  await decoded(page, /\d+ subscription\(s\): \d+ delivered/);
  await decoded(page, `${d.event_type} ${d.user_id} → ${d.endpoint}`);
  await shoot(page, 'webui-event.png', { bottom: await contentBottom(page) });
}

// deliveryMetadata shoots the delivery's User Metadata tab: its summary
// (event type, user, endpoint), current details (the outcome) and, under
// "Events with Metadata", one row per attempt ("attempt N") and per retry
// timer (why it waits), down to the last attempt.
async function deliveryMetadata(page, d) {
  await page.setViewportSize({ width: viewport.width, height: metadataHeight });
  await page.goto(`${runURL(d)}/user-metadata`, { waitUntil: 'networkidle' });
  await decoded(page, `${d.event_type} ${d.user_id} → ${d.endpoint}`);
  await decoded(page, `Delivered on attempt ${d.attempts}`);
  await decoded(page, /Attempt 1 failed: HTTP 503 .*Next attempt \(2 of \d+\) at /);
  const last = page.getByText(`attempt ${d.attempts}`, { exact: true });
  await last.waitFor().catch(() => {
    throw new Error(`${page.url()} lists no "attempt ${d.attempts}" under Events with Metadata`);
  });
  const bottom = await contentBottom(page);
  const box = await last.boundingBox();
  if (box.y + box.height > bottom) throw new Error(`webui-delivery.png: "attempt ${d.attempts}" falls below the shot; raise metadataHeight`);
  await page.mouse.move(0, metadataHeight - 1);
  await shoot(page, 'webui-delivery.png', { bottom });
  await page.setViewportSize(viewport);
}

// attempts shoots the delivery's history: the timeline with the compact
// view (one row per attempt and per timer), oldest first, then its first
// attempt expanded. Attempts run as local activities, so each is one
// MarkerRecorded event, which the UI labels Local Activity; its row names
// the activity type and the summary "attempt N", both from encrypted
// payloads, but not its outcome: Temporal UI 2.42.1 draws a failed local
// activity like a successful one. What shows a failure at a glance is the
// retry timer after it, whose (encrypted) summary starts "Attempt N
// failed: <error>".
async function attempts(page, d) {
  await page.goto(`${runURL(d)}/history`, { waitUntil: 'networkidle' });
  const heading = page.getByRole('heading', { name: 'Event History' });
  await heading.waitFor();
  await page.getByText('Compact', { exact: true }).first().click();
  await page.getByRole('button', { name: 'Descending' }).click(); // oldest attempt first
  const summaryRows = page.getByTestId('event-summary-row');
  const rows = summaryRows.filter({ hasText: 'Local Activity' }).filter({ hasText: 'Deliver' });
  const first = rows.first();
  await first.waitFor().catch(() => {
    throw new Error(`${page.url()} shows no Deliver attempt: payloads not decoded by the codec server?`);
  });
  if ((await rows.count()) !== d.attempts) {
    throw new Error(`${d.workflow_id} shows ${await rows.count()} Deliver attempt(s), the API ${d.attempts}`);
  }
  for (let n = 1; n <= d.attempts; n++) {
    const text = (await rows.nth(n - 1).innerText()).replace(/\s+/g, ' ');
    if (!text.includes(`Summary attempt ${n}`)) {
      throw new Error(`${d.workflow_id}: Deliver row ${n} lacks the summary "attempt ${n}": ${text}`);
    }
  }
  // Every attempt but the last failed (the delivery ended delivered), so
  // each but the last is followed by a timer whose summary says how.
  const timers = summaryRows.filter({ hasText: 'Timer' }).filter({ hasText: /Attempt \d+ failed: / });
  if ((await timers.count()) !== d.attempts - 1) {
    throw new Error(`${d.workflow_id} shows ${await timers.count()} retry timer(s) saying why they wait, not ${d.attempts - 1}: summaries not decoded?`);
  }
  await timers.first().getByText(/^Attempt 1 failed: HTTP 503 .*Next attempt \(2 of \d+\) at /).waitFor().catch(() => {
    throw new Error(`${d.workflow_id} shows no failed first attempt in its first timer's summary`);
  });
  await heading.evaluate((e) => e.scrollIntoView({ block: 'start' }));
  await scrollMainBy(page, -24); // clear of the page's top bar when the history is too short to scroll
  await page.mouse.move(0, viewport.height - 1);
  await shoot(page, 'webui-attempts.png',
    { left: sidebarWidth, top: (await heading.boundingBox()).y - 6, bottom: await contentBottom(page) });

  // Expand the first attempt and show its marker: the details the SDK
  // records (activity type, attempt) and the failure: message, error class
  // and, in the failure details, the attempt record (status code, duration,
  // response excerpt). Details and failure details are encrypted in
  // history (the message is not), so the attempt record in clear is the
  // proof that the codec server decoded them.
  await page.setViewportSize({ width: viewport.width, height: failureHeight });
  await first.click();
  const expanded = page.getByTestId('event-summary-row-expanded').first();
  await expanded.waitFor();
  await expanded.getByText('Failure', { exact: true }).waitFor().catch(() => {
    throw new Error(`${d.workflow_id} shows no failed first attempt`);
  });
  await decoded(page, '"ActivityType": "Deliver"');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = (await expanded.innerText()).replace(/\s+/g, ' ');
    const want = [
      '"message": "attempt 1: HTTP 503 ', '"type": "ServerError"', // in clear in history
      '"attempt": 1,', '"status_code": 503,', '"error_class": "ServerError",', '"response_excerpt": "', // decrypted
    ];
    const missing = want.filter((w) => !text.includes(w));
    if (missing.length === 0) break;
    if (Date.now() > deadline) {
      const encrypted = text.includes(btoa('binary/encrypted')) ? ' (its failure details are still encrypted: not decoded by the codec server?)' : '';
      throw new Error(`${d.workflow_id}: its first attempt's failure lacks ${missing.map((w) => `[${w}]`).join(' ')}${encrypted}`);
    }
    await page.waitForTimeout(250);
  }
  const header = page.getByText('Event ID', { exact: true }).first(); // the table's sticky header
  await first.evaluate((e) => e.scrollIntoView({ block: 'start' }));
  const below = await header.boundingBox();
  await scrollMainBy(page, (await first.boundingBox()).y - (below.y + below.height) - 8); // the row just below it
  await page.mouse.move(0, failureHeight - 1);
  await shoot(page, 'webui-attempt-failure.png',
    { left: sidebarWidth, top: (await header.boundingBox()).y - 12, bottom: await contentBottom(page) });
  await page.setViewportSize(viewport);
}

function runURL(d) {
  return `${ui}/namespaces/${encodeURIComponent(ns)}/workflows/${encodeURIComponent(d.workflow_id)}/${d.run_id}`;
}

// decoded waits for text that only a decrypted payload holds (summaries,
// details and failure details are encrypted in history). The UI renders
// summaries and details as Markdown in iframes, so every frame is searched.
async function decoded(page, text) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (const frame of page.frames()) {
      const body = await frame.locator('body').innerText().catch(() => '');
      if (typeof text === 'string' ? body.includes(text) : text.test(body)) return;
    }
    if (Date.now() > deadline) {
      throw new Error(`${page.url()} does not show ${text}: payloads not decoded by the codec server?`);
    }
    await page.waitForTimeout(250);
  }
}

// contentBottom is the bottom of the lowest text, frame or control in the
// viewport, so that a short page is shot without blank space below it.
// Fixed elements (the scroll buttons) do not count.
async function contentBottom(page) {
  const bottom = await page.evaluate(() => {
    const fixed = (el) => {
      for (; el; el = el.parentElement) if (getComputedStyle(el).position === 'fixed') return true;
      return false;
    };
    const content = (el) => ['IFRAME', 'IMG', 'svg', 'INPUT', 'SELECT', 'BUTTON'].includes(el.tagName)
      || [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '');
    let max = 0;
    for (const el of document.querySelectorAll('main *')) {
      const r = el.getBoundingClientRect();
      if (r.height > 0 && r.top < window.innerHeight && content(el) && !fixed(el)) max = Math.max(max, r.bottom);
    }
    return max;
  });
  return Math.min(page.viewportSize().height, Math.ceil(bottom) + 16);
}

// scrollMainBy scrolls the UI's scrolling container (not the document,
// which does not scroll) by dy pixels.
async function scrollMainBy(page, dy) {
  await page.evaluate((dy) => {
    let el = document.querySelector('main') ?? document.scrollingElement;
    while (el && el.scrollHeight <= el.clientHeight && el.parentElement) el = el.parentElement;
    (el ?? document.scrollingElement).scrollBy(0, dy);
  }, dy);
}

// shoot writes the part of the viewport between top and bottom, from left
// to the right edge, to OUT_DIR/name. The UI's floating scroll buttons are
// hidden first: they would cover the content under them.
async function shoot(page, name, { left = 0, top = 0, bottom = viewport.height } = {}) {
  await page.addStyleTag({ content: '#scroll-container { visibility: hidden !important; }' });
  await page.waitForTimeout(300); // let scrolling and rendering settle
  const file = path.join(outDir, name);
  top = Math.max(0, Math.floor(top));
  bottom = Math.min(page.viewportSize().height, Math.ceil(bottom));
  const { width } = page.viewportSize();
  await page.screenshot({ path: file, clip: { x: left, y: top, width: width - left, height: bottom - top } });
  console.log('wrote', path.relative(process.cwd(), file));
}
