/*
 * pages/dag.js - #/dags/:dag_id: one DAG. Its header with the pause
 * toggle, the trigger form (conf JSON and the slicing fields), the graph
 * (Graphviz's SVG from GET /dags/:id/graph, nodes recoloured with the
 * selected run's task states), the runs x tasks grid of the latest runs,
 * the runs list (state filter, paging) and the DAG file's source.
 * Live: one stream filtered on the DAG updates all of them in place.
 */
import * as api from '../api.js';
import {h, fill, link, time, duration, badge, explain, message, action,
	finishedRun} from '../dom.js';
import {runActions} from './run.js';

const GRID_RUNS = 20;   /* runs (columns) in the grid at most */
const GRID_CELLS = 5000; /* cells at most: a DAG of 1,000 tasks shows 5 runs */
const LIST_PAGE = 25;   /* runs per page of the list */

export async function render(ctx, {dag_id: dagId}) {
	const page = {ctx, dagId, dag: null, grid: null, list: null, graph: null, header: null};

	await ctx.live({dag_id: dagId}, (type, d) => onEvent(page, type, d));
	const {data: dag, meta} = await api.request(api.path('dags', dagId));
	if (ctx.stale())
		return;
	page.dag = dag;
	/* A DAG's detail holds its first 1,000 tasks; meta.total counts them all. */
	page.taskCount = meta?.total ?? dag.tasks.length;
	page.header = header(page);
	page.grid = makeGrid(page);
	page.graph = makeGraph(page);
	page.list = makeList(page);
	fill(ctx.root,
		h('div', {class: 'crumbs'}, h('a', {href: '#/dags'}, 'DAGs'), ' / ', dagId),
		page.header.el,
		ctx.can.operate ? triggerForm(page) : null,
		h('div', {class: 'two'},
			h('section', {class: 'card'}, h('h2', {}, 'Grid'), page.grid.el),
			h('section', {class: 'card graph-card'}, h('h2', {}, 'Graph ', page.graph.caption, ' ', page.graph.zoom), page.graph.el)),
		h('section', {class: 'card'}, h('h2', {}, 'Runs'), page.list.el),
		source(page));
	await Promise.all([page.grid.load(), page.graph.load(), page.list.load()]);
	ctx.ready();
}

function onEvent(page, type, d) {
	if (!page.dag)
		return;
	if (type === 'dag.updated' && typeof d.is_paused === 'boolean')
		page.header.setPaused(d.is_paused);
	if (type === 'run.state') {
		page.grid.runState(d);
		page.list.runState(d);
		for (const a of page.ctx.root.querySelectorAll(`a.new-run[data-run-id="${CSS.escape(d.run_id)}"]`))
			a.dataset.state = d.state;
	}
	if (type === 'task.state') {
		page.grid.taskState(d);
		if (d.run_id === page.grid.selected)
			page.graph.taskState(d.task_id, d.state);
	}
	page.header.el.dataset.state = page.grid.latestState();
}

/* The title, facts and the pause toggle. */
function header(page) {
	const {dag, ctx} = page;
	const toggle = h('span');
	const el = h('section', {class: 'card dag', dataset: {dagId: dag.dag_id,
		paused: String(dag.is_paused), state: 'none'}},
	h('h1', {}, dag.dag_id, toggle),
	dag.description ? h('p', {}, dag.description) : null,
	h('dl', {class: 'facts'},
		h('dt', {}, 'Schedule'), h('dd', {class: 'mono'}, dag.schedule || 'manual only'),
		h('dt', {}, 'Next run'), h('dd', {}, time(dag.next_run_at) || '—'),
		h('dt', {}, 'Tags'), h('dd', {}, (dag.tags || []).map((t) =>
			h('a', {class: 'tag', href: '#/dags?tags=' + encodeURIComponent(t)}, t))),
		h('dt', {}, 'Tasks'), h('dd', {}, String(page.taskCount)),
		h('dt', {}, 'Max active runs'), h('dd', {}, String(dag.max_active_runs ?? '')),
		h('dt', {}, 'File'), h('dd', {class: 'mono'}, dag.file || '')));
	function setPaused(paused) {
		dag.is_paused = paused;
		el.dataset.paused = String(paused);
		if (!ctx.can.operate) {
			fill(toggle, badge(paused ? 'paused' : 'active'));
			return;
		}
		fill(toggle, action(paused ? 'unpause' : 'pause', paused ? 'Unpause' : 'Pause', async (e) => {
			e.target.disabled = true;
			try {
				const r = await api.request(api.path('dags', dag.dag_id),
					{method: 'PATCH', body: {is_paused: !paused}});
				setPaused(r.data.is_paused);
			} catch (err) {
				e.target.disabled = false;
				ctx.flash('error', explain(err));
			}
		}));
	}
	setPaused(dag.is_paused);
	return {el, setPaused};
}

