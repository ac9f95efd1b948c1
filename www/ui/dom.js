/*
 * dom.js - small helpers the pages share: an element builder, times and
 * durations, state badges, messages, and the data-* hooks of DESIGN.md
 * section 9 (data-dag-id, data-run-id, data-task-id, data-state).
 */

/*
 * h('tr', {dataset: {dagId: 'x'}, class: 'a', onclick: fn}, child, ...):
 * an element. Attributes named on* become listeners; `dataset` sets data-*;
 * children may be strings, nodes, arrays, null or false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
	const el = tag.includes(':') ?
		document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1]) :
		document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null || v === false)
			continue;
		if (k === 'dataset')
			Object.assign(el.dataset, v);
		else if (k.startsWith('on') && typeof v === 'function')
			el.addEventListener(k.slice(2), v);
		else if (k === 'value' || k === 'checked' || k === 'disabled')
			el[k] = v;
		else
			el.setAttribute(k, v === true ? '' : String(v));
	}
	append(el, children);
	return el;
}

function append(el, children) {
	for (const c of children) {
		if (c === null || c === undefined || c === false)
			continue;
		if (Array.isArray(c))
			append(el, c);
		else
			el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
}

/* Replaces el's children. */
export function fill(el, ...children) {
	el.replaceChildren();
	append(el, children);
	return el;
}

/* The hash link of a page: link('dags', id, 'runs', run). */
export function link(...segments) {
	return '#/' + segments.map((s) => encodeURIComponent(String(s))).join('/');
}

/* "2026-12-06 15:11:45" in the viewer's time zone, or '' for null. */
export function time(iso) {
	if (!iso)
		return '';
	const d = new Date(iso);
	if (Number.isNaN(d.getTime()))
		return iso;
	const p = (n) => String(n).padStart(2, '0');
	return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
		`${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/* 1234 -> "1.2 s", 95000 -> "1 min 35 s"; '' for null. */
export function duration(ms) {
	if (ms === null || ms === undefined)
		return '';
	if (ms < 1000)
		return `${ms} ms`;
	const s = ms / 1000;
	if (s < 60)
		return `${s.toFixed(1)} s`;
	const m = Math.floor(s / 60);
	if (m < 60)
		return `${m} min ${Math.round(s % 60)} s`;
	return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/* A state badge; its colour comes from the CSS on data-state. */
export function badge(state) {
	return h('span', {class: 'badge', dataset: {state: state || 'none'}}, state || 'none');
}

/* Sets data-state on el and on its badges (the ones marked .badge). */
export function setState(el, state) {
	el.dataset.state = state || 'none';
	for (const b of el.querySelectorAll(':scope .badge.own')) {
		b.dataset.state = state || 'none';
		b.textContent = state || 'none';
	}
}

/* A message box; kind is 'error', 'info' or 'ok'. */
export function message(kind, text) {
	return h('div', {class: 'msg ' + kind, role: kind === 'error' ? 'alert' : 'status'}, text);
}

/* The words of an ApiError for a user; 401/403 say what to do. */
export function explain(err) {
	if (err.status === 401)
		return 'You are not signed in (401): the server needs a user for this. ' + err.message;
	if (err.status === 403)
		return 'Your role does not allow this (403): ' + err.message;
	if (err.status === 404 && err.code === 'not_found')
		return 'Not found: ' + err.message;
	return err.message || String(err);
}

/* A button for an action hook: data-action, a label, a handler. */
export function action(name, label, handler, extra = {}) {
	return h('button', {type: 'button', class: 'action', dataset: {action: name}, ...extra,
		onclick: handler}, label);
}

/* States after which nothing more happens to a run or a task. */
export const finishedRun = new Set(['success', 'failed', 'cancelled']);
export const finishedTask = new Set(['success', 'failed', 'upstream_failed', 'skipped',
	'cancelled']);
