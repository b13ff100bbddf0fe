// Voice input: MediaRecorder -> POST /api/chat/voice-to-text -> text.
// Offered only where the browser can record; the microphone is asked for
// on the first press, never before.
import { h, announce } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { api } from '../api.js';
import * as session from '../session.js';
import { errorText } from '../ui.js';

const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];

export function voiceSupported() {
	return !!(navigator.mediaDevices?.getUserMedia && window.MediaRecorder);
}

// voiceButton(onText, onError): a toggle button, or null where recording
// is impossible.  Returns {button, stop()}.
export function voiceButton(onText, onError) {
	if (!voiceSupported()) return null;
	let rec = null;
	let stream = null;
	const label = h('span', { class: 'visually-hidden', text: t('chat.voice_start') });
	const button = h('button', { type: 'button', class: 'btn btn-icon mic', 'aria-pressed': 'false' },
		h('span', { class: 'icon icon-mic', 'aria-hidden': 'true' }), label);

	const setState = (s) => {
		button.dataset.state = s;
		button.setAttribute('aria-pressed', s === 'recording' ? 'true' : 'false');
		button.disabled = s === 'sending';
		label.textContent = t(s === 'recording' ? 'chat.voice_stop' : s === 'sending' ? 'chat.voice_sending' : 'chat.voice_start');
		button.title = label.textContent;
	};
	setState('idle');

	const release = () => { stream?.getTracks().forEach((tr) => tr.stop()); stream = null; };

	async function start() {
		try {
			stream = await navigator.mediaDevices.getUserMedia({ audio: true });
		} catch (e) {
			onError(t(e.name === 'NotAllowedError' ? 'chat.voice_denied' : 'chat.voice_unavailable'));
			return;
		}
		const type = TYPES.find((x) => MediaRecorder.isTypeSupported(x)) || '';
		rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
		const chunks = [];
		rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
		rec.onstop = async () => {
			release();
			const mime = (rec.mimeType || type || 'audio/webm').split(';')[0];
			rec = null;
			if (!chunks.length) { setState('idle'); return; }
			setState('sending');
			try {
				const r = await api('POST', `/api/chat/voice-to-text?language=${getLang()}`,
					{ body: new Blob(chunks, { type: mime }), contentType: mime });
				session.setCredits(r.credits_remaining);
				onText(r.text || '');
				announce(t('chat.voice_done'));
			} catch (e) {
				onError(errorText(e), e);
			} finally {
				setState('idle');
			}
		};
		rec.start();
		setState('recording');
		announce(t('chat.voice_recording'));
	}

	button.addEventListener('click', () => {
		if (rec) rec.stop();
		else start();
	});
	return { button, stop: () => { if (rec) { rec.onstop = null; rec.stop(); } release(); rec = null; } };
}