/* The slicing fields of a trigger body, as comma-separated lists. */
const SLICES = [
	['tags', 'Tags'], ['task_ids', 'Task ids'], ['from_tasks', 'From tasks'],
	['to_tasks', 'To tasks'], ['from_inputs', 'From inputs'], ['to_outputs', 'To outputs'],
];

/*
 * <form data-action="trigger">: conf is posted exactly as the run's conf;
 * empty fields are not sent.
 */
function triggerForm(page) {
	const {dag, ctx} = page;
	const out = h('div', {class: 'wide', 'aria-live': 'polite'});
	const params = dag.params && Object.keys(dag.params).length ?
		JSON.stringify(dag.params, null, 2) : '{}';
	const form = h('form', {class: 'trigger', dataset: {action: 'trigger'},
		onsubmit: submit},
	h('label', {}, 'Run id (optional)', h('input', {type: 'text', name: 'run_id',
		placeholder: 'generated from the time'})),
	SLICES.map(([name, label]) => h('label', {}, label, h('input', {type: 'text', name,
		placeholder: 'comma-separated'}))),
	h('label', {class: 'check'}, h('input', {type: 'checkbox', name: 'only_missing_outputs'}),
		'Only missing outputs'),
	h('label', {class: 'wide'}, 'Conf (JSON object; overrides the DAG\'s params, which are ' +
		params.replace(/\s+/g, ' ') + ')',
	h('textarea', {name: 'conf', placeholder: params, spellcheck: 'false'})),
	h('div', {class: 'wide'}, h('button', {type: 'submit', class: 'primary'}, 'Trigger')),
	out);

	async function submit(e) {
		e.preventDefault();
		const f = form.elements;
		const body = {};
		const conf = f.conf.value.trim();
		if (conf) {
			try {
				body.conf = JSON.parse(conf);
			} catch (err) {
				fill(out, message('error', 'Conf is not JSON: ' + err.message));
				return;
			}
			if (!body.conf || typeof body.conf !== 'object' || Array.isArray(body.conf)) {
				fill(out, message('error', 'Conf must be a JSON object.'));
				return;
			}
		}
		if (f.run_id.value.trim())
			body.run_id = f.run_id.value.trim();
		for (const [name] of SLICES) {
			const items = f[name].value.split(',').map((s) => s.trim()).filter(Boolean);
			if (items.length)
				body[name] = items;
		}
		if (f.only_missing_outputs.checked)
			body.only_missing_outputs = true;
		const button = form.querySelector('button[type=submit]');
		button.disabled = true;
		try {
			const r = (await api.request(api.path('dags', dag.dag_id, 'runs'),
				{method: 'POST', body})).data;
			fill(out, message('ok', ''));
			out.firstChild.append('Run ', h('a', {href: link('dags', dag.dag_id, 'runs', r.run_id),
				class: 'new-run', dataset: {dagId: dag.dag_id, runId: r.run_id, state: r.state}},
			r.run_id), ' queued.');
			f.run_id.value = '';
		} catch (err) {
			fill(out, message('error', explain(err)));
		} finally {
			button.disabled = false;
		}
	}
	return h('details', {class: 'card', open: true},
		h('summary', {}, 'Trigger a run'), form);
}

/*
 * The grid: one row per task, one column per run (the GRID_RUNS latest,
 * newest right, fewer for a large DAG: at most GRID_CELLS cells, at least
 * 3 runs), as in Airflow's grid view. Loaded once (the runs, then each
 * run's task instances); events add runs and recolour cells.
 */
