/*
 * pages/dags.js - #/dags: every DAG (paged, filtered by tags and paused),
 * its latest runs' states, schedule and next run, a pause toggle, and the
 * import errors. Live: run.state and dag.updated events update the rows.
 */
import * as api from '../api.js';
import {h, fill, link, time, explain, message, action} from '../dom.js';

const PAGE = 50;          /* DAGs per page */
const RECENT = 12;        /* run squares per DAG */

export async function render(ctx) {
	const q = ctx.query;
	const tags = (q.get('tags') || '').split(',').filter(Boolean);
	const paused = q.get('paused') || '';
	const offset = Math.max(0, parseInt(q.get('offset') || '0', 10) || 0);
	const rows = new Map();   /* dag_id -> {tr, squares} */

	await ctx.live({types: 'run.state,dag.updated'}, (type, d) => {
		const row = rows.get(d.dag_id);
		if (!row)
			return;
		if (type === 'dag.updated' && typeof d.is_paused === 'boolean')
			setPaused(row, d.is_paused);
		else if (type === 'run.state')
			runState(row, d.run_id, d.state);
	});

	const [list, errors] = await Promise.all([
		api.request('dags', {query: {tags: tags.join(','), paused, limit: PAGE, offset}}),
		api.request('import-errors', {query: {limit: 100}}).catch((e) => ({error: e})),
	]);
	if (ctx.stale())
		return;

	const tbody = h('tbody');
	for (const dag of list.data) {
		const row = dagRow(ctx, dag);
		rows.set(dag.dag_id, row);
		tbody.append(row.tr);
	}
	fill(ctx.root,
		h('h1', {}, 'DAGs'),
		toolbar(tags, paused),
		list.data.length ? h('table', {class: 'dags'},
			h('thead', {}, h('tr', {},
				h('th', {}, 'Active'), h('th', {}, 'DAG'), h('th', {}, 'Tags'),
				h('th', {}, 'Schedule'), h('th', {}, 'Next run'), h('th', {}, 'Tasks'),
				h('th', {}, 'Latest runs (newest right)'))),
			tbody) :
			message('info', 'No DAG matches. DAG files live in the project\'s dags/ folder.'),
		pager(list.meta, tags, paused),
		importErrors(errors));
	ctx.ready();

	/* The latest runs of each DAG on this page: one request per DAG, once. */
	await Promise.all(list.data.map(async (dag) => {
		try {
			const runs = await api.request(api.path('dags', dag.dag_id, 'runs'),
				{query: {limit: RECENT, order_by: '-queued_at'}});
			const row = rows.get(dag.dag_id);
			for (const r of runs.data)       /* newest first: each goes left */
				if (!row.squares.has(r.run_id))
					runState(row, r.run_id, r.state, true);
		} catch { /* the row stays without squares */ }
	}));
}

/* The filter bar: tags (comma-separated) and active/paused. */
function toolbar(tags, paused) {
	const input = h('input', {type: 'text', name: 'tags', placeholder: 'tags, e.g. ml,iris',
		value: tags.join(',')});
	const sel = h('select', {name: 'paused'},
		h('option', {value: ''}, 'all'),
		h('option', {value: 'false'}, 'active'),
		h('option', {value: 'true'}, 'paused'));
	sel.value = paused;
	const go = (e) => {
		e.preventDefault();
		location.hash = hashFor(input.value.split(',').map((s) => s.trim()).filter(Boolean),
			sel.value, 0);
	};
	return h('form', {class: 'toolbar', onsubmit: go},
		h('label', {}, 'Tags ', input), h('label', {}, 'Show ', sel),
		h('button', {type: 'submit'}, 'Filter'),
		tags.length || paused ? h('a', {href: '#/dags'}, 'clear filters') : null);
}

function hashFor(tags, paused, offset) {
	const p = new URLSearchParams();
	if (tags.length)
		p.set('tags', tags.join(','));
	if (paused)
		p.set('paused', paused);
	if (offset)
		p.set('offset', offset);
	const s = p.toString();
	return '#/dags' + (s ? '?' + s : '');
}

