/*
 * run.mjs - the dashboard in a real headless Chromium against a real
 * pipewright server (tests/browser.sh starts it). Environment:
 *   PW_URL        the server, e.g. http://127.0.0.1:18700
 *   PW_URL_ROLES  a second one whose project has settings.roles
 *   PW_PROJECT    its project folder (the test creates gate files there)
 *   PW_CHROMIUM   the browser binary
 *   PW_ARTIFACTS  where screenshots go
 * Prints "ok - NAME" / "not ok - NAME" per check and a last line
 * "browser: N passed, N failed"; exits 1 when a check failed. Every wait
 * is bounded; nothing is asserted about how long anything takes.
 */
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';

const base = process.env.PW_URL;
const project = process.env.PW_PROJECT;
const artifacts = process.env.PW_ARTIFACTS;
const origins = [new URL(base).origin, new URL(process.env.PW_URL_ROLES).origin];
const WAIT = 30000;   /* the bound of every wait, ms */

let passed = 0, failed = 0, skipped = 0;

/*
 * Whether the server offers a route (DESIGN.md section 5 rows that come
 * with the operations branch): a 404 "no such resource" or a 405 means it
 * does not. fn gets nothing and answers a Response.
 */
async function offered(fn) {
	const res = await fn();
	if (res.status === 405)
		return false;
	if (res.status !== 404)
		return true;
	const body = await res.json().catch(() => ({}));
	return !/^no such resource/.test(body?.error?.message || '');
}

/* check(), or a visible TAP skip when the server lacks the route. */
async function checkIf(route, name, fn) {
	if (!route) {
		skipped++;
		console.log(`ok - ${name} # SKIP the server does not offer this operation yet`);
		return;
	}
	await check(name, fn);
}

async function check(name, fn) {
	try {
		await fn();
		passed++;
		console.log(`ok - ${name}`);
	} catch (e) {
		failed++;
		console.log(`not ok - ${name}`);
		console.log(String(e && e.stack || e).replace(/^/gm, '# '));
		await shot(page, 'failed-' + name.replace(/[^a-z0-9]+/gi, '-')).catch(() => {});
	}
}

async function api(rel, init = {}) {
	const res = await fetch(base + '/api/v1/' + rel, {...init,
		headers: {'Content-Type': 'application/json', ...(init.headers || {})}});
	const body = await res.json();
	if (!res.ok)
		throw new Error(`${init.method || 'GET'} ${rel}: ${res.status} ${JSON.stringify(body)}`);
	return body;
}

/* Retries fn until it returns a truthy value; throws after WAIT ms. */
async function until(what, fn) {
	const end = Date.now() + WAIT;
	for (;;) {
		const v = await fn().catch(() => null);
		if (v)
			return v;
		if (Date.now() > end)
			throw new Error('gave up waiting for ' + what);
		await new Promise((r) => setTimeout(r, 100));
	}
}

function gate(name) {
	fs.writeFileSync(path.join(project, 'gates', name), '');
}

async function shot(p, name) {
	await p.screenshot({path: path.join(artifacts, name + '.png'), fullPage: true});
}

/* Every element naming a DAG, run or task instance also carries data-state. */
async function hooksComplete() {
	const bad = await page.$$eval('[data-dag-id], [data-run-id], [data-task-id]', (els) =>
		els.filter((e) => !e.dataset.state).map((e) => e.outerHTML.slice(0, 120)));
	assert.deepEqual(bad, [], 'elements without data-state');
}

const sel = (s) => page.waitForSelector(s, {timeout: WAIT});
const textIn = (s, text) => page.waitForFunction((s, t) =>
	document.querySelector(s)?.textContent.includes(t), {timeout: WAIT}, s, text);

const browser = await puppeteer.launch({
	executablePath: process.env.PW_CHROMIUM,
	headless: true,
	args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run',
		'--disable-background-networking', '--disable-component-update',
		'--disable-default-apps', '--disable-sync'],
});
const page = await browser.newPage();
await page.setViewport({width: 1280, height: 860});
const requests = [];
const pageErrors = [];
page.on('request', (r) => requests.push({url: r.url(), method: r.method()}));
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('dialog', (d) => d.accept());