function makeGrid(page) {
	const {dag} = page;
	const tasks = dag.tasks.map((t) => t.task_id);
	const maxRuns = Math.max(3, Math.min(GRID_RUNS, Math.floor(GRID_CELLS / Math.max(1, tasks.length))));
	const head = h('tr', {}, h('th', {class: 'task'}, h('span', {class: 'muted'}, 'task \\ run')));
	const rows = new Map(tasks.map((t) => [t, h('tr', {dataset: {row: t}},
		h('th', {class: 'task', title: t}, t))]));
	const table = h('table', {class: 'grid'}, h('thead', {}, head), h('tbody', {}, [...rows.values()]));
	const empty = message('info', 'No runs yet: trigger one.');
	const el = h('div', {}, empty, h('div', {class: 'grid-wrap'}, table));
	const runs = new Map();    /* run_id -> {th, bar, cells: Map task -> sq, state} */
	const grid = {el, selected: null};

	function column(runId, state, older) {
		const bar = h('a', {class: 'runbar', href: link('dags', dag.dag_id, 'runs', runId),
			title: `${runId}: ${state}`, style: 'height: 28px',
			dataset: {dagId: dag.dag_id, runId, state}});
		const th = h('th', {dataset: {col: runId}, onclick: (e) => {
			if (!e.ctrlKey && !e.metaKey) {
				e.preventDefault();
				select(runId);
			}
		}}, bar);
		const col = {th, bar, cells: new Map(), state};
		const ref = older ? head.children[1] || null : null;
		head.insertBefore(th, ref);
		for (const [t, tr] of rows) {
			const sq = h('a', {class: 'sq', href: link('dags', dag.dag_id, 'runs', runId, 'tasks', t),
				title: `${t} in ${runId}`,
				dataset: {dagId: dag.dag_id, runId, taskId: t, state: 'none'}});
			col.cells.set(t, sq);
			tr.insertBefore(h('td', {dataset: {col: runId}}, sq), older ? tr.children[1] || null : null);
		}
		runs.set(runId, col);
		empty.remove();
		while (runs.size > maxRuns)
			drop(older ? head.lastElementChild.dataset.col : head.children[1].dataset.col);
		return col;
	}
	function drop(runId) {
		for (const el of table.querySelectorAll(`[data-col="${CSS.escape(runId)}"]`))
			el.remove();
		runs.delete(runId);
	}
	function setCell(col, taskId, state, tryNumber) {
		const sq = col.cells.get(taskId);
		if (!sq)
			return;
		sq.dataset.state = state;
		sq.title = `${taskId} in ${sq.dataset.runId}: ${state}` + (tryNumber ? ` (try ${tryNumber})` : '');
	}
	/* Marks runId the selected run: the graph shows its states. */
	function select(runId) {
		grid.selected = runId;
		for (const th of head.querySelectorAll('th[data-col]'))
			th.classList.toggle('selected', th.dataset.col === runId);
		const col = runs.get(runId);
		const states = new Map();
		if (col)
			for (const [t, sq] of col.cells)
				states.set(t, sq.dataset.state);
		page.graph?.show(runId, states);
	}
	grid.select = select;
	grid.load = async () => {
		const list = await api.request(api.path('dags', dag.dag_id, 'runs'),
			{query: {limit: maxRuns, order_by: '-queued_at'}});
		for (const r of list.data)        /* newest first: each goes left */
			if (!runs.has(r.run_id))
				column(r.run_id, r.state, true).bar.dataset.state = r.state;
		await Promise.all(list.data.map(async (r) => {
			const col = runs.get(r.run_id);
			if (!col)
				return;
			const tis = await api.request(api.path('dags', dag.dag_id, 'runs', r.run_id, 'tasks'),
				{query: {limit: 1000}});
			for (const ti of tis.data)
				if (col.cells.get(ti.task_id)?.dataset.state === 'none')
					setCell(col, ti.task_id, ti.state, ti.try_number);
		}));
		const newest = head.lastElementChild?.dataset.col;
		if (newest && !grid.selected)
			select(newest);
	};
	grid.runState = (d) => {
		let col = runs.get(d.run_id);
		if (!col)
			col = column(d.run_id, d.state, false);
		col.state = d.state;
		col.bar.dataset.state = d.state;
		col.bar.title = `${d.run_id}: ${d.state}`;
		if (!grid.selected || (d.previous_state === null && grid.selected === newestBefore(d.run_id)))
			select(d.run_id);
	};
	function newestBefore(runId) {
		const ths = [...head.querySelectorAll('th[data-col]')].map((th) => th.dataset.col);
		return ths[ths.indexOf(runId) - 1];
	}
	grid.taskState = (d) => {
		let col = runs.get(d.run_id);
		if (!col)
			col = column(d.run_id, 'running', false);
		setCell(col, d.task_id, d.state, d.try_number);
	};
	grid.latestState = () => head.lastElementChild?.querySelector('.runbar')?.dataset.state || 'none';
	return grid;
}

/*
 * The graph: the API's Graphviz SVG (layout by Graphviz, not by us), each
 * node <g id="task-ID"> given the data-* hooks and recoloured through
 * data-state from the selected run's task states.
 */
