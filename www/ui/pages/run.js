/*
 * pages/run.js - #/dags/:dag_id/runs/:run_id: one run, its task instances
 * with Gantt bars, and the actions on it (cancel, retry, clear, mark) and
 * on each task (clear, mark success/failed). Live: one stream filtered on
 * the run moves states, times and bars in place; the bars of running tasks
 * grow from the local clock, with no request.
 */
import * as api from '../api.js';
import {h, fill, link, time, duration, badge, explain, message, action,
	finishedRun, finishedTask} from '../dom.js';

const FAILED_LOGS = 5;     /* failed tasks whose log tail the page shows */
const LOG_TAIL = 8000;     /* characters of each */

/* Operations this server answered 404/405 for (an older server): not offered again. */
const missing = new Set();

/*
 * Runs an action's request; a 404/405 route hides the control for good.
 * Returns the answer, or null on an error, or when an event came while
 * the request was out: the object's state it carries is newer than the
 * answer's (a retry's run, answered "failed", may already be "success").
 */
async function perform(ctx, op, button, fn) {
	const seen = api.eventCount();
	button.disabled = true;
	try {
		const r = await fn();
		return api.eventCount() === seen ? r : null;
	} catch (e) {
		/* a route the server lacks: 405, or a 404 naming no object */
		if (e.status === 405 || (e.status === 404 && /^no such resource/.test(e.message))) {
			missing.add(op);
			button.remove();
			ctx.flash('error', `This server does not offer "${op}".`);
		} else {
			ctx.flash('error', explain(e));
		}
		return null;
	} finally {
		button.disabled = false;
	}
}

/*
 * The action buttons a run's state allows (operators only): cancel while
 * queued or running, retry once failed or cancelled, clear and mark once
 * finished (all but cancel/retry left out with few). onChange(run) gets
 * the run the API answers.
 */
export function runActions(ctx, run, onChange, {few = false} = {}) {
	if (!ctx.can.operate)
		return null;
	const base = api.path('dags', run.dag_id, 'runs', run.run_id);
	const out = [];
	const done = finishedRun.has(run.state);
	if (!done)
		out.push(action('cancel', 'Cancel', async (e) => {
			const r = await perform(ctx, 'cancel', e.target, () =>
				api.request(base, {method: 'DELETE'}));
			if (r)
				onChange(r.data);
		}));
	if (run.state === 'failed' || run.state === 'cancelled')
		out.push(action('retry', 'Retry', async (e) => {
			const r = await perform(ctx, 'retry', e.target, () =>
				api.request(base + '/retry', {method: 'POST', body: {}}));
			if (r)
				onChange(r.data);
		}));
	if (!few && done && !missing.has('clear'))
		out.push(action('clear', 'Clear', async (e) => {
			if (!window.confirm(`Clear every task of run ${run.run_id}? They run again.`))
				return;
			const r = await perform(ctx, 'clear', e.target, () =>
				api.request(base + '/clear', {method: 'POST', body: {}}));
			if (r)
				ctx.flash('ok', `Cleared ${r.data.task_ids.length} task(s).`);
		}));
	if (!few && run.state !== 'running' && !missing.has('mark'))
		for (const s of ['success', 'failed'])
			if (run.state !== s)
				out.push(action('mark-' + s, 'Mark ' + s, async (e) => {
					const r = await perform(ctx, 'mark', e.target, () =>
						api.request(base, {method: 'PATCH', body: {state: s}}));
					if (r)
						onChange(r.data);
				}));
	return h('span', {class: 'actions'}, out);
}

/* A task's actions: clear once finished, mark when not running. */
export function taskActions(ctx, dagId, runId, ti, onChange) {
	if (!ctx.can.operate)
		return null;
	const out = [];
	const base = api.path('dags', dagId, 'runs', runId);
	if (finishedTask.has(ti.state) && !missing.has('clear'))
		out.push(action('clear', 'Clear', async (e) => {
			const r = await perform(ctx, 'clear', e.target, () =>
				api.request(base + '/clear', {method: 'POST', body: {task_ids: [ti.task_id]}}));
			if (r)
				ctx.flash('ok', `Cleared ${r.data.task_ids.join(', ')}.`);
		}));
	if (ti.state !== 'running' && !missing.has('mark'))
		for (const s of ['success', 'failed'])
			if (ti.state !== s)
				out.push(action('mark-' + s, 'Mark ' + s, async (e) => {
					const r = await perform(ctx, 'mark', e.target, () =>
						api.request(base + '/' + api.path('tasks', ti.task_id),
							{method: 'PATCH', body: {state: s}}));
					if (r)
						onChange(r.data);
				}));
	return h('span', {class: 'actions'}, out);
}