try {
	await check('/ui/ lists every DAG with data-dag-id, data-paused and data-state', async () => {
		await page.goto(base + '/ui/', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id]');
		const want = (await api('dags')).data.map((d) => d.dag_id).sort();
		const got = await page.$$eval('tr[data-dag-id]', (rows) => rows.map((r) =>
			[r.dataset.dagId, r.dataset.paused, r.dataset.state]));
		assert.deepEqual(got.map((g) => g[0]).sort(), want);
		for (const [, paused, state] of got) {
			assert.match(paused, /^(true|false)$/);
			assert.ok(state, 'data-state is set');
		}
		await hooksComplete();
		await shot(page, 'dags');
	});

	await check('pausing and unpausing from the page changes GET /api/v1/dags/:id', async () => {
		await page.click('tr[data-dag-id="hello"] [data-action="pause"]');
		await until('hello paused', async () => (await api('dags/hello')).data.is_paused === true);
		await sel('tr[data-dag-id="hello"][data-paused="true"] [data-action="unpause"]');
		await page.click('tr[data-dag-id="hello"] [data-action="unpause"]');
		await until('hello unpaused', async () => (await api('dags/hello')).data.is_paused === false);
		await sel('tr[data-dag-id="hello"][data-paused="false"]');
	});

	const conf = {who: 'the browser', n: [1, 2], nested: {ok: true}};
	await check('the trigger form creates the run with its conf', async () => {
		await page.goto(base + '/ui/#/dags/gated', {waitUntil: 'domcontentloaded'});
		await sel('form[data-action="trigger"] textarea[name="conf"]');
		await page.type('form[data-action="trigger"] input[name="run_id"]', 'ui-form-1');
		await page.$eval('form[data-action="trigger"] textarea[name="conf"]', (el, v) => {
			el.value = v;
		}, JSON.stringify(conf));
		await page.click('form[data-action="trigger"] button[type="submit"]');
		await sel('a.new-run[data-run-id="ui-form-1"]');
		const run = (await api('dags/gated/runs/ui-form-1')).data;
		assert.deepEqual(run.conf, conf);
		await sel('.grid [data-run-id="ui-form-1"][data-task-id="first"]');
	});

	await check('the run page shows each task go running -> success without a reload', async () => {
		await page.evaluate(() => {
			window.__sameDocument = true;
		});
		await page.click('a.new-run[data-run-id="ui-form-1"]');
		await sel('section.run[data-run-id="ui-form-1"] ~ section tr[data-task-id="second"]');
		const from = requests.length;
		await page.evaluate(() => {
			const seen = window.__seen = {};
			for (const tr of document.querySelectorAll('tr[data-task-id]')) {
				seen[tr.dataset.taskId] = [tr.dataset.state];
				new MutationObserver(() => {
					const s = seen[tr.dataset.taskId];
					if (s[s.length - 1] !== tr.dataset.state)
						s.push(tr.dataset.state);
				}).observe(tr, {attributes: true, attributeFilter: ['data-state']});
			}
		});
		await sel('tr[data-task-id="first"][data-state="running"]');
		gate('ui-form-1.first.half');
		gate('ui-form-1.first');
		await sel('tr[data-task-id="first"][data-state="success"]');
		await sel('tr[data-task-id="second"][data-state="running"]');
		await shot(page, 'run-running');
		gate('ui-form-1.second');
		await sel('section.run[data-run-id="ui-form-1"][data-state="success"]');
		await sel('tr[data-task-id="second"][data-state="success"]');
		const seen = await page.evaluate(() => window.__seen);
		for (const t of ['first', 'second']) {
			const i = seen[t].indexOf('running');
			assert.ok(i >= 0 && seen[t].indexOf('success') > i, `${t}: ${seen[t].join(' -> ')}`);
		}
		assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
		const polled = requests.slice(from).filter((r) => /\/api\/v1\/dags\/[^/]+\/runs\//.test(r.url));
		assert.deepEqual(polled, [], 'no GET of run or task endpoints while the stream is open');
		await hooksComplete();
		await shot(page, 'run');
	});

	await check('the task log shows lines written while the task runs', async () => {
		await api('dags/gated/runs', {method: 'POST', body: JSON.stringify({run_id: 'ui-log-1'})});
		await page.goto(base + '/ui/#/dags/gated/runs/ui-log-1/tasks/first',
			{waitUntil: 'domcontentloaded'});
		await sel('section.task[data-task-id="first"][data-state="running"]');
		await textIn('[data-log]', 'first: started');
		gate('ui-log-1.first.half');
		await textIn('[data-log]', 'first: halfway');
		/*
		 * The log is one long request (?follow=true), not polled: in 3 s of
		 * the task running, at most one more GET of /logs (a reconnect when
		 * the server's bound ends the answer), where polling makes one a second.
		 */
		const logGets = () => requests.filter((r) => r.method === 'GET' &&
			/\/runs\/ui-log-1\/tasks\/first\/logs/.test(r.url));
		const before = logGets().length;
		await new Promise((r) => setTimeout(r, 3000));
		const during = logGets().slice(before);
		assert.ok(during.length <= 1, `GETs of /logs while the task runs: ${during.length}`);
		assert.ok(logGets().every((r) => /[?&]follow=true/.test(r.url)), 'every log read follows');
		/* the task cannot end before its second gate: it is still running */
		await sel('section.task[data-task-id="first"][data-state="running"]');
		await shot(page, 'task-running');
		gate('ui-log-1.first');
		await sel('section.task[data-task-id="first"][data-state="success"]');
		await textIn('[data-log]', 'first: done');
		gate('ui-log-1.second');
		await until('ui-log-1 success', async () =>
			(await api('dags/gated/runs/ui-log-1')).data.state === 'success');
		await hooksComplete();
		await shot(page, 'task');
	});

	await check('a failed task\'s log is shown; retry from the page makes the run succeed', async () => {
		fs.rmSync(path.join(project, 'ready'), {force: true});
		await api('dags/flaky/runs', {method: 'POST', body: JSON.stringify({run_id: 'ui-flaky-1'})});
		await page.goto(base + '/ui/#/dags/flaky/runs/ui-flaky-1', {waitUntil: 'domcontentloaded'});
		await sel('section.run[data-run-id="ui-flaky-1"][data-state="failed"]');
		await sel('tr[data-task-id="check"][data-state="failed"]');
		await textIn('pre[data-log][data-task-id="check"]', 'the file ready is missing');
		await shot(page, 'run-failed');
		await page.click('tr[data-task-id="check"] a');
		await sel('section.task[data-task-id="check"][data-state="failed"]');
		await textIn('[data-log]', 'the file ready is missing');
		fs.writeFileSync(path.join(project, 'ready'), '');
		await page.evaluate(() => {
			window.__sameDocument = true;
		});
		await page.click('.crumbs a[href$="/runs/ui-flaky-1"]');
		await sel('section.run[data-run-id="ui-flaky-1"] [data-action="retry"]');
		await page.click('section.run[data-run-id="ui-flaky-1"] [data-action="retry"]');
		await sel('section.run[data-run-id="ui-flaky-1"][data-state="success"]');
		await sel('tr[data-task-id="after"][data-state="success"]');
		assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
		assert.equal((await api('dags/flaky/runs/ui-flaky-1')).data.state, 'success');
	});

	await check('the DAG page shows the grid and the runs list with data-* hooks', async () => {
		await page.goto(base + '/ui/#/dags/gated', {waitUntil: 'domcontentloaded'});
		await sel('table.runs tr[data-run-id="ui-form-1"][data-state="success"]');
		await sel('.grid [data-run-id="ui-log-1"][data-task-id="second"][data-state="success"]');
		await page.waitForNetworkIdle({idleTime: 300, timeout: WAIT}).catch(() => {});
		await hooksComplete();
		await shot(page, 'dag');
	});

	const hasGraph = await offered(() => fetch(base + '/api/v1/dags/gated/graph'));
	await checkIf(hasGraph, 'the graph is the API\'s SVG with nodes coloured by the selected run', async () => {
		await sel('.graph svg g[data-task-id="first"][data-run-id="ui-log-1"][data-state="success"]');
		await sel('.graph svg g[data-task-id="second"][data-state="success"]');
		/* selecting the older run in the grid recolours from its states */
		await page.click('table.grid th[data-col="ui-form-1"]');
		await sel('.graph svg g[data-task-id="first"][data-run-id="ui-form-1"]');
	});

	const hasSource = await offered(() => fetch(base + '/api/v1/dags/gated/source'));
	await checkIf(hasSource, 'the DAG page shows the DAG file\'s source', async () => {
		await page.click('details.source-box > summary');
		await textIn('pre.source', 'gates/$PIPEWRIGHT_RUN_ID.first.half');
	});

	const hasClear = await offered(() => fetch(base + '/api/v1/dags/gated/runs/ui-form-1/clear', {
		method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{"dry_run": true}'}));
	await checkIf(hasClear, 'clear from the run page runs the tasks again; mark sets a task\'s state', async () => {
		await page.goto(base + '/ui/#/dags/gated/runs/ui-form-1', {waitUntil: 'domcontentloaded'});
		await sel('section.run[data-run-id="ui-form-1"][data-state="success"] [data-action="clear"]');
		await page.click('section.run [data-action="clear"]');
		/* the gates are still there: both tasks run again at once */
		await until('a second try of first', async () =>
			(await api('dags/gated/runs/ui-form-1/tasks/first')).data.try_number === 2);
		await until('run success again', async () =>
			(await api('dags/gated/runs/ui-form-1')).data.state === 'success');
		await sel('section.run[data-run-id="ui-form-1"][data-state="success"]');
		await sel('tr[data-task-id="second"][data-state="success"] [data-action="mark-failed"]');
		await page.click('tr[data-task-id="second"] [data-action="mark-failed"]');
		await sel('tr[data-task-id="second"][data-state="failed"]');
		assert.equal((await api('dags/gated/runs/ui-form-1/tasks/second')).data.state, 'failed');
	});

	await check('the DAGs page shows the latest run\'s state', async () => {
		await page.goto(base + '/ui/#/dags', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id="flaky"][data-state="success"] a.sq[data-run-id="ui-flaky-1"]');
	});

	await check('the pools page creates, resizes and deletes a pool', async () => {
		await page.goto(base + '/ui/#/pools', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-pool="default_pool"]');
		await page.type('form[data-action="create-pool"] input[name="name"]', 'ui_pool');
		await page.type('form[data-action="create-pool"] input[name="slots"]', '3');
		await page.type('form[data-action="create-pool"] input[name="description"]', 'from the page');
		await page.click('form[data-action="create-pool"] button[type="submit"]');
		await sel('tr[data-pool="ui_pool"]');
		assert.equal((await api('pools/ui_pool')).data.slots, 3);
		await page.click('tr[data-pool="ui_pool"] [data-action="edit"]');
		const slots = await sel('tr[data-pool="ui_pool"] input[name="slots"]');
		await slots.click({clickCount: 3});
		await slots.type('5');
		await page.click('tr[data-pool="ui_pool"] [data-action="save"]');
		await until('ui_pool resized', async () => (await api('pools/ui_pool')).data.slots === 5);
		await shot(page, 'pools');
		await page.click('tr[data-pool="ui_pool"] [data-action="delete"]');
		await until('ui_pool deleted', async () => {
			const r = await fetch(base + '/api/v1/pools/ui_pool');
			return r.status === 404;
		});
		await page.waitForFunction(() => !document.querySelector('tr[data-pool="ui_pool"]'),
			{timeout: WAIT});
	});

	await check('the system page renders', async () => {
		await page.goto(base + '/ui/#/system', {waitUntil: 'domcontentloaded'});
		await sel('[data-health]');
		await shot(page, 'system');
	});

	await check('/ redirects to /ui/', async () => {
		await page.goto(base + '/', {waitUntil: 'domcontentloaded'});
		assert.equal(new URL(page.url()).pathname, '/ui/');
		await sel('tr[data-dag-id]');
	});

	await check('/docs renders every operation; "try it out" on GET /api/v1/health shows 200', async () => {
		const spec = await (await fetch(base + '/openapi.json')).json();
		const verbs = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);
		const want = [];
		for (const [p, item] of Object.entries(spec.paths))
			for (const m of Object.keys(item))
				if (verbs.has(m))
					want.push(`${m.toUpperCase()} ${p}`);
		await page.goto(base + '/docs', {waitUntil: 'domcontentloaded'});
		await page.waitForFunction((n) => document.querySelectorAll('.opblock').length >= n,
			{timeout: WAIT}, want.length);
		const got = await page.$$eval('.opblock', (blocks) => blocks.map((b) =>
			`${b.querySelector('.opblock-summary-method').textContent.trim()} ` +
			b.querySelector('.opblock-summary-path').dataset.path));
		assert.deepEqual(got.sort(), want.sort());
		const block = await page.evaluateHandle(() => [...document.querySelectorAll('.opblock-get')]
			.find((b) => b.querySelector('.opblock-summary-path').dataset.path === '/api/v1/health'));
		await (await block.$('.opblock-summary-control, .opblock-summary')).click();
		await (await page.waitForSelector('.opblock-get.is-open .try-out__btn', {timeout: WAIT})).click();
		await (await page.waitForSelector('.opblock-get.is-open .execute', {timeout: WAIT})).click();
		await page.waitForFunction(() => [...document.querySelectorAll(
			'.opblock.is-open .live-responses-table .response-col_status')]
			.some((c) => c.textContent.trim() === '200'), {timeout: WAIT});
		await shot(page, 'docs');
	});

	await check('with settings.roles and no user, the 401 is a message, not a broken page', async () => {
		/* The 401 asks for Basic credentials: answer the browser's prompt
		 * with some (the web server checks none), as a user who cancels. */
		await page.authenticate({username: 'nobody', password: 'wrong'});
		await page.goto(process.env.PW_URL_ROLES + '/ui/#/dags', {waitUntil: 'domcontentloaded'});
		await page.waitForFunction(() => [...document.querySelectorAll('.msg.error')].some((m) =>
			m.textContent.includes('401')), {timeout: WAIT});
		assert.equal(await page.$('tr[data-dag-id]'), null);
		assert.ok(await page.$('header nav a[href="#/dags"]'), 'the page frame is there');
		await shot(page, 'unauthorized');
		await page.authenticate(null);
	});

	await check('no request leaves the server\'s origin', async () => {
		assert.ok(requests.length > 0);
		const away = requests.filter((r) => !r.url.startsWith('data:') &&
			!origins.includes(new URL(r.url).origin));
		assert.deepEqual(away, []);
	});

	await check('no JavaScript error on any page', async () => {
		assert.deepEqual(pageErrors, []);
	});
} finally {
	await browser.close();
}

if (skipped)
	console.log(`# ${skipped} check(s) skipped: this server lacks their operations`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
