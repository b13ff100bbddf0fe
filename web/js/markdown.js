// A model's answer as Markdown, rendered to a sanitised fragment.  No raw
// HTML from the model reaches the DOM, twice over: HTML in the Markdown is
// shown as text (as chat apps do), and marked's output still goes through
// DOMPurify (scripts, event handlers, javascript: URLs, forms, styles and
// images are dropped), so nothing is ever parsed that the CSP would have to
// refuse.  Images become links; links open in a new tab without a referrer.
import { marked, DOMPurify } from '../vendor/index.js';

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

marked.setOptions({ gfm: true, breaks: true, async: false });
marked.use({
	renderer: {
		html({ text }) { return escape(text); },
		image({ href, text }) { return `<a href="${escape(href)}">${escape(text || href)}</a>`; },
	},
});

const purify = DOMPurify();
purify.addHook('afterSanitizeAttributes', (node) => {
	if (node.tagName === 'A') {
		const href = node.getAttribute('href') || '';
		if (!/^(https?:|mailto:|#|\/)/i.test(href)) node.removeAttribute('href');
		node.setAttribute('target', '_blank');
		node.setAttribute('rel', 'noopener noreferrer nofollow');
	}
});

const CONFIG = {
	RETURN_DOM_FRAGMENT: true,
	FORBID_TAGS: ['style', 'img', 'svg', 'math', 'form', 'input', 'button',
		'textarea', 'select', 'option', 'video', 'audio', 'source', 'picture',
		'iframe', 'object', 'embed', 'link', 'meta', 'base', 'dialog', 'template'],
	FORBID_ATTR: ['style', 'class', 'id', 'srcset', 'formaction', 'action', 'autofocus'],
	ALLOW_DATA_ATTR: false,
};

export function renderMarkdown(text) {
	const html = marked.parse(String(text ?? ''));
	return purify.sanitize(html, CONFIG);
}
