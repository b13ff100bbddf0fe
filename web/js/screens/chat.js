// The chat: conversation list with search, a new conversation with its
// persona, the messages (Markdown, sanitised), answers streamed as they
// arrive with a stop button, and voice input.
import { h, replace, announce } from '../dom.js';
import { t, tn, fmtNumber, fmtShort, fmtDate } from '../i18n.js';
import { api, get, put, del, qs } from '../api.js';
import { readEvents } from '../sse.js';
import { renderMarkdown } from '../markdown.js';
import * as session from '../session.js';
import { hasPayments } from '../features.js';
import { navigate, setPath, focusHeading } from '../router.js';
import { loading, empty, errorBox, errorText, notice, moreButton } from '../ui.js';
import { voiceButton } from './voice.js';

const MAX_CHARS = 32000;
let personasP = null;

export function personas() {
	if (!personasP) {
		personasP = get('/api/personas', { auth: false }).then((r) => r.personas, (e) => { personasP = null; throw e; });
	}
	return personasP;
}

export function chat({ params, outlet }) {
	const isNew = location.pathname === '/chat/new';
	const convId = params.id || null;
	const st = { conv: null, persona: 'general', stream: null, cursor: null, listCursor: null, q: '' };
	const disposers = [];

	// --- the list --------------------------------------------------------
	const list = h('ul', { class: 'conv-list', 'aria-label': t('chat.conversations') });
	const listState = h('div');
	const listMore = h('div');
	const search = h('input', { type: 'search', id: 'conv-search', placeholder: t('chat.search'), autocomplete: 'off', 'aria-controls': 'conv-list' });
	list.id = 'conv-list';
	const sidebar = h('aside', { class: 'sidebar', 'aria-label': t('chat.conversations') },
		h('div', { class: 'sidebar-head' },
			h('h2', { text: t('chat.conversations') }),
			h('a', { href: '/chat/new', class: 'btn btn-primary btn-small', text: t('chat.new') })),
		h('div', { class: 'search' }, h('label', { for: 'conv-search', class: 'visually-hidden', text: t('chat.search') }), search),
		listState, list, listMore);

	function convItem(c) {
		const current = c.id === (st.conv?.id ?? convId);
		return h('li', { dataset: { id: c.id } },
			h('a', { href: `/chat/${c.id}`, class: 'conv-link', 'aria-current': current ? 'page' : null },
				h('span', { class: 'conv-title', text: c.title || t('chat.untitled') }),
				h('span', { class: 'conv-meta' },
					h('span', { text: personaName(c.persona), dataset: { persona: c.persona } }),
					h('time', { datetime: c.updated_at, text: fmtShort(c.updated_at) }))));
	}

	const personaNames = new Map();
	const personaName = (id) => personaNames.get(id) || id;

	async function loadList(more = false) {
		if (!more) { list.replaceChildren(); replace(listState, loading()); }
		listMore.replaceChildren();
		try {
			const r = await get(`/api/conversations${qs({ limit: 30, q: st.q, cursor: more ? st.listCursor : null })}`);
			listState.replaceChildren();
			if (!more && !r.conversations.length) {
				listState.append(empty(st.q ? t('chat.no_match') : t('chat.no_conversations')));
			}
			list.append(...r.conversations.map(convItem));
			st.listCursor = r.next_cursor;
			if (r.next_cursor) listMore.append(moreButton(() => loadList(true)));
		} catch (e) {
			replace(listState, errorBox(e, () => loadList(more)));
		}
	}

	let searchTimer;
	search.addEventListener('input', () => {
		clearTimeout(searchTimer);
		searchTimer = setTimeout(() => { st.q = search.value.trim(); loadList(); }, 250);
	});

	// --- the thread ------------------------------------------------------
	const title = h('h1', { class: 'thread-title', text: isNew ? t('chat.new_title') : convId ? t('common.loading') : t('chat.title') });
	const headTools = h('div', { class: 'thread-tools' });
	const back = h('a', { href: '/chat', class: 'back', text: t('chat.back') });
	const messages = h('ol', { class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('chat.messages') });
	const earlier = h('div', { class: 'earlier' });
	const threadState = h('div', { class: 'thread-state' });
	const scroller = h('div', { class: 'scroller' }, earlier, threadState, messages);
	const status = h('p', { class: 'turn-status', role: 'status', 'aria-live': 'polite' });
	const alerts = h('div', { class: 'turn-alerts' });
	const box = h('textarea', { id: 'composer-input', name: 'content', rows: 1, maxlength: MAX_CHARS, required: true,
		placeholder: t('chat.placeholder'), 'aria-describedby': 'composer-help', enterkeyhint: 'send' });
	const sendBtn = h('button', { type: 'submit', class: 'btn btn-primary send' }, t('chat.send'));
	const stopBtn = h('button', { type: 'button', class: 'btn btn-danger stop', hidden: true }, h('span', { class: 'icon icon-stop', 'aria-hidden': 'true' }), t('chat.stop'));
	const costNote = h('span', { class: 'cost' });
	const voice = voiceButton((text) => {
		box.value = box.value ? `${box.value.trimEnd()} ${text}` : text;
		box.focus();
	}, (msg) => showAlert(notice(msg, 'error')));
	const composer = h('form', { class: 'composer', 'aria-label': t('chat.composer') },
		h('label', { for: 'composer-input', class: 'visually-hidden', text: t('chat.message_label') }),
		h('div', { class: 'composer-row' }, box, voice?.button, sendBtn, stopBtn),
		h('p', { class: 'composer-help', id: 'composer-help' }, h('span', { text: t('chat.enter_hint') }), costNote));
	const picker = h('div', { class: 'picker' });
	const thread = h('section', { class: 'thread', 'aria-labelledby': 'thread-title' },
		h('header', { class: 'thread-head' }, back, title, headTools), picker, scroller, alerts, status, composer);
	title.id = 'thread-title';

	const container = h('div', { class: ['chat', (isNew || convId) && 'has-thread'] }, sidebar, thread);
	outlet.append(container);
	if (voice) disposers.push(voice.stop);

	function showAlert(node) { replace(alerts, node); }

	const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
	const toBottom = () => { scroller.scrollTop = scroller.scrollHeight; };

	function messageEl(m) {
		const mine = m.sender === 'user';
		const body = h('div', { class: 'msg-body' });
		if (mine) body.textContent = m.content;
		else body.append(renderMarkdown(m.content));
		return h('li', { class: ['msg', mine ? 'msg-user' : 'msg-assistant'], dataset: { id: m.id || '' } },
			h('span', { class: 'visually-hidden', text: mine ? t('chat.you_said') : t('chat.miky_said') }),
			body,
			h('p', { class: 'msg-meta' },
				m.created_at ? h('time', { datetime: m.created_at, text: fmtDate(m.created_at) }) : null,
				!mine && m.credits_consumed ? h('span', { text: tn('chat.credits_used', m.credits_consumed) }) : null));
	}

	function setCost() {
		const p = currentPersona();
		const credits = session.getUser()?.credits;
		costNote.textContent = p ? ` · ${tn('chat.cost', p.credits_per_message)} · ${tn('chat.balance', credits ?? 0)}` : '';
	}
	let personaList = [];
	const currentPersona = () => personaList.find((p) => p.id === (st.conv?.persona ?? st.persona));
	disposers.push(session.onSessionChange(setCost));

	function setTitle(text) {
		title.textContent = text;
		document.title = `${text} · Miky`;
	}

	function setStreaming(on) {
		sendBtn.hidden = on;
		stopBtn.hidden = !on;
		if (on) stopBtn.focus();
		else if (document.activeElement === stopBtn || document.activeElement === document.body) box.focus();
	}

	// --- persona picker (new conversation) and persona switch --------------
	function renderPicker() {
		const fs = h('fieldset', { class: 'personas' }, h('legend', { text: t('chat.pick_persona') }));
		for (const p of personaList) {
			const id = `persona-${p.id}`;
			const input = h('input', { type: 'radio', name: 'persona', id, value: p.id, checked: p.id === st.persona, class: 'visually-hidden-input' });
			input.addEventListener('change', () => { st.persona = p.id; setCost(); });
			fs.append(h('div', { class: 'persona' }, input,
				h('label', { for: id },
					h('span', { class: 'persona-name', text: p.name }),
					h('span', { class: 'persona-desc', text: p.description }),
					h('span', { class: 'persona-cost', text: tn('chat.cost', p.credits_per_message) }))));
		}
		replace(picker, fs);
	}

	function renderTools() {
		headTools.replaceChildren();
		if (!st.conv) return;
		const sel = h('select', { id: 'persona-switch', 'aria-label': t('chat.persona') },
			personaList.map((p) => h('option', { value: p.id, text: `${p.name} (${tn('chat.cost', p.credits_per_message)})`, selected: p.id === st.conv.persona })));
		sel.addEventListener('change', async () => {
			try {
				const r = await put(`/api/conversations/${st.conv.id}`, { persona: sel.value });
				st.conv = r.conversation;
				setCost();
				announce(t('chat.persona_changed', { name: personaName(sel.value) }));
			} catch (e) {
				sel.value = st.conv.persona;
				showAlert(errorBox(e));
			}
		});
		const rename = h('button', { type: 'button', class: 'btn btn-ghost btn-small', text: t('chat.rename') });
		rename.addEventListener('click', () => {
			const input = h('input', { type: 'text', value: st.conv.title || '', maxlength: 200, 'aria-label': t('chat.rename_label') });
			const f = h('form', { class: 'rename' }, input,
				h('button', { type: 'submit', class: 'btn btn-small', text: t('common.save') }),
				h('button', { type: 'button', class: 'btn btn-ghost btn-small', text: t('common.cancel'), onclick: () => { f.replaceWith(title); rename.focus(); } }));
			f.addEventListener('submit', async (e) => {
				e.preventDefault();
				try {
					const r = await put(`/api/conversations/${st.conv.id}`, { title: input.value.trim() });
					st.conv = r.conversation;
					setTitle(st.conv.title);
					f.replaceWith(title);
					list.querySelector(`[data-id="${st.conv.id}"] .conv-title`)?.replaceChildren(st.conv.title);
					rename.focus();
				} catch (err) { showAlert(errorBox(err)); }
			});
			title.replaceWith(f);
			input.focus();
		});
		const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-small danger', text: t('chat.delete') });
		remove.addEventListener('click', async () => {
			if (!confirm(t('chat.delete_confirm'))) return;
			try {
				await del(`/api/conversations/${st.conv.id}`);
				announce(t('chat.deleted'));
				navigate('/chat');
			} catch (e) { showAlert(errorBox(e)); }
		});
		headTools.append(h('label', { for: 'persona-switch', class: 'visually-hidden', text: t('chat.persona') }), sel, rename, remove);
	}

	// --- loading a conversation ---------------------------------------------
	async function loadConversation(before) {
		if (!before) replace(threadState, loading());
		earlier.replaceChildren();
		try {
			const r = await get(`/api/conversations/${convId}${qs({ limit: 50, before })}`);
			threadState.replaceChildren();
			st.conv = r.conversation;
			if (!before) {
				setTitle(st.conv.title || t('chat.untitled'));
				renderTools();
				setCost();
				messages.append(...r.messages.map(messageEl));
				if (!r.messages.length) threadState.append(empty(t('chat.no_messages')));
				toBottom();
			} else {
				const h0 = scroller.scrollHeight;
				messages.prepend(...r.messages.map(messageEl));
				scroller.scrollTop += scroller.scrollHeight - h0;
			}
			st.cursor = r.messages_cursor;
			if (st.cursor) earlier.append(h('button', { type: 'button', class: 'btn btn-ghost', text: t('chat.earlier'), onclick: () => loadConversation(st.cursor) }));
		} catch (e) {
			if (e.status === 404) {
				setTitle(t('chat.not_found'));
				replace(threadState, empty(t('chat.not_found_text'), h('a', { href: '/chat/new', class: 'btn', text: t('chat.new') })));
				composer.hidden = true;
			} else {
				replace(threadState, errorBox(e, () => loadConversation(before)));
			}
		}
	}

	// --- a turn ----------------------------------------------------------------
	async function send(content) {
		if (st.stream) return;
		alerts.replaceChildren();
		threadState.replaceChildren();
		const userLi = messageEl({ sender: 'user', content });
		userLi.classList.add('pending');
		const botLi = messageEl({ sender: 'assistant', content: '' });
		const botBody = botLi.querySelector('.msg-body');
		botLi.setAttribute('aria-busy', 'true');
		botLi.classList.add('streaming');
		botBody.append(h('span', { class: 'typing', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')));
		messages.append(userLi, botLi);
		toBottom();
		picker.replaceChildren();
		status.textContent = t('chat.answering');

		const ctrl = new AbortController();
		st.stream = ctrl;
		setStreaming(true);
		let text = '';
		let frame = 0;
		let outcome = 'cut';
		const paint = () => {
			frame = 0;
			const stick = nearBottom();
			botBody.replaceChildren(renderMarkdown(text));
			if (stick) toBottom();
		};
		const body = { content, stream: true };
		let path = '/api/chat/send';
		if (st.conv) path = `/api/conversations/${st.conv.id}/messages`;
		else body.persona = st.persona;
		try {
			const res = await api('POST', path, { body, raw: true, signal: ctrl.signal, accept: 'text/event-stream' });
			for await (const ev of readEvents(res.body)) {
				if (ev.event === 'start') {
					userLi.classList.remove('pending');
					userLi.dataset.id = ev.data.user_message?.id || '';
					if (!st.conv) {
						st.conv = ev.data.conversation;
						setPath(`/chat/${st.conv.id}`);
						setTitle(st.conv.title || t('chat.untitled'));
						renderTools();
						list.querySelector('[aria-current]')?.removeAttribute('aria-current');
						list.prepend(convItem(st.conv));
						listState.replaceChildren();
					}
				} else if (ev.event === 'delta') {
					text += ev.data.content ?? '';
					if (!frame) frame = requestAnimationFrame(paint);
				} else if (ev.event === 'done') {
					outcome = 'done';
					const m = ev.data.assistant_message;
					if (m) {
						text = m.content;
						botLi.dataset.id = m.id;
						botLi.querySelector('.msg-meta').replaceChildren(
							h('time', { datetime: m.created_at, text: fmtDate(m.created_at) }),
							m.credits_consumed ? h('span', { text: tn('chat.credits_used', m.credits_consumed) }) : '');
					}
					session.setCredits(ev.data.credits_remaining);
				} else if (ev.event === 'error') {
					outcome = 'error';
					showAlert(notice(errorText(ev.data.error || ev.data), 'error'));
				}
			}
		} catch (e) {
			if (e.name === 'AbortError') outcome = 'stopped';
			else if (e.status === 402) {
				outcome = 'refused';
				userLi.remove();
				botLi.remove();
				box.value = content;
				showAlert(await buyPrompt());
			} else {
				outcome = 'failed';
				showAlert(notice(errorText(e), 'error'));
				if (e.status && e.status < 500) { userLi.remove(); box.value = content; }
			}
		} finally {
			if (frame) cancelAnimationFrame(frame);
			st.stream = null;
			setStreaming(false);
		}
		if (outcome !== 'refused' && !(outcome === 'failed' && !userLi.isConnected)) {
			botLi.removeAttribute('aria-busy');
			botLi.classList.remove('streaming');
			if (text) paint();
			else botLi.remove();
		}
		userLi.classList.remove('pending');
		if (outcome === 'stopped' || outcome === 'cut') {
			botLi.classList.add('partial');
			if (botLi.isConnected) botLi.querySelector('.msg-meta').append(h('span', { class: 'badge', text: t(outcome === 'stopped' ? 'chat.stopped' : 'chat.cut') }));
			if (outcome === 'cut') showAlert(notice(t('chat.cut_text'), 'warn'));
			refreshCredits();
		}
		status.textContent = outcome === 'done' ? t('chat.answered', { credits: fmtNumber(session.getUser()?.credits ?? 0) })
			: outcome === 'stopped' ? t('chat.stopped') : '';
		if (outcome === 'done' || outcome === 'stopped') bumpList();
	}

	// The partial answer of a stopped turn is charged; the balance follows.
	async function refreshCredits() {
		try {
			const r = await get('/api/user/profile');
			session.setUser(r.user, 'credits');
		} catch { /* the next turn will tell */ }
	}

	function bumpList() {
		if (!st.conv) return;
		const li = list.querySelector(`[data-id="${st.conv.id}"]`);
		const item = convItem({ ...st.conv, updated_at: new Date().toISOString() });
		li?.remove();
		list.prepend(item);
	}

	async function buyPrompt() {
		const pay = await hasPayments();
		return notice(t('chat.no_credits'), 'warn',
			pay ? h('a', { href: '/plans', class: 'btn btn-primary', text: t('chat.buy_credits') })
				: h('a', { href: '/invite', class: 'btn', text: t('chat.earn_credits') }));
	}

	composer.addEventListener('submit', (e) => {
		e.preventDefault();
		const content = box.value.trim();
		if (!content) { box.focus(); return; }
		box.value = '';
		send(content);
	});
	box.addEventListener('keydown', (e) => {
		if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
			e.preventDefault();
			composer.requestSubmit();
		}
	});
	stopBtn.addEventListener('click', () => st.stream?.abort());
	disposers.push(() => st.stream?.abort());

	// --- start -------------------------------------------------------------
	personas().then((ps) => {
		personaList = ps;
		for (const p of ps) personaNames.set(p.id, p.name);
		for (const el of list.querySelectorAll('[data-persona]')) el.textContent = personaName(el.dataset.persona);
		if (isNew) renderPicker();
		if (st.conv) renderTools();
		setCost();
	}, (e) => { if (isNew) replace(picker, errorBox(e)); });

	loadList();
	if (convId) loadConversation();
	else if (!isNew) {
		composer.hidden = true;
		threadState.append(empty(t('chat.pick_or_new'), h('a', { href: '/chat/new', class: 'btn btn-primary', text: t('chat.new') })));
	}
	focusHeading(false);
	return () => disposers.forEach((fn) => fn());
}
