/*
 * pages/pools.js - #/pools: every pool with its slots in use; admins
 * create, resize, describe and delete pools. Live: pool.updated events
 * and task state changes (which move slot counts) re-read the list, at
 * most once a second; a row being edited is kept as it is until saved or
 * cancelled, so a live update does not throw the user's typing away.
 */
import * as api from '../api.js';
import {h, fill, explain, message, action} from '../dom.js';

export async function render(ctx) {
	const tbody = h('tbody');
	const out = h('div');
	const editing = new Map();	/* pool name -> its row, while edited */
	let timer = null;
	const reload = () => {
		if (!timer)
			timer = setTimeout(() => {
				timer = null;
				load();
			}, 1000);
	};
	async function load() {
		try {
			const r = await api.request('pools', {query: {limit: 1000}});
			fill(tbody, r.data.map((p) => editing.get(p.name) || row(ctx, p, load, editing)));
		} catch (e) {
			fill(out, message('error', explain(e)));
		}
	}
	await ctx.live({types: 'pool.updated,task.state'}, reload);
	fill(ctx.root, h('h1', {}, 'Pools'),
		h('p', {class: 'muted'}, 'A task takes pool_slots of its pool while it runs; ' +
			'more wait in queued.'),
		out,
		h('table', {class: 'pools'}, h('thead', {}, h('tr', {},
			h('th', {}, 'Pool'), h('th', {}, 'Slots'), h('th', {}, 'Running'), h('th', {}, 'Queued'),
			h('th', {}, 'Open'), h('th', {}, 'Description'), h('th', {}, ''))), tbody),
		ctx.can.admin ? createForm(ctx, load) : null);
	await load();
	ctx.ready();
	return () => clearTimeout(timer);
}

function row(ctx, p, reload, edited) {
	const tr = h('tr', {dataset: {pool: p.name}});
	const cells = (editing) => {
		if (editing)
			edited.set(p.name, tr);
		else
			edited.delete(p.name);
		const slots = h('input', {type: 'number', name: 'slots', min: 0, value: String(p.slots),
			style: 'width: 6em'});
		const desc = h('input', {type: 'text', name: 'description', value: p.description || ''});
		fill(tr,
			h('td', {class: 'mono'}, p.name),
			h('td', {}, editing ? slots : String(p.slots)),
			h('td', {}, String(p.running_slots ?? p.occupied_slots ?? 0)),
			h('td', {}, String(p.queued_slots ?? 0)),
			h('td', {}, String(p.open_slots ?? '')),
			h('td', {}, editing ? desc : p.description || ''),
			h('td', {class: 'actions'}, !ctx.can.admin ? null : editing ? [
				action('save', 'Save', async () => {
					try {
						await api.request(api.path('pools', p.name), {method: 'PATCH',
							body: {slots: Number(slots.value), description: desc.value}});
						edited.delete(p.name);
						reload();
					} catch (e) {
						ctx.flash('error', explain(e));
					}
				}),
				action('cancel-edit', 'Cancel', () => cells(false)),
			] : [
				action('edit', 'Edit', () => cells(true)),
				p.name === 'default_pool' ? null : action('delete', 'Delete', async () => {
					if (!window.confirm(`Delete pool ${p.name}?`))
						return;
					try {
						await api.request(api.path('pools', p.name), {method: 'DELETE'});
						reload();
					} catch (e) {
						ctx.flash('error', explain(e));
					}
				}),
			]));
	};
	cells(false);
	return tr;
}

function createForm(ctx, reload) {
	const form = h('form', {class: 'toolbar card', dataset: {action: 'create-pool'},
		onsubmit: async (e) => {
			e.preventDefault();
			const f = form.elements;
			const body = {name: f.name.value.trim(), slots: Number(f.slots.value)};
			if (f.description.value.trim())
				body.description = f.description.value.trim();
			try {
				await api.request('pools', {method: 'POST', body});
				form.reset();
				reload();
			} catch (err) {
				ctx.flash('error', explain(err));
			}
		}},
	h('strong', {}, 'New pool'),
	h('input', {type: 'text', name: 'name', placeholder: 'name', required: true,
		pattern: '[A-Za-z0-9][A-Za-z0-9_.:+\\-]*'}),
	h('input', {type: 'number', name: 'slots', placeholder: 'slots', min: 0, required: true,
		style: 'width: 7em'}),
	h('input', {type: 'text', name: 'description', placeholder: 'description'}),
	h('button', {type: 'submit', class: 'primary'}, 'Create'));
	return form;
}