function pager(meta, tags, paused) {
	const {total, limit, offset} = meta;
	if (total <= limit && !offset)
		return h('p', {class: 'muted'}, `${total} DAG${total === 1 ? '' : 's'}`);
	return h('div', {class: 'pager'},
		offset > 0 ? h('a', {href: hashFor(tags, paused, Math.max(0, offset - limit))}, '← previous') : null,
		`${offset + 1}–${Math.min(offset + limit, total)} of ${total}`,
		offset + limit < total ? h('a', {href: hashFor(tags, paused, offset + limit)}, 'next →') : null);
}

/* One DAG's row: data-dag-id, data-paused, data-state (its latest run's). */
function dagRow(ctx, dag) {
	const squares = new Map();
	const recent = h('span', {class: 'recent'});
	const toggle = h('td', {class: 'toggle'});
	const tr = h('tr', {dataset: {dagId: dag.dag_id, paused: String(dag.is_paused), state: 'none'}},
		toggle,
		h('td', {}, h('a', {href: link('dags', dag.dag_id)}, h('strong', {}, dag.dag_id)),
			dag.description ? h('div', {class: 'muted'}, dag.description) : null),
		h('td', {}, (dag.tags || []).map((t) =>
			h('a', {class: 'tag', href: hashFor([t], '', 0)}, t))),
		h('td', {class: 'mono'}, dag.schedule || h('span', {class: 'muted'}, 'manual')),
		h('td', {}, dag.is_paused && dag.next_run_at ? h('span', {class: 'muted'}, 'paused') :
			time(dag.next_run_at)),
		h('td', {}, dag.task_count ?? ''),
		h('td', {}, recent));
	const row = {tr, squares, recent, toggle, dag, ctx};
	setPaused(row, dag.is_paused);
	return row;
}

/* Shows the pause state and the toggle that flips it (operators only). */
function setPaused(row, paused) {
	row.tr.dataset.paused = String(paused);
	row.dag.is_paused = paused;
	if (!row.ctx.can.operate) {
		fill(row.toggle, paused ? 'paused' : 'active');
		return;
	}
	const name = paused ? 'unpause' : 'pause';
	fill(row.toggle, action(name, paused ? 'Unpause' : 'Pause', async (e) => {
		e.target.disabled = true;
		try {
			const r = await api.request(api.path('dags', row.dag.dag_id),
				{method: 'PATCH', body: {is_paused: !paused}});
			setPaused(row, r.data.is_paused);
		} catch (err) {
			e.target.disabled = false;
			row.ctx.flash('error', explain(err));
		}
	}, {title: paused ? 'Paused: no scheduled runs start' : 'Active', 'aria-pressed': String(!paused)}));
}

/*
 * Adds or updates a run's square (a new run goes right, an older one from
 * the first load left); the rightmost square sets the row's data-state.
 */
function runState(row, runId, state, older = false) {
	let sq = row.squares.get(runId);
	if (!sq) {
		sq = h('a', {class: 'sq', href: link('dags', row.dag.dag_id, 'runs', runId),
			title: runId, dataset: {dagId: row.dag.dag_id, runId, state}});
		row.squares.set(runId, sq);
		if (older)
			row.recent.prepend(sq);
		else
			row.recent.append(sq);
		while (row.recent.children.length > RECENT) {
			const first = row.recent.firstElementChild;
			row.squares.delete(first.dataset.runId);
			first.remove();
		}
	}
	sq.dataset.state = state;
	sq.title = `${runId}: ${state}`;
	const last = row.recent.lastElementChild;
	row.tr.dataset.state = last ? last.dataset.state : 'none';
}

function importErrors(errors) {
	if (errors.error)
		return h('p', {class: 'muted'}, 'Import errors: ' + explain(errors.error));
	if (!errors.data.length)
		return null;
	return h('section', {class: 'import-errors'},
		h('h2', {}, `Import errors (${errors.meta.total})`),
		h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Line'),
			h('th', {}, 'Message'))),
		h('tbody', {}, errors.data.map((e) => h('tr', {class: 'import-error'},
			h('td', {class: 'mono'}, e.file), h('td', {}, e.line ?? ''),
			h('td', {}, message('error', e.message)))))));
}
