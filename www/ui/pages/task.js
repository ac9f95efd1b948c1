/*
 * pages/task.js - #/dags/:dag_id/runs/:run_id/tasks/:task_id: one task
 * instance, its tries, XCom, and the log in <pre data-log>.
 *
 * Live: the run's stream (types=task.state) moves the state; tries and
 * XCom are read again once when a try ends. The API has no log stream, so
 * while the task runs the log (only the log) is read again every second,
 * which keeps the page at most ~1 s behind the file; reading stops when
 * the try ends, after one last read.
 */
import * as api from '../api.js';
import {h, fill, link, time, duration, badge, explain, message, finishedTask} from '../dom.js';
import {taskActions, timesFromEvent} from './run.js';

const LOG_EVERY_MS = 1000;

export async function render(ctx, {dag_id: dagId, run_id: runId, task_id: taskId}) {
	const base = api.path('dags', dagId, 'runs', runId, 'tasks', taskId);
	let page = null;
	await ctx.live({dag_id: dagId, run_id: runId, types: 'task.state'}, (type, d) => {
		if (d.task_id === taskId && d.run_id === runId)
			page.event(d);
	});
	const ti = (await api.request(base)).data;
	if (ctx.stale())
		return;
	page = build(ctx, dagId, runId, ti, base);
	fill(ctx.root, page.el);
	ctx.ready();
	page.follow();
	return () => page.stop();
}