function makeGraph(page) {
	const {dag} = page;
	const el = h('div', {class: 'graph'}, h('p', {class: 'loading'}, 'Loading the graph…'));
	const caption = h('span', {class: 'muted'});
	/* A large DAG fits its box unreadably small: its actual size scrolls. */
	const zoom = h('button', {type: 'button', class: 'zoom', onclick: () => {
		fill(zoom, el.classList.toggle('actual') ? 'Fit' : 'Actual size');
	}}, 'Actual size');
	const nodes = new Map();
	const graph = {el, caption, zoom, runId: null, pending: null};
	graph.load = async () => {
		try {
			const text = await api.svg(api.path('dags', dag.dag_id, 'graph'));
			const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
			const svg = doc.documentElement;
			if (svg.nodeName !== 'svg')
				throw new Error('the graph is not SVG');
			for (const bad of svg.querySelectorAll('script, foreignObject'))
				bad.remove();
			fill(el, document.importNode(svg, true));
			for (const g of el.querySelectorAll('g[id^="task-"]')) {
				const taskId = g.id.slice(5);
				g.classList.add('node');
				g.dataset.dagId = dag.dag_id;
				g.dataset.taskId = taskId;
				g.dataset.state = 'none';
				g.addEventListener('click', () => {
					if (graph.runId)
						location.hash = link('dags', dag.dag_id, 'runs', graph.runId, 'tasks', taskId);
				});
				nodes.set(taskId, g);
			}
			if (graph.pending)
				graph.show(...graph.pending);
		} catch (e) {
			fill(el, message('info', 'No graph from the server (GET /api/v1/dags/:id/graph): ' +
				explain(e)),
			taskList(dag));
		}
	};
	graph.show = (runId, states) => {
		graph.runId = runId;
		graph.pending = [runId, states];
		fill(caption, runId ? `(run ${runId})` : '');
		for (const [t, g] of nodes) {
			g.dataset.runId = runId || '';
			g.dataset.state = states.get(t) || 'none';
		}
	};
	graph.taskState = (taskId, state) => {
		graph.pending?.[1].set(taskId, state);
		const g = nodes.get(taskId);
		if (g)
			g.dataset.state = state;
	};
	return graph;
}

/* Without a graph: the tasks with their upstream tasks, as a list. */
function taskList(dag) {
	return h('ul', {}, dag.tasks.map((t) => h('li', {},
		h('code', {}, t.task_id),
		t.upstream.length ? h('span', {class: 'muted'}, ' after ' + t.upstream.join(', ')) : null)));
}

/*
 * The runs list: a state filter and pages of LIST_PAGE runs, newest first
 * (keyset cursors where the server gives them, else offsets). Events move
 * states and times; a new run appears on the first page.
 */
