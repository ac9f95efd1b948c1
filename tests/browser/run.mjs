/*
 * run.mjs - the dashboard in a real headless Chromium against a real
 * pipewright server (tests/browser.sh starts it). Environment:
 *   PW_URL        the server, e.g. http://127.0.0.1:18700
 *   PW_URL_ROLES  a second one whose project has settings.roles
 *   PW_URL_AUTH   that project behind lighttpd with basic auth, mounted
 *                 at a prefix (e.g. http://127.0.0.1:18800/pw): users
 *                 reader, oper, admin (their roles) and stranger (none)
 *   PW_URL_SCALE  a third one: DAG "big" (1,000 tasks, 100,000 runs)
 *   PW_PROJECT    its project folder (the test creates gate files there)
 *   PW_PROJECT_ROLES  the roles project's folder
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
const authBase = process.env.PW_URL_AUTH;
const scaleBase = process.env.PW_URL_SCALE;
const rolesProject = process.env.PW_PROJECT_ROLES;
const origins = [base, process.env.PW_URL_ROLES, authBase, scaleBase].map((u) => new URL(u).origin);
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

/*
 * Runs one check: "ok" or "not ok" with the error and a screenshot. A
 * check still unsettled after CHECK_BOUND ms fails (a call into the
 * browser that never answers must not hang make check).
 */