function build(ctx, dagId, runId, ti, base) {
	const headerBadge = h('span', {class: 'badge own', dataset: {state: ti.state}}, ti.state);
	const acts = h('span');
	const facts = h('dl', {class: 'facts'});
	const header = h('section', {class: 'card task', dataset: {dagId, runId, taskId: ti.task_id,
		state: ti.state}}, h('h1', {}, 'Task ', h('span', {class: 'mono'}, ti.task_id), headerBadge,
		acts), facts);
	const tries = h('tbody');
	const xcom = h('div', {}, h('p', {class: 'loading'}, 'Loading…'));
	const log = h('pre', {class: 'log', dataset: {log: ''}});
	const logNote = h('span', {class: 'muted'});
	const trySel = h('select', {name: 'try_number', onchange: () => {
		viewing = trySel.value ? Number(trySel.value) : null;
		readLog();
	}});
	let viewing = null;     /* null: the latest try */
	let timer = null, reading = false, again = false, stopped = false;
	const page = {};

	function show() {
		header.dataset.state = ti.state;
		headerBadge.dataset.state = ti.state;
		headerBadge.textContent = ti.state;
		fill(facts,
			h('dt', {}, 'Run'), h('dd', {}, h('a', {href: link('dags', dagId, 'runs', runId),
				class: 'mono'}, runId)),
			h('dt', {}, 'Try'), h('dd', {}, `${ti.try_number ?? 0} of ${ti.max_tries ?? '?'}`),
			h('dt', {}, 'Started'), h('dd', {}, time(ti.started_at) || '—'),
			h('dt', {}, 'Ended'), h('dd', {}, time(ti.ended_at) || '—'),
			h('dt', {}, 'Duration'), h('dd', {}, ti.ended_at ? duration(ti.duration_ms) : '—'),
			h('dt', {}, 'Exit code'), h('dd', {}, ti.exit_code ?? '—'),
			h('dt', {}, 'Pool'), h('dd', {}, ti.pool || ''),
			ti.next_try_at ? [h('dt', {}, 'Next try'), h('dd', {}, time(ti.next_try_at))] : null);
		fill(acts, taskActions(ctx, dagId, runId, ti, (nt) => {
			Object.assign(ti, nt);
			show();
		}));
	}
	function showTries() {
		const list = ti.tries || [];
		fill(tries, list.length ? list.map((t) => h('tr', {dataset: {tryNumber: t.try_number,
			state: t.state}},
		h('td', {}, String(t.try_number)), h('td', {}, badge(t.state)),
		h('td', {}, time(t.started_at)), h('td', {}, time(t.ended_at)),
		h('td', {}, t.ended_at ? duration(t.duration_ms) : ''), h('td', {}, t.exit_code ?? ''),
		h('td', {}, t.reason || ''))) :
			h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No try yet.')));
		const keep = trySel.value;
		fill(trySel, h('option', {value: ''}, 'latest try'),
			list.map((t) => h('option', {value: String(t.try_number)}, `try ${t.try_number}`)));
		trySel.value = keep;
	}
	async function loadXcom() {
		try {
			const r = await api.request(base + '/xcom', {query: {limit: 100}});
			fill(xcom, r.data.length ? h('table', {}, h('thead', {}, h('tr', {},
				h('th', {}, 'Key'), h('th', {}, 'Value'))), h('tbody', {}, r.data.map((x) =>
				h('tr', {dataset: {xcomKey: x.key}}, h('td', {class: 'mono'}, x.key),
					h('td', {class: 'mono'}, JSON.stringify(x.value)))))) :
				h('p', {class: 'muted'}, 'No XCom.'));
		} catch (e) {
			fill(xcom, message('error', explain(e)));
		}
	}
	/* Reads the log once; a read asked for during a read runs after it. */
	async function readLog() {
		if (reading) {
			again = true;
			return;
		}
		reading = true;
		try {
			const query = viewing ? {try_number: viewing} : {};
			const r = await api.text(base + '/logs', query);
			const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
			if (log.textContent !== r.text)
				log.textContent = r.text;
			if (stick)
				log.scrollTop = log.scrollHeight;
			const omitted = r.headers.get('X-Log-Omitted-Bytes');
			fill(logNote, omitted ? `(the first ${omitted} bytes are left out)` :
				r.text ? '' : '(empty)');
		} catch (e) {
			fill(logNote, explain(e));
		} finally {
			reading = false;
		}
		if (again) {
			again = false;
			readLog();
		}
	}
	/* Reads the log every second while the task runs, once otherwise. */
	page.follow = () => {
		clearInterval(timer);
		timer = null;
		if (stopped)
			return;
		readLog();
		if (ti.state === 'running' && !viewing)
			timer = setInterval(readLog, LOG_EVERY_MS);
	};
	page.stop = () => {
		stopped = true;
		clearInterval(timer);
	};
	page.event = async (d) => {
		const was = ti.state;
		timesFromEvent(ti, d);
		show();
		if (d.state === 'running' || (was === 'running' && d.state !== 'running'))
			page.follow();
		if (finishedTask.has(d.state) || d.state === 'up_for_retry' || d.state === 'running') {
			/* once per try's start and end: the tries, exit code, XCom */
			try {
				Object.assign(ti, (await api.request(base)).data);
				show();
				showTries();
			} catch { /* the event's state stays shown */ }
			if (d.state !== 'running')
				loadXcom();
		}
	};

	show();
	showTries();
	loadXcom();
	page.el = h('div', {},
		h('div', {class: 'crumbs'}, h('a', {href: '#/dags'}, 'DAGs'), ' / ',
			h('a', {href: link('dags', dagId)}, dagId), ' / ',
			h('a', {href: link('dags', dagId, 'runs', runId)}, runId), ' / ', ti.task_id),
		header,
		h('section', {class: 'card'}, h('h2', {}, 'Log ', trySel, ' ', logNote), log),
		h('div', {class: 'two'},
			h('section', {class: 'card'}, h('h2', {}, 'Tries'), h('table', {class: 'tries'},
				h('thead', {}, h('tr', {}, h('th', {}, 'Try'), h('th', {}, 'State'),
					h('th', {}, 'Started'), h('th', {}, 'Ended'), h('th', {}, 'Duration'),
					h('th', {}, 'Exit'), h('th', {}, 'Reason'))), tries)),
			h('section', {class: 'card'}, h('h2', {}, 'XCom'), xcom)));
	return page;
}
