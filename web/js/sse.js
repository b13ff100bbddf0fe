// Server-Sent Events read from a fetch() body: the browser's EventSource
// cannot POST or send an Authorization header.  Yields {event, data} with
// data parsed as JSON; handles events split across reads anywhere, CRLF
// line ends and multi-line data.

export async function* readEvents(body) {
	const reader = body.pipeThrough(new TextDecoderStream()).getReader();
	let buf = '';
	let event = 'message';
	let data = [];
	try {
		for (;;) {
			const { value, done } = await reader.read();
			if (done) break;
			buf += value;
			let nl;
			while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
				const line = buf.slice(0, nl);
				buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
				if (line === '') {
					if (data.length) yield { event, data: parse(data.join('\n')) };
					event = 'message';
					data = [];
				} else if (line.startsWith(':')) {
					// comment (keep-alive)
				} else {
					const c = line.indexOf(':');
					const field = c < 0 ? line : line.slice(0, c);
					let v = c < 0 ? '' : line.slice(c + 1);
					if (v.startsWith(' ')) v = v.slice(1);
					if (field === 'event') event = v;
					else if (field === 'data') data.push(v);
				}
			}
		}
	} finally {
		reader.releaseLock();
	}
}

function parse(s) {
	try { return JSON.parse(s); } catch { return s; }
}