const CHECK_BOUND = 6 * WAIT;
async function check(name, fn) {
	const t0 = performance.now();
	let timer;
	try {
		await Promise.race([fn(), new Promise((resolve, reject) => {
			timer = setTimeout(() => reject(new Error(`no end after ${CHECK_BOUND} ms`)), CHECK_BOUND);
		})]);
		passed++;
		console.log(`ok - ${name}`);
		console.log(`# ${((performance.now() - t0) / 1000).toFixed(1)} s`);
	} catch (e) {
		failed++;
		console.log(`not ok - ${name}`);
		console.log(String(e && e.stack || e).replace(/^/gm, '# '));
		await Promise.race([shot(page, 'failed-' + name.replace(/[^a-z0-9]+/gi, '-')),
			new Promise((r) => setTimeout(r, 10000))]).catch(() => {});
	} finally {
		clearTimeout(timer);
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

function gate(name, dir = project) {
	fs.writeFileSync(path.join(dir, 'gates', name), '');
}

/* The users of the lighttpd in front of the roles project: name -> password. */
const users = {reader: 'rpw', oper: 'opw', admin: 'apw', stranger: 'spw'};

/* api() on the lighttpd mount, as user (default oper). */
async function authApi(rel, init = {}, user = 'oper') {
	const auth = 'Basic ' + Buffer.from(`${user}:${users[user]}`).toString('base64');
	const res = await fetch(authBase + '/api/v1/' + rel, {...init,
		headers: {'Content-Type': 'application/json', Authorization: auth}});
	const body = await res.json();
	if (!res.ok)
		throw new Error(`${init.method || 'GET'} ${rel}: ${res.status} ${JSON.stringify(body)}`);
	return body;
}

/* A screenshot; fullPage false: the viewport only (a page 30,000 pixels high takes a minute). */
async function shot(p, name, fullPage = true) {
	await p.screenshot({path: path.join(artifacts, name + '.png'), fullPage});
}

/* Every element naming a DAG, run or task instance also carries data-state. */
async function hooksComplete() {
	/* one evaluate, not $$eval: thousands of element handles take seconds */
	const bad = await page.evaluate(() => [...document.querySelectorAll(
		'[data-dag-id], [data-run-id], [data-task-id]')]
		.filter((e) => !e.dataset.state).map((e) => e.outerHTML.slice(0, 120)));
	assert.deepEqual(bad, [], 'elements without data-state');
}

/* How many elements match s (one evaluate, however many there are). */
const count = (s) => page.evaluate((q) => document.querySelectorAll(q).length, s);
const sel = (s) => page.waitForSelector(s, {timeout: WAIT});
/*
 * Clicks the element s names. The pages re-render their lists when an
 * event or a poll brings news, so the element page.click found may be
 * replaced before the click lands ("Node is detached from document"):
 * then it finds the new one and clicks again (up to 5 times).
 */
async function click(s) {
	for (let tries = 1; ; tries++) {
		try {
			return await page.click(s);
		} catch (e) {
			if (tries >= 5 || !/detached/i.test(String(e && e.message)))
				throw e;
			await sel(s);
		}
	}
}
const textIn = (s, text) => page.waitForFunction((s, t) =>
	document.querySelector(s)?.textContent.includes(t), {timeout: WAIT}, s, text);

const browser = await puppeteer.launch({
	executablePath: process.env.PW_CHROMIUM,
	headless: true,
	args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run',
		'--disable-background-networking', '--disable-component-update',
		'--disable-default-apps', '--disable-sync'],
});
let page = await browser.newPage();
await page.setViewport({width: 1280, height: 860});
const requests = [];
const pageErrors = [];
page.on('request', (r) => requests.push({url: r.url(), method: r.method()}));
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('dialog', (d) => d.accept());

/*
 * A page in a browser context of its own (its own credential cache; the
 * one userPage made before is closed),
 * signed in as user when given. Its requests go to `requests` too (the
 * origin check), its JavaScript errors to pageErrors. p.log holds its
 * requests; p.answers its finished answers {url, method, status, size}
 * (sizes of bodies; a stream still open is not there); p.settle() waits
 * until the bodies of those finished are read.
 */
let lastContext = null;
async function userPage(user) {
	await lastContext?.close();   /* its streams end with it */
	const context = lastContext = await browser.createBrowserContext();
	const p = await context.newPage();
	await p.setViewport({width: 1280, height: 860});
	if (user)
		await p.authenticate({username: user, password: users[user]});
	p.log = [];
	p.answers = [];
	const reading = new Set();
	p.on('request', (r) => {
		requests.push({url: r.url(), method: r.method()});
		p.log.push({url: r.url(), method: r.method()});
	});
	p.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
	p.on('dialog', (d) => d.accept());
	p.on('requestfinished', (r) => {
		const res = r.response();
		if (!res)
			return;
		const job = res.buffer().then((b) => b.length, () => -1).then((size) => {
			p.answers.push({url: r.url(), method: r.method(), status: res.status(), size});
			reading.delete(job);
		});
		reading.add(job);
	});
	p.settle = async () => {
		await new Promise((r) => setTimeout(r, 200));
		await Promise.all([...reading]);
	};
	return p;
}

/* The API answers of p since index from: [{rel, query, status, size}]. */
function apiAnswers(p, from = 0) {
	return p.answers.slice(from).filter((a) => /\/api\/v1\//.test(a.url)).map((a) => {
		const u = new URL(a.url);
		return {...a, rel: u.pathname.replace(/^.*\/api\/v1\//, ''), query: u.searchParams};
	});
}

/* On /docs: "try it out" on GET /api/v1/health, executed; waits for its 200. */
async function tryHealth() {
	const block = await page.waitForFunction(() => [...document.querySelectorAll('.opblock-get')]
		.find((b) => b.querySelector('.opblock-summary-path')?.dataset.path === '/api/v1/health'),
	{timeout: WAIT});
	await (await block.$('.opblock-summary-control, .opblock-summary')).click();
	await (await page.waitForSelector('.opblock-get.is-open .try-out__btn', {timeout: WAIT})).click();
	await (await page.waitForSelector('.opblock-get.is-open .execute', {timeout: WAIT})).click();
	await page.waitForFunction(() => [...document.querySelectorAll(
		'.opblock.is-open .live-responses-table .response-col_status')]
		.some((c) => c.textContent.trim() === '200'), {timeout: WAIT});
}

/* Fails when the current page shows any action control or action form. */
async function noActions(where) {
	const found = await page.$$eval('[data-action], form.trigger', (els) =>
		els.map((e) => e.outerHTML.slice(0, 100)));
	assert.deepEqual(found, [], `${where}: action controls shown`);
}

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
		await click('tr[data-dag-id="hello"] [data-action="pause"]');
		await until('hello paused', async () => (await api('dags/hello')).data.is_paused === true);
		await sel('tr[data-dag-id="hello"][data-paused="true"] [data-action="unpause"]');
		await click('tr[data-dag-id="hello"] [data-action="unpause"]');
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
		await click('form[data-action="trigger"] button[type="submit"]');
		await sel('a.new-run[data-run-id="ui-form-1"]');
		const run = (await api('dags/gated/runs/ui-form-1')).data;
		assert.deepEqual(run.conf, conf);
		await sel('.grid [data-run-id="ui-form-1"][data-task-id="first"]');
	});

	await check('the run page shows each task go running -> success without a reload', async () => {
		await page.evaluate(() => {
			window.__sameDocument = true;
		});
		await click('a.new-run[data-run-id="ui-form-1"]');
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
		await click('tr[data-task-id="check"] a');
		await sel('section.task[data-task-id="check"][data-state="failed"]');
		await textIn('[data-log]', 'the file ready is missing');
		fs.writeFileSync(path.join(project, 'ready'), '');
		await page.evaluate(() => {
			window.__sameDocument = true;
		});
		await click('.crumbs a[href$="/runs/ui-flaky-1"]');
		await sel('section.run[data-run-id="ui-flaky-1"] [data-action="retry"]');
		await click('section.run[data-run-id="ui-flaky-1"] [data-action="retry"]');
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
		await click('table.grid th[data-col="ui-form-1"]');
		await sel('.graph svg g[data-task-id="first"][data-run-id="ui-form-1"]');
	});

	const hasSource = await offered(() => fetch(base + '/api/v1/dags/gated/source'));
	await checkIf(hasSource, 'the DAG page shows the DAG file\'s source', async () => {
		await click('details.source-box > summary');
		await textIn('pre.source', 'gates/$PIPEWRIGHT_RUN_ID.first.half');
	});

	const hasClear = await offered(() => fetch(base + '/api/v1/dags/gated/runs/ui-form-1/clear', {
		method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{"dry_run": true}'}));
	await checkIf(hasClear, 'clear from the run page runs the tasks again; mark sets a task\'s state', async () => {
		await page.goto(base + '/ui/#/dags/gated/runs/ui-form-1', {waitUntil: 'domcontentloaded'});
		await sel('section.run[data-run-id="ui-form-1"][data-state="success"] [data-action="clear"]');
		await click('section.run [data-action="clear"]');
		/* the gates are still there: both tasks run again at once */
		await until('a second try of first', async () =>
			(await api('dags/gated/runs/ui-form-1/tasks/first')).data.try_number === 2);
		await until('run success again', async () =>
			(await api('dags/gated/runs/ui-form-1')).data.state === 'success');
		await sel('section.run[data-run-id="ui-form-1"][data-state="success"]');
		await sel('tr[data-task-id="second"][data-state="success"] [data-action="mark-failed"]');
		await click('tr[data-task-id="second"] [data-action="mark-failed"]');
		await sel('tr[data-task-id="second"][data-state="failed"]');
		/* the page shows the PATCH's answer; the runner applies the mark
		 * (a command) in its next pass */
		await until('second marked failed', async () =>
			(await api('dags/gated/runs/ui-form-1/tasks/second')).data.state === 'failed');
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
		await click('form[data-action="create-pool"] button[type="submit"]');
		await sel('tr[data-pool="ui_pool"]');
		assert.equal((await api('pools/ui_pool')).data.slots, 3);
		await click('tr[data-pool="ui_pool"] [data-action="edit"]');
		const slots = await sel('tr[data-pool="ui_pool"] input[name="slots"]');
		await slots.click({clickCount: 3});
		await slots.type('5');
		await click('tr[data-pool="ui_pool"] [data-action="save"]');
		await until('ui_pool resized', async () => (await api('pools/ui_pool')).data.slots === 5);
		await shot(page, 'pools');
		await click('tr[data-pool="ui_pool"] [data-action="delete"]');
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
		await tryHealth();
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

	/* ---- roles: lighttpd's basic auth in front, REMOTE_USER -> settings.roles ---- */

	const mounted = [];   /* the pages that used the /pw mount */
	await check('a read-only user (lighttpd basic auth) is offered no action on any page', async () => {
		/* a failed run (flaky: the roles project has no file `ready`) */
		await authApi('dags/flaky/runs', {method: 'POST', body: JSON.stringify({run_id: 'auth-failed-1'})});
		await until('auth-failed-1 failed', async () =>
			(await authApi('dags/flaky/runs/auth-failed-1')).data.state === 'failed');
		page = await userPage('reader');
		mounted.push(page);
		await page.goto(authBase + '/ui/#/dags', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id="flaky"][data-state="failed"]');
		await textIn('#who', 'reader (read)');
		await noActions('#/dags');
		await shot(page, 'reader-dags');
		for (const [hash, ready] of [
			['#/dags/flaky', 'table.runs tr[data-run-id="auth-failed-1"][data-state="failed"]'],
			['#/dags/flaky/runs/auth-failed-1', 'tr[data-task-id="check"][data-state="failed"]'],
			['#/dags/flaky/runs/auth-failed-1/tasks/check', 'section.task[data-task-id="check"][data-state="failed"]'],
			['#/pools', 'tr[data-pool="default_pool"]'],
		]) {
			await page.goto(authBase + '/ui/' + hash, {waitUntil: 'domcontentloaded'});
			await sel(ready);
			await noActions(hash);
			if (hash === '#/dags/flaky/runs/auth-failed-1')
				await shot(page, 'reader-run');
		}
	});

	await check('an operator is offered pause, trigger, retry, clear and mark, but no pool editing', async () => {
		page = await userPage('oper');
		mounted.push(page);
		await page.goto(authBase + '/ui/#/dags', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id="flaky"] [data-action="pause"]');
		await textIn('#who', 'oper (operate)');
		await page.goto(authBase + '/ui/#/dags/flaky', {waitUntil: 'domcontentloaded'});
		await sel('section.dag[data-dag-id="flaky"] [data-action="pause"]');
		await sel('form[data-action="trigger"] textarea[name="conf"]');
		await sel('table.runs tr[data-run-id="auth-failed-1"] [data-action="retry"]');
		await page.goto(authBase + '/ui/#/dags/flaky/runs/auth-failed-1', {waitUntil: 'domcontentloaded'});
		for (const a of ['retry', 'clear', 'mark-success'])
			await sel(`section.run[data-run-id="auth-failed-1"] [data-action="${a}"]`);
		await sel('tr[data-task-id="check"] [data-action="mark-success"]');
		await page.goto(authBase + '/ui/#/pools', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-pool="default_pool"]');
		await noActions('#/pools');
	});

	await check('an admin is offered pool creation and editing', async () => {
		page = await userPage('admin');
		mounted.push(page);
		await page.goto(authBase + '/ui/#/pools', {waitUntil: 'domcontentloaded'});
		await sel('form[data-action="create-pool"]');
		await sel('tr[data-pool="default_pool"] [data-action="edit"]');
		await textIn('#who', 'admin (admin)');
		await shot(page, 'admin-pools');
	});

	await check('a user without a role sees the 403 as a message on every page, not a broken page', async () => {
		page = await userPage('stranger');
		mounted.push(page);
		for (const hash of ['#/dags', '#/dags/flaky', '#/dags/flaky/runs/auth-failed-1',
			'#/dags/flaky/runs/auth-failed-1/tasks/check', '#/pools', '#/system']) {
			await page.goto(authBase + '/ui/' + hash, {waitUntil: 'domcontentloaded'});
			await page.waitForFunction(() => [...document.querySelectorAll('#main .msg.error')]
				.some((m) => m.textContent.includes('403')), {timeout: WAIT});
			assert.ok(await page.$('header nav a[href="#/pools"]'), `${hash}: the page frame is there`);
			assert.equal(await page.$('[data-dag-id], [data-run-id], [data-task-id]'), null,
				`${hash}: nothing of the project shown`);
			await noActions(hash);
			if (hash === '#/dags/flaky')
				await shot(page, 'forbidden');
		}
	});

	await check('an action the server refuses (403: the role changed meanwhile) is a message', async () => {
		page = await userPage('oper');
		mounted.push(page);
		await page.goto(authBase + '/ui/#/dags/hello', {waitUntil: 'domcontentloaded'});
		await sel('section.dag[data-dag-id="hello"][data-paused="false"] [data-action="pause"]');
		const yml = path.join(rolesProject, 'pipewright.yml');
		const before = fs.readFileSync(yml, 'utf8');
		fs.writeFileSync(yml, before.replace('oper: operate', 'oper: read'));
		try {
			await click('section.dag [data-action="pause"]');
			await page.waitForFunction(() => [...document.querySelectorAll('#flash .msg.error')]
				.some((m) => m.textContent.includes('403')), {timeout: WAIT});
		} finally {
			fs.writeFileSync(yml, before);
		}
		await shot(page, 'action-forbidden');
		assert.equal((await authApi('dags/hello', {}, 'admin')).data.is_paused, false);
		assert.ok(await page.$('section.dag[data-dag-id="hello"][data-paused="false"]'),
			'the page still shows the DAG');
	});

	/* ---- the /pw mount (SCRIPT_NAME) behind lighttpd ---- */

	await check('under the /pw mount: list the DAGs, trigger from the form, follow the run live', async () => {
		page = await userPage('oper');
		mounted.push(page);
		await page.goto(authBase + '/ui/', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id="gated"]');
		const want = (await authApi('dags')).data.map((d) => d.dag_id).sort();
		assert.deepEqual(await page.$$eval('tr[data-dag-id]', (rows) =>
			rows.map((r) => r.dataset.dagId).sort()), want);
		await page.evaluate(() => {
			window.__sameDocument = true;
		});
		await click('tr[data-dag-id="gated"] a[href="#/dags/gated"]');
		await sel('form[data-action="trigger"] textarea[name="conf"]');
		await page.type('form[data-action="trigger"] input[name="run_id"]', 'pw-prefix-1');
		await page.type('form[data-action="trigger"] textarea[name="conf"]', '{"via": "the /pw mount"}');
		await click('form[data-action="trigger"] button[type="submit"]');
		await sel('a.new-run[data-run-id="pw-prefix-1"]');
		const run = (await authApi('dags/gated/runs/pw-prefix-1')).data;
		assert.deepEqual(run.conf, {via: 'the /pw mount'});
		assert.equal(run.triggered_by, 'oper', 'REMOTE_USER is the run\'s triggered_by');
		await click('a.new-run[data-run-id="pw-prefix-1"]');
		await sel('section.run[data-run-id="pw-prefix-1"] ~ section tr[data-task-id="first"][data-state="running"]');
		gate('pw-prefix-1.first.half', rolesProject);
		gate('pw-prefix-1.first', rolesProject);
		await sel('tr[data-task-id="second"][data-state="running"]');
		gate('pw-prefix-1.second', rolesProject);
		await sel('section.run[data-run-id="pw-prefix-1"][data-state="success"]');
		await sel('tr[data-task-id="second"][data-state="success"]');
		assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
		await shot(page, 'prefix-run');
	});

	await check('under the /pw mount, /docs "try it out" on GET /api/v1/health answers 200', async () => {
		await page.goto(authBase + '/docs', {waitUntil: 'domcontentloaded'});
		await tryHealth();
		const health = new URL('api/v1/health', authBase + '/').href;
		assert.ok(page.log.some((r) => r.url === health), `a request of ${health}`);
		await shot(page, 'prefix-docs');
	});

	await check('under the /pw mount every request stays under /pw/', async () => {
		const mount = new URL(authBase + '/');
		const all = mounted.flatMap((p) => p.log);
		assert.ok(all.length > 0);
		const away = all.filter((r) => !r.url.startsWith('data:') &&
			(new URL(r.url).origin !== mount.origin || !new URL(r.url).pathname.startsWith(mount.pathname)));
		assert.deepEqual(away, []);
	});

	/* ---- scale: DAG "big", 1,000 tasks, 100,000 runs ---- */

	const sum = (list) => list.reduce((n, a) => n + a.size, 0);
	const listLimit = (a) => Number(a.query.get('limit'));
	await check('at scale, the DAGs page reads one bounded page of runs per DAG', async () => {
		page = await userPage(null);
		await page.goto(scaleBase + '/ui/#/dags', {waitUntil: 'domcontentloaded'});
		await sel('tr[data-dag-id="big"][data-state="failed"]');
		await page.waitForFunction(() => document.querySelectorAll(
			'tr[data-dag-id="big"] a.sq[data-run-id]').length === 12, {timeout: WAIT});
		await page.settle();
		const got = apiAnswers(page);
		const runs = got.filter((a) => /^dags\/[^/]+\/runs$/.test(a.rel));
		assert.equal(runs.length, (await (await fetch(scaleBase + '/api/v1/dags')).json()).data.length);
		for (const a of runs)
			assert.ok(listLimit(a) >= 1 && listLimit(a) <= 100, `limit of ${a.url}`);
		console.log(`# DAGs page: ${got.length} API answers, ${sum(got)} bytes`);
		assert.ok(sum(got) < 1e6, `${sum(got)} bytes`);
		await shot(page, 'scale-dags');
	});

	await check('at scale, the DAG page of 1,000 tasks: Graphviz graph, grid, first page of runs', async () => {
		const from = page.answers.length;
		await page.goto(scaleBase + '/ui/#/dags/big', {waitUntil: 'domcontentloaded'});
		await page.waitForFunction(() => document.querySelectorAll(
			'.graph svg g[data-task-id]').length === 1000, {timeout: 2 * WAIT});
		await sel('table.runs tr[data-run-id="scale-100000"]');
		assert.equal(await count('table.runs tbody tr[data-run-id]'), 25);
		assert.equal(await count('table.grid tr[data-row]'), 1000);
		const cols = await count('table.grid thead th[data-col]');
		assert.ok(cols >= 3 && cols <= 20, `grid columns: ${cols}`);
		await page.waitForFunction(() => !document.querySelector('table.grid .sq[data-state="none"]'),
			{timeout: 2 * WAIT});
		await page.settle();
		const got = apiAnswers(page, from);
		const tis = got.filter((a) => /\/runs\/[^/]+\/tasks$/.test(a.rel));
		assert.equal(tis.length, cols, 'one task-instance page per grid column');
		for (const a of got.filter((x) => /^dags\/big\/runs$/.test(x.rel)))
			assert.ok(listLimit(a) <= 25, `limit of ${a.url}`);
		assert.ok(got.length <= cols + 6, `${got.length} API answers`);
		const graph = got.find((a) => a.rel === 'dags/big/graph');
		console.log(`# DAG page of 1,000 tasks: ${got.length} API answers, ${sum(got)} bytes ` +
			`(graph SVG ${graph?.size}, grid ${cols} runs x ${sum(tis) / cols | 0} bytes)`);
		/* every run of the 100,000 would be 36 MB at least */
		assert.ok(sum(got) < 8e6, `${sum(got)} bytes`);
		await hooksComplete();
		await shot(page, 'scale-dag', false);
		/* fitted, the graph is no wider than its box; at its actual size it scrolls */
		const width = () => page.$eval('.graph', (g) =>
			[g.querySelector('svg').getBoundingClientRect().width, g.clientWidth]);
		let [svgW, boxW] = await width();
		assert.ok(svgW <= boxW, `fitted graph ${svgW} px in a box of ${boxW} px`);
		await click('.graph-card button.zoom');
		[svgW, boxW] = await width();
		assert.ok(svgW > boxW, `actual-size graph ${svgW} px in a box of ${boxW} px`);
		assert.equal(await page.$eval('.graph-card button.zoom', (b) => b.textContent), 'Fit');
		for (let i = 0; i < 2; i++) {
			const t0 = performance.now();
			await (await fetch(scaleBase + '/api/v1/dags/big/graph')).text();
			console.log(`# GET /dags/big/graph (Graphviz, 1,000 nodes): ` +
				`${Math.round(performance.now() - t0)} ms (measured, not asserted)`);
		}
	});

	await check('at scale, the runs list pages through 100,000 runs and filters by state', async () => {
		const firstRow = () => page.$eval('table.runs tbody tr[data-run-id]', (tr) => tr.dataset.runId);
		const pageTo = async (label, want) => {
			const from = page.answers.length;
			await page.evaluate((l) => [...document.querySelectorAll('.pager button')]
				.find((b) => b.textContent.includes(l)).click(), label);
			await page.waitForFunction((w) => document.querySelector(
				'table.runs tbody tr[data-run-id]')?.dataset.runId === w, {timeout: WAIT}, want);
			await page.settle();
			const got = apiAnswers(page, from);
			assert.equal(got.length, 1, 'one request a page');
			assert.ok(listLimit(got[0]) === 25 && got[0].size < 20000, got[0].url);
		};
		assert.equal(await firstRow(), 'scale-100000');
		await pageTo('older', 'scale-099975');
		await pageTo('older', 'scale-099950');
		await pageTo('newer', 'scale-099975');
		await page.select('select[name="state"]', 'failed');
		await page.waitForFunction(() => {
			const rows = [...document.querySelectorAll('table.runs tbody tr[data-run-id]')];
			return rows.length === 25 && rows[0].dataset.runId === 'scale-100000' &&
				rows.every((r) => r.dataset.state === 'failed');
		}, {timeout: WAIT});
		await textIn('.pager', '10000 runs');
	});

	await check('at scale, the run page of 1,000 task instances is one request', async () => {
		const from = page.answers.length;
		await page.goto(scaleBase + '/ui/#/dags/big/runs/scale-099999', {waitUntil: 'domcontentloaded'});
		await sel('section.run[data-run-id="scale-099999"][data-state="success"]');
		await page.waitForFunction(() => document.querySelectorAll(
			'table.tasks tr[data-task-id]').length === 1000, {timeout: WAIT});
		await page.settle();
		const got = apiAnswers(page, from);
		assert.deepEqual(got.map((a) => a.rel), ['dags/big/runs/scale-099999']);
		console.log(`# run page of 1,000 tasks: ${sum(got)} bytes`);
		await shot(page, 'scale-run', false);
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