/* The times an event implies for a run or a task instance. */
export function timesFromEvent(obj, d) {
	if (d.state === 'running') {
		if (d.previous_state !== 'running')
			obj.started_at = d.ts;
		obj.ended_at = null;
		obj.duration_ms = null;
	} else if (finishedRun.has(d.state) || finishedTask.has(d.state) || d.state === 'up_for_retry') {
		obj.ended_at = d.ts;
		obj.duration_ms = obj.started_at ? Date.parse(d.ts) - Date.parse(obj.started_at) : null;
	} else if (d.state === 'queued' || d.state === 'pending') {
		obj.ended_at = null;
		obj.duration_ms = null;
	}
	obj.state = d.state;
	if (d.try_number)
		obj.try_number = d.try_number;
}

export async function render(ctx, {dag_id: dagId, run_id: runId}) {
	await ctx.live({dag_id: dagId, run_id: runId}, (type, d) => {
		if (d.run_id !== runId)
			return;
		if (type === 'run.state') {
			timesFromEvent(page.run, d);
			page.showRun();
		} else if (type === 'task.state') {
			page.taskEvent(d);
		}
	});
	const run = (await api.request(api.path('dags', dagId, 'runs', runId))).data;
	if (ctx.stale())
		return;
	const page = build(ctx, run);
	fill(ctx.root, page.el);
	ctx.ready();
	const timer = setInterval(() => page.gantt(), 1000);
	return () => clearInterval(timer);
}

