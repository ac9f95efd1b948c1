/*
 * api.js - the one module that talks to pipewright: JSON requests to the
 * public API and the page's single EventSource. Every URL is derived from
 * the page's own URL, so the dashboard works under any mount prefix
 * (/ui/ -> /api/v1/, /prefix/ui/ -> /prefix/api/v1/).
 */

/* The mount point: the folder above /ui/. */
const root = new URL('../', location.href);
export const apiBase = new URL('api/v1/', root);
export const docsUrl = new URL('docs', root).href;

/* An answer other than 2xx: status, the envelope's code and message. */
export class ApiError extends Error {
	constructor(status, code, message) {
		super(message || `HTTP ${status}`);
		this.status = status;
		this.code = code || 'http_' + status;
	}
}

/* Joins path segments into an API path, each segment encoded. */
export function path(...segments) {
	return segments.map((s) => encodeURIComponent(String(s))).join('/');
}

/* The absolute URL of an API path with a query ({k: v}; null/'' values left out). */
export function url(rel, query = {}) {
	const u = new URL(rel, apiBase);
	for (const [k, v] of Object.entries(query)) {
		if (v !== undefined && v !== null && v !== '')
			u.searchParams.set(k, String(v));
	}
	return u.href;
}

/* Reads an error envelope (or any body) into an ApiError. */
async function failure(res) {
	let code = null, message = null;
	try {
		const body = await res.json();
		code = body?.error?.code;
		message = body?.error?.message;
	} catch {
		/* not JSON: keep the status */
	}
	return new ApiError(res.status, code, message || `${res.status} ${res.statusText}`);
}

/*
 * One JSON request. Resolves to {data, meta}, or to {data: null} for a 204;
 * rejects with an ApiError (network failures too, status 0).
 */
export async function request(rel, {method = 'GET', query, body} = {}) {
	const init = {method, headers: {Accept: 'application/json'}, credentials: 'same-origin'};
	if (body !== undefined) {
		init.headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(body);
	}
	let res;
	try {
		res = await fetch(url(rel, query), init);
	} catch (e) {
		throw new ApiError(0, 'network', 'cannot reach the server: ' + e.message);
	}
	if (!res.ok)
		throw await failure(res);
	if (res.status === 204)
		return {data: null, meta: {}};
	return res.json();
}

/* A text/plain answer (logs, source): {text, headers}. */
export async function text(rel, query) {
	let res;
	try {
		res = await fetch(url(rel, query), {headers: {Accept: 'text/plain'},
			credentials: 'same-origin', cache: 'no-store'});
	} catch (e) {
		throw new ApiError(0, 'network', 'cannot reach the server: ' + e.message);
	}
	if (!res.ok)
		throw await failure(res);
	return {text: await res.text(), headers: res.headers};
}

/*
 * GET rel as a long-lived text answer (a log with follow=true): the
 * Response, its body unread (read it with res.body.getReader()). signal
 * aborts it; an abort rejects with the AbortError itself.
 */
export async function textStream(rel, query, signal) {
	let res;
	try {
		res = await fetch(url(rel, query), {headers: {Accept: 'text/plain'},
			credentials: 'same-origin', cache: 'no-store', signal});
	} catch (e) {
		if (e.name === 'AbortError')
			throw e;
		throw new ApiError(0, 'network', 'cannot reach the server: ' + e.message);
	}
	if (!res.ok)
		throw await failure(res);
	return res;
}

/* The graph SVG as text (?run_id= colours it; the page recolours from events). */
export async function svg(rel, query) {
	const res = await fetch(url(rel, query), {headers: {Accept: 'image/svg+xml'},
		credentials: 'same-origin'});
	if (!res.ok)
		throw await failure(res);
	return res.text();
}

/*
 * What the user may do: GET /me. A server without /me (404) has no roles:
 * everything is allowed, as /me itself answers without settings.roles.
 */
export async function me() {
	try {
		return (await request('me')).data;
	} catch (e) {
		if (e.status === 404)
			return {user: null, role: null, can: {read: true, operate: true, admin: true}};
		throw e;
	}
}

/* ---- the page's one event stream ---- */

const eventTypes = ['run.state', 'task.state', 'dag.updated', 'pool.updated', 'events.missed'];
let source = null;
let current = null;   /* the listen() call whose stream is the page's */
let retry = null;     /* the timer of a reopening */
let received = 0;     /* events brought by the page's streams (eventCount) */
let statusHook = () => {};

/* Called with 'live', 'connecting' or 'off' when the stream's state changes. */
export function onStreamStatus(fn) {
	statusHook = fn;
}

/*
 * Opens the page's stream with filters {dag_id, run_id, types} and calls
 * onEvent(type, data, id) for each message, closing the previous stream
 * first: a page never has two open. The browser resumes after a drop or
 * the server's periodic end with Last-Event-ID by itself; when it gives up
 * (an answer other than 200, e.g. 503 with every stream slot taken) we
 * open it again after a few seconds with ?last_event_id=, so nothing is
 * lost either way. onOpen runs each time the stream is (re)connected,
 * onDown each time the browser gives up on it (a 403 for a user without
 * a role: the page need not wait for a stream that will not come).
 */
export function listen(filters, onEvent, onOpen = () => {}, onDown = () => {}) {
	closeStream();
	let lastId = null, delay = 2000;
	const token = {};
	current = token;
	const open = () => {
		if (current !== token)
			return;
		const es = new EventSource(url('events', lastId ? {...filters, last_event_id: lastId} :
			filters));
		source = es;
		statusHook('connecting');
		es.onopen = () => {
			delay = 2000;
			statusHook('live');
			onOpen();
		};
		es.onerror = () => {
			if (es.readyState !== EventSource.CLOSED) {
				statusHook('connecting');
				return;
			}
			statusHook('off');
			es.close();
			onDown();
			retry = setTimeout(open, delay);
			delay = Math.min(delay * 2, 30000);
		};
		for (const type of eventTypes) {
			es.addEventListener(type, (m) => {
				received++;
				if (m.lastEventId)
					lastId = m.lastEventId;
				let data = {};
				try {
					data = JSON.parse(m.data);
				} catch {
					return;
				}
				onEvent(type, data, m.lastEventId);
			});
		}
	};
	open();
}

/*
 * How many events the page's streams have brought so far. An action
 * compares it before and after its request: an event that came meanwhile
 * is newer than the action's answer.
 */
export function eventCount() {
	return received;
}

/* Closes the page's stream, if any. */
export function closeStream() {
	current = null;
	clearTimeout(retry);
	if (source) {
		source.close();
		source = null;
	}
	statusHook('off');
}