function makeList(page) {
	const {dag, ctx} = page;
	const tbody = h('tbody');
	const pager = h('div', {class: 'pager'});
	const filter = h('select', {name: 'state', onchange: () => {
		/* a cursor belongs to the filter it was made for: back to the first page */
		cursors.length = 0;
		here = null;
		offset = 0;
		list.load();
	}}, ['', 'queued', 'running', 'success', 'failed', 'cancelled'].map((s) =>
		h('option', {value: s}, s || 'any state')));
	const el = h('div', {},
		h('div', {class: 'toolbar'}, h('label', {}, 'State ', filter)),
		h('table', {class: 'runs'}, h('thead', {}, h('tr', {},
			h('th', {}, 'Run'), h('th', {}, 'State'), h('th', {}, 'Type'), h('th', {}, 'Queued'),
			h('th', {}, 'Started'), h('th', {}, 'Ended'), h('th', {}, 'Duration'),
			h('th', {}, 'Conf'), h('th', {}, ''))), tbody),
		pager);
	const rows = new Map();
	const cursors = [];   /* the cursors of the pages before this one */
	let offset = 0, here = null, meta = null;
	const list = {el};

	list.load = async () => {
		const query = {limit: LIST_PAGE, order_by: '-queued_at', state: filter.value};
		if (here)
			query.cursor = here;
		else
			query.offset = offset;
		let r;
		try {
			r = await api.request(api.path('dags', dag.dag_id, 'runs'), {query});
		} catch (e) {
			fill(tbody, h('tr', {}, h('td', {colspan: 9}, message('error', explain(e)))));
			return;
		}
		meta = r.meta;
		rows.clear();
		fill(tbody, r.data.map((run) => row(run)));
		if (!r.data.length)
			tbody.append(h('tr', {}, h('td', {colspan: 9, class: 'muted'}, 'No runs.')));
		paging();
	};
	function paging() {
		const first = !here && offset === 0;
		const hasNext = 'next_cursor' in meta ? !!meta.next_cursor :
			offset + meta.limit < meta.total;
		fill(pager,
			!first ? h('button', {type: 'button', onclick: () => {
				if ('next_cursor' in meta)
					here = cursors.pop() || null;
				else
					offset = Math.max(0, offset - LIST_PAGE);
				list.load();
			}}, '← newer') : null,
			`${meta.total ?? '?'} run${meta.total === 1 ? '' : 's'}`,
			hasNext ? h('button', {type: 'button', onclick: () => {
				if ('next_cursor' in meta) {
					cursors.push(here);
					here = meta.next_cursor;
				} else {
					offset += LIST_PAGE;
				}
				list.load();
			}}, 'older →') : null);
	}
	function row(run) {
		const acts = h('td', {class: 'actions'});
		const tr = h('tr', {dataset: {dagId: dag.dag_id, runId: run.run_id, state: run.state}},
			h('td', {class: 'nowrap'}, h('a', {href: link('dags', dag.dag_id, 'runs', run.run_id)}, run.run_id)),
			h('td', {}, h('span', {class: 'badge own', dataset: {state: run.state}}, run.state)),
			h('td', {}, run.run_type || ''),
			h('td', {}, time(run.queued_at)),
			h('td', {class: 'started'}, time(run.started_at)),
			h('td', {class: 'ended'}, time(run.ended_at)),
			h('td', {class: 'duration'}, duration(run.duration_ms)),
			h('td', {class: 'mono'}, run.conf && Object.keys(run.conf).length ?
				JSON.stringify(run.conf).slice(0, 80) : ''),
			acts);
		const entry = {tr, acts, run};
		rows.set(run.run_id, entry);
		fillActions(entry);
		return tr;
	}
	function fillActions(entry) {
		fill(entry.acts, ctx.can.operate ? runActions(ctx, entry.run, (r) => update(entry, r),
			{few: true}) : null);
	}
	function update(entry, run) {
		Object.assign(entry.run, run);
		const r = entry.run;
		entry.tr.dataset.state = r.state;
		const b = entry.tr.querySelector('.badge.own');
		b.dataset.state = r.state;
		b.textContent = r.state;
		fill(entry.tr.querySelector('.started'), time(r.started_at));
		fill(entry.tr.querySelector('.ended'), time(r.ended_at));
		fill(entry.tr.querySelector('.duration'), duration(r.duration_ms));
		fillActions(entry);
	}
	list.runState = (d) => {
		if (!meta)
			return;
		const entry = rows.get(d.run_id);
		const patch = {state: d.state};
		if (d.state === 'running' && d.previous_state === 'queued') {
			patch.started_at = d.ts;
			patch.ended_at = null;
			patch.duration_ms = null;
		}
		if (finishedRun.has(d.state)) {
			patch.ended_at = d.ts;
			const start = entry?.run.started_at;
			patch.duration_ms = start ? Date.parse(d.ts) - Date.parse(start) : null;
		}
		if (entry) {
			update(entry, patch);
			return;
		}
		const onFirst = !here && offset === 0;
		if (d.previous_state === null && onFirst && (!filter.value || filter.value === d.state)) {
			const tr = row({run_id: d.run_id, dag_id: dag.dag_id, state: d.state,
				run_type: d.run_type || '', queued_at: d.ts, conf: null});
			tbody.querySelector('td[colspan]')?.closest('tr').remove();
			tbody.prepend(tr);
			while (rows.size > LIST_PAGE) {
				const last = tbody.lastElementChild;
				rows.delete(last.dataset.runId);
				last.remove();
			}
			meta.total = (meta.total ?? 0) + 1;
			paging();
		}
	};
	return list;
}

/* The DAG file, loaded when opened. */
function source(page) {
	const pre = h('pre', {class: 'source'}, 'Loading…');
	let loaded = false;
	return h('details', {class: 'card source-box', ontoggle: async (e) => {
		if (!e.target.open || loaded)
			return;
		loaded = true;
		try {
			const r = await api.text(api.path('dags', page.dag.dag_id, 'source'));
			fill(pre, r.text);
		} catch (err) {
			fill(pre, 'No source from the server (GET /api/v1/dags/:id/source): ' + explain(err));
		}
	}}, h('summary', {}, 'Source ', h('span', {class: 'muted mono'}, page.dag.file || '')), pre);
}
