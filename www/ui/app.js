/*
 * app.js - the dashboard's shell: the hash router of the deep links
 * (DESIGN.md section 9), the header, the user's rights (GET /me), and the
 * context each page gets: its root element, the one event stream, and a
 * way to show messages. A page module exports render(ctx, params) and may
 * return a cleanup function.
 */
import * as api from './api.js';
import {h, fill, message, explain} from './dom.js';
import * as dags from './pages/dags.js';
import * as dag from './pages/dag.js';
import * as run from './pages/run.js';
import * as task from './pages/task.js';
import * as pools from './pages/pools.js';
import * as system from './pages/system.js';

/* The deep links: a pattern of path segments and its page. */
const routes = [
	{parts: ['dags'], page: dags, nav: 'dags'},
	{parts: ['dags', ':dag_id'], page: dag, nav: 'dags'},
	{parts: ['dags', ':dag_id', 'runs', ':run_id'], page: run, nav: 'dags'},
	{parts: ['dags', ':dag_id', 'runs', ':run_id', 'tasks', ':task_id'], page: task, nav: 'dags'},
	{parts: ['pools'], page: pools, nav: 'pools'},
	{parts: ['system'], page: system, nav: 'system'},
];

/* The route and parameters of a hash such as #/dags/x/runs/y?state=failed. */
function match(hash) {
	const [pathPart, queryPart = ''] = hash.replace(/^#\/?/, '').split('?');
	let segs;
	try {
		segs = pathPart.split('/').filter((s) => s !== '').map(decodeURIComponent);
	} catch {
		return null;
	}
	for (const r of routes) {
		if (r.parts.length !== segs.length)
			continue;
		const params = {};
		if (r.parts.every((p, i) => p.startsWith(':') ? (params[p.slice(1)] = segs[i], true) :
			p === segs[i]))
			return {route: r, params, query: new URLSearchParams(queryPart)};
	}
	return null;
}

let cleanup = null;
let generation = 0;
let rights = null;

/* Renders the page of the current hash. */
async function show() {
	const m = match(location.hash || '#/dags');
	const main = document.getElementById('main');
	if (cleanup) {
		try {
			cleanup();
		} catch { /* a page's cleanup must not stop the next page */ }
		cleanup = null;
	}
	api.closeStream();
	const gen = ++generation;
	for (const a of document.querySelectorAll('nav a[data-nav]'))
		a.classList.toggle('current', !!m && a.dataset.nav === m.route.nav);
	if (!m) {
		fill(main, h('h1', {}, 'Page not found'),
			h('p', {}, 'No page at ', h('code', {}, location.hash), '. ',
				h('a', {href: '#/dags'}, 'See the DAGs.')));
		return;
	}
	fill(main, h('p', {class: 'loading'}, 'Loading…'));
	const ctx = makeContext(main, gen, m.query);
	try {
		if (!rights)
			rights = await loadRights();
		ctx.can = rights.can;
		const done = await m.route.page.render(ctx, m.params);
		if (gen !== generation) {
			if (typeof done === 'function')
				done();
		} else {
			cleanup = done || null;
		}
	} catch (e) {
		if (gen === generation)
			fill(main, message('error', explain(e)));
	}
}

/* The user's rights, shown in the header. */
async function loadRights() {
	const who = document.getElementById('who');
	try {
		const r = await api.me();
		fill(who, r.user ? `${r.user}${r.role ? ' (' + r.role + ')' : ''}` : '');
		return r;
	} catch (e) {
		fill(who, message('error', explain(e)));
		return {user: null, role: null, can: {read: false, operate: false, admin: false}};
	}
}

/*
 * A page's context: ctx.root, ctx.can, ctx.query, ctx.stale() (the user
 * went elsewhere), ctx.flash(kind, text), and ctx.live(filters, onEvent):
 * opens the page's one stream and resolves once it is connected (so the
 * page loads its data after the stream's starting point and misses no
 * event), or refused, or after 3 s; events are held back until the page
 * calls ctx.ready().
 */
function makeContext(main, gen, query) {
	let held = [], handler = null;
	const ctx = {
		root: main,
		query,
		can: {},
		stale: () => gen !== generation,
		flash(kind, text) {
			const box = document.getElementById('flash');
			const m = message(kind, text);
			box.append(m);
			setTimeout(() => m.remove(), kind === 'error' ? 12000 : 5000);
		},
		live(filters, onEvent) {
			handler = onEvent;
			return new Promise((resolve) => {
				const timer = setTimeout(resolve, 3000);
				const go = () => {
					clearTimeout(timer);
					resolve();
				};
				api.listen(filters, (type, data, id) => {
					if (gen !== generation)
						return;
					if (held)
						held.push([type, data, id]);
					else
						handler(type, data, id);
				}, go, go);   /* connected, or refused (a 403: the page shows the API's) */
			});
		},
		ready() {
			const q = held || [];
			held = null;
			for (const [t, d, i] of q)
				handler(t, d, i);
		},
	};
	return ctx;
}

function start() {
	const status = document.getElementById('live');
	api.onStreamStatus((s) => {
		status.dataset.stream = s;
		status.textContent = s === 'live' ? 'live' : s === 'connecting' ? 'connecting…' : '';
		status.title = s === 'live' ? 'Updates arrive as they happen' : '';
	});
	document.getElementById('docs-link').href = api.docsUrl;
	window.addEventListener('hashchange', show);
	if (!location.hash)
		history.replaceState(null, '', '#/dags');
	show();
}

start();
