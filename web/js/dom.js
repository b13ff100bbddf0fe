// Building the DOM without innerHTML: h('p', {class: 'x'}, 'text', child).
// Properties: class, text, on* handlers (functions), dataset, boolean
// properties (hidden, disabled, required, checked, ...), any other as an
// attribute.  Never a style attribute: the CSP forbids inline styles.

const PROPS = new Set(['hidden', 'disabled', 'required', 'checked', 'selected',
	'multiple', 'readOnly', 'value', 'autofocus', 'open']);

export function h(tag, props, ...children) {
	const el = document.createElement(tag);
	if (props) {
		for (const [k, v] of Object.entries(props)) {
			if (v === undefined || v === null || v === false && !PROPS.has(k)) continue;
			if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
			else if (k === 'text') el.textContent = v;
			else if (k === 'dataset') Object.assign(el.dataset, v);
			else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
			else if (PROPS.has(k)) el[k] = v;
			else el.setAttribute(k, v === true ? '' : String(v));
		}
	}
	append(el, children);
	return el;
}

export function append(el, children) {
	for (const c of children.flat(Infinity)) {
		if (c === null || c === undefined || c === false) continue;
		el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return el;
}

// replace(el, ...children): el's children become these.
export function replace(el, ...children) {
	el.replaceChildren();
	return append(el, children);
}

let seq = 0;
export function uid(prefix = 'id') {
	return `${prefix}-${++seq}`;
}

// Announce a message to screen readers (polite, or assertive for errors).
export function announce(text, assertive = false) {
	const el = document.getElementById(assertive ? 'alerter' : 'announcer');
	if (!el) return;
	el.textContent = '';
	// A new text node in a later task is what screen readers notice.
	setTimeout(() => { el.textContent = text; }, 30);
}