function build(ctx, run) {
	const dagId = run.dag_id;
	const acts = h('span');
	const facts = h('dl', {class: 'facts'});
	const headerBadge = h('span', {class: 'badge own', dataset: {state: run.state}}, run.state);
	const header = h('section', {class: 'card run', dataset: {dagId, runId: run.run_id,
		state: run.state}}, h('h1', {}, 'Run ', h('span', {class: 'mono'}, run.run_id),
		headerBadge, acts), facts);
	const tbody = h('tbody');
	const rows = new Map();
	const page = {run};

	page.showRun = () => {
		const r = page.run;
		header.dataset.state = r.state;
		headerBadge.dataset.state = r.state;
		headerBadge.textContent = r.state;
		fill(facts,
			h('dt', {}, 'Type'), h('dd', {}, r.run_type || ''),
			h('dt', {}, 'Queued'), h('dd', {}, time(r.queued_at)),
			h('dt', {}, 'Started'), h('dd', {}, time(r.started_at) || '—'),
			h('dt', {}, 'Ended'), h('dd', {}, time(r.ended_at) || '—'),
			h('dt', {}, 'Duration'), h('dd', {}, duration(r.duration_ms) || '—'),
			h('dt', {}, 'Triggered by'), h('dd', {}, r.triggered_by || '—'),
			r.note ? [h('dt', {}, 'Note'), h('dd', {}, r.note)] : null,
			r.error ? [h('dt', {}, 'Error'), h('dd', {}, message('error', typeof r.error === 'object' ?
				[r.error.type, r.error.message].filter(Boolean).join(': ') : String(r.error)))] : null,
			h('dt', {}, 'Conf'), h('dd', {}, h('code', {class: 'conf'}, JSON.stringify(r.conf ?? {}))));
		fill(acts, runActions(ctx, r, (nr) => {
			Object.assign(page.run, nr);
			page.showRun();
		}));
	};

	function row(ti) {
		const tr = h('tr', {dataset: {dagId, runId: run.run_id, taskId: ti.task_id, state: ti.state}});
		const entry = {tr, ti, bar: h('div', {class: 'gantt-bar'})};
		rows.set(ti.task_id, entry);
		showTask(entry);
		return tr;
	}
	function showTask(entry) {
		const ti = entry.ti;
		entry.tr.dataset.state = ti.state;
		fill(entry.tr,
			h('td', {}, h('a', {href: link('dags', dagId, 'runs', run.run_id, 'tasks', ti.task_id)},
				ti.task_id)),
			h('td', {}, badge(ti.state)),
			h('td', {}, `${ti.try_number ?? 0}/${ti.max_tries ?? '?'}`),
			h('td', {}, time(ti.started_at)),
			h('td', {}, time(ti.ended_at)),
			h('td', {}, ti.ended_at ? duration(ti.duration_ms) : ''),
			h('td', {}, ti.exit_code ?? ''),
			h('td', {}, ti.pool || ''),
			h('td', {class: 'gantt'}, h('div', {class: 'gantt-track'}, entry.bar)),
			h('td', {}, taskActions(ctx, dagId, run.run_id, ti, (nt) => {
				Object.assign(entry.ti, nt);
				showTask(entry);
			})));
	}
	page.taskEvent = (d) => {
		let entry = rows.get(d.task_id);
		if (!entry) {
			tbody.append(row({task_id: d.task_id, state: d.state, try_number: d.try_number}));
			entry = rows.get(d.task_id);
		}
		timesFromEvent(entry.ti, d);
		showTask(entry);
		page.gantt();
		failedLog(entry.ti);
	};

	/*
	 * The log tails of failed tasks (read once, when the task is seen
	 * failed), so a failure explains itself without another click.
	 */
	const failures = h('div', {class: 'failures'});
	const shown = new Map();
	async function failedLog(ti) {
		const old = shown.get(ti.task_id);
		if (ti.state !== 'failed') {
			old?.remove();
			shown.delete(ti.task_id);
			return;
		}
		if (old || shown.size >= FAILED_LOGS)
			return;
		const pre = h('pre', {class: 'log', dataset: {log: '', dagId, runId: run.run_id,
			taskId: ti.task_id, state: 'failed'}}, 'Loading…');
		const box = h('details', {open: true, class: 'failed-log'}, h('summary', {},
			'Log of the failed task ', h('a', {href: link('dags', dagId, 'runs', run.run_id,
				'tasks', ti.task_id)}, ti.task_id)), pre);
		shown.set(ti.task_id, box);
		failures.append(box);
		try {
			const r = await api.text(api.path('dags', dagId, 'runs', run.run_id, 'tasks',
				ti.task_id, 'logs'));
			pre.textContent = r.text.length > LOG_TAIL ? '…' + r.text.slice(-LOG_TAIL) : r.text;
		} catch (e) {
			pre.textContent = explain(e);
		}
	}

	/* Places every bar on the run's time line: start to end (or now). */
	page.gantt = () => {
		const now = Date.now();
		let t0 = Infinity, t1 = 0;
		for (const {ti} of rows.values()) {
			if (!ti.started_at)
				continue;
			t0 = Math.min(t0, Date.parse(ti.started_at));
			t1 = Math.max(t1, ti.ended_at ? Date.parse(ti.ended_at) : now);
		}
		const span = Math.max(1, t1 - t0);
		for (const {ti, bar} of rows.values()) {
			if (!ti.started_at) {
				bar.style.display = 'none';
				continue;
			}
			const a = Date.parse(ti.started_at);
			const b = ti.ended_at ? Date.parse(ti.ended_at) : now;
			bar.style.display = '';
			bar.style.left = `${(100 * (a - t0) / span).toFixed(2)}%`;
			bar.style.width = `${(100 * Math.max(0, b - a) / span).toFixed(2)}%`;
			bar.title = `${ti.task_id}: ${time(ti.started_at)} – ${ti.ended_at ? time(ti.ended_at) : 'now'}`;
		}
	};

	fill(tbody, (run.task_instances || []).map(row));
	for (const {ti} of rows.values())
		failedLog(ti);
	page.showRun();
	page.gantt();
	page.el = h('div', {},
		h('div', {class: 'crumbs'}, h('a', {href: '#/dags'}, 'DAGs'), ' / ',
			h('a', {href: link('dags', dagId)}, dagId), ' / ', run.run_id),
		header,
		h('section', {class: 'card'}, h('h2', {}, 'Task instances'),
			h('table', {class: 'tasks'}, h('thead', {}, h('tr', {},
				h('th', {}, 'Task'), h('th', {}, 'State'), h('th', {}, 'Try'), h('th', {}, 'Started'),
				h('th', {}, 'Ended'), h('th', {}, 'Duration'), h('th', {}, 'Exit'), h('th', {}, 'Pool'),
				h('th', {}, 'Gantt'), h('th', {}, ''))), tbody)),
		failures);
	return page;
}
