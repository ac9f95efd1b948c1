/*
 * pages/system.js - #/system: health, version and metrics. Live: run and
 * task events re-read the metrics, at most once every two seconds; health
 * (the runner's heartbeat) is re-read every ten seconds.
 */
import * as api from '../api.js';
import {h, fill, time, badge, explain, message} from '../dom.js';

export async function render(ctx) {
	const health = h('section', {class: 'card'}, h('h2', {}, 'Health'));
	const metrics = h('section', {class: 'card'}, h('h2', {}, 'Metrics'));
	const version = h('span', {class: 'muted'});
	let pending = null;
	await ctx.live({types: 'run.state,task.state'}, () => {
		if (!pending)
			pending = setTimeout(() => {
				pending = null;
				loadMetrics();
			}, 2000);
	});
	fill(ctx.root, h('h1', {}, 'System ', version), h('div', {class: 'two'}, health, metrics),
		h('p', {class: 'muted'}, 'Prometheus metrics: ', h('a', {href: new URL('../metrics', location.href).href},
			'/metrics'), '.'));

	async function loadHealth() {
		try {
			const d = (await api.request('health')).data;
			fill(health, h('h2', {}, 'Health ', badge(d.status)),
				h('dl', {class: 'facts', dataset: {health: d.status}},
					h('dt', {}, 'Status'), h('dd', {}, d.status),
					h('dt', {}, 'Database'), h('dd', {}, d.database?.status ?? ''),
					h('dt', {}, 'Runner'), h('dd', {}, d.runner?.status ?? ''),
					h('dt', {}, 'Runner pid'), h('dd', {}, String(d.runner?.pid ?? '—')),
					h('dt', {}, 'Last heartbeat'), h('dd', {}, time(d.runner?.last_heartbeat) || '—'),
					h('dt', {}, 'Uptime'), h('dd', {}, `${d.uptime_s ?? '?'} s`)));
		} catch (e) {
			fill(health, h('h2', {}, 'Health'), message('error', explain(e)));
		}
	}
	async function loadMetrics() {
		try {
			const d = (await api.request('metrics')).data;
			const counts = (obj) => h('table', {}, h('tbody', {}, Object.entries(obj || {}).map(([k, v]) =>
				h('tr', {}, h('td', {}, badge(k)), h('td', {}, String(v))))));
			fill(metrics, h('h2', {}, 'Metrics'),
				h('div', {class: 'two'},
					h('div', {}, h('h3', {}, 'Runs'), counts(d.runs)),
					h('div', {}, h('h3', {}, 'Task instances'), counts(d.tasks))),
				h('dl', {class: 'facts'},
					h('dt', {}, 'Queued runs'), h('dd', {}, String(d.queue_depth?.runs ?? '')),
					h('dt', {}, 'Queued tasks'), h('dd', {}, String(d.queue_depth?.tasks ?? '')),
					h('dt', {}, 'Runner heartbeat age'),
					h('dd', {}, d.runner?.heartbeat_age_s != null ? `${d.runner.heartbeat_age_s} s` : '—')),
				h('h3', {}, 'Pools'),
				h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Pool'), h('th', {}, 'Slots'),
					h('th', {}, 'Running'), h('th', {}, 'Queued'), h('th', {}, 'Open'))),
				h('tbody', {}, (d.pools || []).map((p) => h('tr', {dataset: {pool: p.name}},
					h('td', {}, p.name), h('td', {}, String(p.slots)), h('td', {}, String(p.running_slots)),
					h('td', {}, String(p.queued_slots)), h('td', {}, String(p.open_slots)))))));
		} catch (e) {
			fill(metrics, h('h2', {}, 'Metrics'), message('error', explain(e)));
		}
	}
	try {
		const v = (await api.request('version')).data;
		fill(version, `pipewright ${v.version} (API ${v.api_version})`);
	} catch { /* the title stays short */ }
	await Promise.all([loadHealth(), loadMetrics()]);
	ctx.ready();
	const timer = setInterval(loadHealth, 10000);
	return () => {
		clearInterval(timer);
		clearTimeout(pending);
	};
}
