/*
 * pages/task.js - #/dags/:dag_id/runs/:run_id/tasks/:task_id: one task
 * instance, its tries, XCom, and the log in <pre data-log>.
 *
 * Live: the run's stream (types=task.state) moves the state; tries and
 * XCom are read again once when a try ends. The log is one request with
 * ?follow=true, read as it arrives (a ReadableStream) and appended to the
 * <pre>: the server keeps it open while the try runs and writes each new
 * byte of the file within ~250 ms. When it ends while the task still runs
 * (the server bounds every long answer), the page asks again from the
 * bytes it has (?offset=), at most once a second. No polling.
 */
import * as api from '../api.js';
import {h, fill, link, time, duration, badge, explain, message, finishedTask} from '../dom.js';
import {taskActions, timesFromEvent} from './run.js';

const RECONNECT_MS = 1000;   /* the least time between two log requests */

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
	let ctl = null;           /* the log read's AbortController while it runs */
	let stopped = false;
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
	/* Appends text to the log, keeping it scrolled to the end when it was. */
	function append(text) {
		if (!text)
			return;
		const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
		log.append(text);
		if (stick)
			log.scrollTop = log.scrollHeight;
	}
	/* Whether the try the log shows can still grow. */
	function growing() {
		return ti.state === 'running' && (!viewing || viewing === ti.try_number);
	}
	/*
	 * Reads the log of the viewed try (the latest when none) from its start:
	 * one follow request, and a next one from the bytes received when it
	 * ends while the try still runs. A new call abandons the previous read.
	 */
	async function readLog() {
		ctl?.abort();
		const mine = ctl = new AbortController();
		const decoder = new TextDecoder();
		let offset = null, omitted = null;
		log.textContent = '';
		fill(logNote);
		while (!stopped && ctl === mine) {
			const t0 = Date.now();
			const query = {follow: 'true'};
			if (viewing)
				query.try_number = viewing;
			if (offset !== null)
				query.offset = offset;
			try {
				const res = await api.textStream(base + '/logs', query, mine.signal);
				if (offset === null) {
					omitted = res.headers.get('X-Log-Omitted-Bytes');
					offset = Number(omitted || 0);
				}
				const reader = res.body.getReader();
				for (;;) {
					const {done, value} = await reader.read();
					if (done || ctl !== mine)
						break;
					offset += value.byteLength;
					append(decoder.decode(value, {stream: true}));
				}
				fill(logNote, omitted ? `(the first ${omitted} bytes are left out)` :
					log.textContent || growing() ? '' : '(empty)');
			} catch (e) {
				if (e.name === 'AbortError' || ctl !== mine)
					return;
				fill(logNote, explain(e));
			}
			if (ctl !== mine || !growing())
				break;
			await new Promise((ok) => setTimeout(ok, Math.max(0, t0 + RECONNECT_MS - Date.now())));
		}
		if (ctl === mine) {
			append(decoder.decode());
			ctl = null;
		}
	}
	/* Reads the log unless a read is under way (it follows the running try). */
	page.follow = () => {
		if (!stopped && !ctl)
			readLog();
	};
	page.stop = () => {
		stopped = true;
		ctl?.abort();
	};
	page.event = async (d) => {
		const was = ti.state;
		timesFromEvent(ti, d);
		show();
		if (d.state === 'running' && was !== 'running')
			readLog();          /* a new try: its log from the start */
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
