// The web app in a real browser: playwright-core driving Debian's
// chromium (headless) against the stack that t/51-web-browser.t started
// (every API real; OpenAI and Stripe are fakes).
//
// It speaks a small line protocol on stdout that the .t file turns into
// TAP: "ok - NAME", "not ok - NAME", "skip - NAME # WHY", "# diagnostic",
// and "call WHAT ARGS": the .t file does WHAT -- set a balance, deliver
// Stripe's webhook events for a Checkout Session, read what the UI left
// in the database -- and answers one line on stdin ("done" or JSON).
//
// Environment: WEB_BASE (nginx), WEB_MAIL_DIR (the dev mailbox),
// WEB_ARTIFACTS (screenshots), WEB_PROFILE (a fresh user-data-dir),
// WEB_REF (the referrer's code), WEB_REFERRER_EMAIL,
// WEB_REFERRER_PASSWORD, WEB_ADMIN_EMAIL, WEB_ADMIN_PASSWORD.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { isDeepStrictEqual } from 'node:util';
import { chromium } from 'playwright-core';

const BASE = process.env.WEB_BASE;
const MAIL = process.env.WEB_MAIL_DIR;
const ART = process.env.WEB_ARTIFACTS;
const T = 30000;   // generous: the machine is shared and slow at times

// --- the protocol ---------------------------------------------------------
const out = (s) => process.stdout.write(`${s}\n`);
const diag = (s) => String(s).split('\n').forEach((l) => out(`# ${l}`));
function ok(cond, name, ...why) {
	out(`${cond ? 'ok' : 'not ok'} - ${name}`);
	if (!cond) why.forEach(diag);
	return !!cond;
}
const skip = (name, why) => out(`skip - ${name} # ${why}`);
const is = (got, want, name, ...why) => ok(got === want, name, `got: ${JSON.stringify(got)}`, `want: ${JSON.stringify(want)}`, ...why);
const isDeeply = (got, want, name) => ok(isDeepStrictEqual(got, want), name, `got: ${JSON.stringify(got)}`, `want: ${JSON.stringify(want)}`);

const stdin = readline.createInterface({ input: process.stdin });
const answers = [];
let waiting = null;
stdin.on('line', (l) => { if (waiting) { const w = waiting; waiting = null; w(l); } else answers.push(l); });
function call(...args) {
	out(`call ${args.join(' ')}`);
	return new Promise((res) => { if (answers.length) res(answers.shift()); else waiting = res; });
}
const callJson = async (...args) => JSON.parse(await call(...args));

// --- the mailbox ----------------------------------------------------------
// mailText(raw): the decoded text of every part of a MIME mail (base64
// or quoted-printable), joined.
function mailText(raw) {
	const parts = raw.split(/\r?\n--[^\r\n]+\r?\n/);
	return parts.map((p) => {
		const m = p.match(/^([\s\S]*?)\r?\n\r?\n([\s\S]*)$/);
		if (!m) return p;
		const enc = (m[1].match(/content-transfer-encoding:\s*(\S+)/i) || [])[1]?.toLowerCase();
		if (enc === 'base64') return Buffer.from(m[2].replace(/\s+/g, ''), 'base64').toString('utf8');
		if (enc === 'quoted-printable') {
			return Buffer.from(m[2].replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, x) => String.fromCharCode(parseInt(x, 16))), 'latin1').toString('utf8');
		}
		return m[2];
	}).join('\n');
}

// The newest mail to `to` whose body has a link to `page`: its token
// (the link may carry it as #token= or ?token=) and the link itself.
async function mailLink(to, page) {
	const deadline = Date.now() + T;
	while (Date.now() < deadline) {
		const files = fs.readdirSync(MAIL).filter((f) => f.endsWith('.eml'))
			.map((f) => path.join(MAIL, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
		for (const f of files) {
			const raw = fs.readFileSync(f, 'utf8');
			if (!raw.toLowerCase().includes(to.toLowerCase())) continue;
			const text = mailText(raw);
			const m = text.match(new RegExp(`(https?://[^\\s"<>]*${page}([?#])token=([A-Za-z0-9_-]+))`));
			if (m) return { link: m[1], form: m[2], token: m[3] };
		}
		await sleep(200);
	}
	return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the browser ----------------------------------------------------------
const context = await chromium.launchPersistentContext(process.env.WEB_PROFILE, {
	executablePath: process.env.WEB_CHROMIUM || '/usr/bin/chromium',
	headless: true,
	args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
		'--disable-background-networking', '--disable-component-update', '--disable-sync',
		'--disable-dev-shm-usage', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
	viewport: { width: 1280, height: 800 },
	locale: 'en-US',
	timeout: 120000,
});
context.setDefaultTimeout(T);
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });

const consoleErrors = [];
const violations = [];
await context.exposeBinding('__cspReport', (src, v) => violations.push(v));
await context.addInitScript(() => {
	document.addEventListener('securitypolicyviolation', (e) => {
		window.__cspReport(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
	});
});
const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
// What sticks out to the right of the window, other than inside a box
// that scrolls sideways itself (tables, code, the tabs, the top bar's nav).
const overflowing = () => page.evaluate(() => [...document.querySelectorAll('body *')]
	.filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
	.filter((el) => {
		for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
			if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return false;
		}
		return true;
	})
	.map((el) => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`));

// shot(name): NAME-desktop.png and NAME-phone.png of the screen as it is;
// at phone width nothing may stick out.
const shots = [];
async function shot(name) {
	for (const [kind, size] of Object.entries(SIZES)) {
		await page.setViewportSize(size);
		await sleep(150);
		const file = path.join(ART, `${name}-${kind}.png`);
		await page.screenshot({ path: file });
		shots.push(file);
		if (kind === 'phone') {
			const wide = await overflowing();
			is(wide.length, 0, `${name}: nothing is wider than the phone`, ...wide.slice(0, 5));
		}
	}
	await page.setViewportSize(SIZES.desktop);
}

async function balance() {
	return Number(await page.locator('#balance').getAttribute('data-credits'));
}

async function waitBalanceBelow(n) {
	await page.waitForFunction((x) => Number(document.querySelector('#balance')?.dataset.credits) < x, n, { timeout: T }).catch(() => {});
	return balance();
}

async function send(text) {
	await page.locator('#composer-input').fill(text);
	await page.keyboard.press('Enter');
}

const fmt = (n) => new Intl.NumberFormat('en-US').format(n);

// stat(label): the figure of a row of figures (ui.js stat()) above that label.
async function stat(label) {
	const re = new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
	const s = page.locator('.stat').filter({ has: page.locator('.stat-l', { hasText: re }) }).first();
	return (await s.locator('.stat-n').textContent()).trim();
}

const REFERRER = { email: process.env.WEB_REFERRER_EMAIL, password: process.env.WEB_REFERRER_PASSWORD };
const ADMIN = { email: process.env.WEB_ADMIN_EMAIL, password: process.env.WEB_ADMIN_PASSWORD };
async function signIn(who) {
	await page.goto(`${BASE}/signin`);
	await page.getByLabel('Email').fill(who.email);
	await page.getByLabel('Password').fill(who.password);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.waitForURL(/\/chat/);
	await page.locator('#balance').waitFor();
}

const email = `web${Date.now()}@example.com`;
const password = 'a long browser password';

async function main() {
	// --- static and headers ----------------------------------------------
	await page.goto(`${BASE}/?ref=${process.env.WEB_REF}`);
	await page.waitForURL(/\/signup\?ref=/);
	ok(true, 'an invitation to the bare site leads to sign-up, keeping ?ref=');
	const res = await page.goto(`${BASE}/signup?ref=${process.env.WEB_REF}`);
	const h = res.headers();
	ok(/script-src 'self'/.test(h['content-security-policy'] || '') && !/unsafe-inline/.test(h['content-security-policy']),
		'index.html carries a strict CSP', h['content-security-policy']);
	await page.getByRole('heading', { level: 1, name: 'Create your account' }).waitFor();
	ok(true, 'sign-up screen at /signup');
	await page.getByText(/Grace invited you/).waitFor();
	ok(true, 'the referral code of ?ref= is checked and its referrer named');
	is(await page.getByLabel('Invitation code (optional)').inputValue(), process.env.WEB_REF, 'the code is filled in');
	await shot('signup');

	// Bad input stays on the page with the error by its field.
	await page.getByLabel('Email').fill(email);
	await page.getByLabel('Password', { exact: true }).fill('short');
	await page.getByLabel('First name').fill('Ada');
	await page.getByLabel('Last name').fill('Lovelace');
	await page.getByRole('button', { name: 'Sign up' }).click();
	ok(await page.locator('.field-error:not([hidden])').first().isVisible(), 'a too-short password is refused next to its field');
	await page.getByLabel('Password', { exact: true }).fill(password);
	await page.getByRole('button', { name: 'Sign up' }).click();
	await page.getByRole('heading', { name: 'Check your email' }).waitFor();
	ok(page.url().endsWith('/check-email'), 'sign-up leads to check-your-email');
	ok(await page.getByText(email).isVisible(), 'which names the address');
	await shot('check-email');

	// --- the mail, verification ------------------------------------------
	const mail = await mailLink(email, '/verify-email');
	if (!ok(mail, 'a verification mail with a link to /verify-email')) return;
	is(mail.form, '#', 'the link carries its token in the fragment, never the query');
	await page.goto(mail.link);
	await page.getByRole('heading', { name: 'Verify your email' }).waitFor();
	ok(!page.url().includes('token='), 'the token leaves the address bar at once');
	await shot('verify');
	await page.getByLabel('Password').fill('not the password at all');
	await page.getByRole('button', { name: 'Verify and sign in' }).click();
	const wrong = await Promise.race([
		page.locator('.form-error:not([hidden]), .field-error:not([hidden])').first().waitFor().then(() => 'error'),
		page.waitForURL(/\/chat/).then(() => 'chat'),
	]);
	is(wrong, 'error', 'a wrong password at verification is refused');
	ok(/do not match/.test(await page.locator('.form-error').textContent()), 'saying so');
	await page.getByLabel('Password').fill(password);
	await page.getByRole('button', { name: 'Verify and sign in' }).click();
	await page.waitForURL(/\/chat$/);
	ok(true, 'verification signs in and opens the chat');
	await page.locator('#balance').waitFor();
	const start = await balance();
	ok(start > 0, `the balance is visible (${start} credits)`);
	await shot('chat-empty');

	// --- a streamed answer --------------------------------------------------
	await page.getByRole('link', { name: 'New chat' }).first().click();
	await page.getByRole('heading', { name: 'New conversation' }).waitFor();
	const personas = await page.locator('.persona').count();
	ok(personas >= 2, `the persona picker lists the personas (${personas})`);
	ok(await page.locator('.persona-cost').first().textContent().then((x) => /credit/.test(x)), 'with their cost');
	await shot('new-conversation');
	const cost = Number((await page.locator('.persona input:checked + label .persona-cost').textContent()).match(/\d+/)[0]);

	await send('How do I learn Italian fast? [[demo]] [[slow:120]]');
	const bubble = page.locator('.msg-assistant').last();
	await page.locator('.msg-assistant.streaming .msg-body p').first().waitFor();
	ok(await page.getByRole('button', { name: 'Stop' }).isVisible(), 'a stop button shows while the answer streams');
	ok(!(await page.getByRole('button', { name: 'Send' }).isVisible()), 'instead of the send button');
	ok(await bubble.getAttribute('aria-busy') === 'true', 'the streaming answer is aria-busy inside a live log');
	is(await page.locator('.messages').getAttribute('aria-live'), 'polite', 'the log is a polite live region');
	const seen = new Set();
	for (let i = 0; i < 300 && await bubble.evaluate((el) => el.classList.contains('streaming')); i++) {
		seen.add((await bubble.locator('.msg-body').textContent()).length);
		if (seen.size === 12) await shot('chat-streaming');
		await sleep(100);
	}
	ok(seen.size >= 3, `the answer visibly grows as it streams (${seen.size} lengths seen)`);
	await page.locator('.msg-assistant.streaming').waitFor({ state: 'detached' });
	is(await bubble.locator('ol > li').count(), 3, 'the whole answer is shown, its Markdown rendered (a list)');
	ok(/grazie/.test(await bubble.locator('pre code').textContent()), 'and a code block');
	ok(/weekly schedule\?$/.test((await bubble.locator('.msg-body').textContent()).trim()), 'to its last word');
	ok(/\/chat\/[0-9a-f-]{36}$/.test(page.url()), 'the new conversation has its address');
	const after = await waitBalanceBelow(start);
	is(after, start - cost, `the balance drops by the persona's cost (${start} -> ${after})`);
	ok(await page.locator('.conv-list li').count() === 1, 'the conversation is in the list');
	await shot('chat');

	// --- stop ---------------------------------------------------------------------
	const before = after;
	await send('[[slow:400]] [[count:60]] Tell me more');
	await page.locator('.msg-assistant.streaming .msg-body p').first().waitFor();
	await page.getByRole('button', { name: 'Stop' }).click();
	await page.locator('.msg-assistant.streaming').waitFor({ state: 'detached' });
	ok(await page.locator('.msg-assistant').last().getByText('Stopped').isVisible(), 'stop ends the stream and marks the answer stopped');
	ok(await page.getByRole('button', { name: 'Send' }).isVisible(), 'the send button is back');
	const stopped = await waitBalanceBelow(before);
	ok(stopped < before, `the balance changes after a stopped answer (${before} -> ${stopped})`);

	// --- hostile Markdown ---------------------------------------------------------
	await page.evaluate(() => { window.__xss = undefined; });
	await send('[[echo]] **bold** <script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> [link](javascript:window.__xss=3) <a href="#" onclick="window.__xss=4">x</a>');
	await page.locator('.msg-assistant.streaming').waitFor({ state: 'detached' });
	const xss = page.locator('.msg-assistant').last();
	ok(await xss.locator('strong').textContent() === 'bold', 'the model\'s Markdown is rendered');
	is(await page.locator('.messages script, .messages img, .messages [onerror], .messages [onclick]').count(), 0,
		'no <script>, <img onerror> or handler from the model reaches the DOM');
	is(await page.locator('.messages a[href^="javascript:" i]').count(), 0, 'no javascript: link');
	ok(/<script>/.test(await page.locator('.msg-user').last().textContent()), 'the user\'s own text is shown as text');
	ok(/<img src=x onerror=/.test(await xss.textContent()), 'the model\'s HTML is shown as text');
	await sleep(500);
	is(await page.evaluate(() => window.__xss), undefined, 'nothing of it ran');

	// --- voice (Chromium's fake microphone) -------------------------------------
	const mic = page.getByRole('button', { name: 'Speak your message' });
	if (!(await mic.count())) skip('voice input', 'this browser cannot record');
	else {
		const b0 = await balance();
		await mic.click();
		await page.locator('button.mic[aria-pressed="true"]').waitFor();
		ok(true, 'the microphone button records (aria-pressed)');
		await sleep(1500);
		await page.getByRole('button', { name: 'Stop recording' }).click();
		await page.waitForFunction(() => /Fake transcript of \d+ bytes/.test(document.querySelector('#composer-input').value), null, { timeout: T });
		ok(/\(en\)$/.test(await page.locator('#composer-input').inputValue()), 'the transcript lands in the message box, in the user\'s language');
		const b1 = await waitBalanceBelow(b0);
		ok(b1 < b0, `the transcription is charged (${b0} -> ${b1})`);
		await page.locator('#composer-input').fill('');
	}

	// --- out of credits -----------------------------------------------------------
	await call('credits', email, 0);
	await send('Anything left?');
	await page.getByText('You are out of credits').waitFor();
	ok(true, 'a 402 turns into an out-of-credits prompt');
	ok(await page.locator('.turn-alerts a').first().isVisible(), 'with a way to get credits');
	is(await page.locator('#composer-input').inputValue(), 'Anything left?', 'and the message is given back');
	await shot('chat-no-credits');
	await call('credits', email, 500);

	// --- other screens ------------------------------------------------------------
	is(await page.getByRole('link', { name: 'Admin' }).count(), 0, 'no Admin link for a user');
	await page.goto(`${BASE}/admin/users`);
	await page.getByText('Only administrators can see this.').waitFor();
	ok(true, 'and /admin tells a user it is for administrators');
	is(await page.locator('table').count(), 0, 'showing nothing of it');
	await page.getByRole('link', { name: 'Credits', exact: true }).click();
	await page.getByRole('heading', { name: 'Credits', level: 1 }).waitFor();
	await page.locator('table.table tbody tr').first().waitFor();
	ok(await page.getByText('Chat message').first().isVisible(), 'credits history lists the chat turns');
	await page.getByText('No payments yet.').waitFor();
	ok(true, 'and no payment yet');

	await page.getByRole('link', { name: 'Invite' }).click();
	await page.getByRole('heading', { name: 'Invite friends' }).waitFor();
	const link = await page.locator('#ref-link').inputValue();
	ok(link.startsWith(`${BASE}/signup?ref=`), `the referral link is shown (${link})`);
	await page.getByRole('button', { name: 'Copy link' }).click();
	await page.getByText('Link copied.').first().waitFor();
	ok(true, 'copy says the link was copied');
	is(await page.evaluate(() => navigator.clipboard.readText()), link, 'and the clipboard has it');
	await page.getByText('Nobody has used your link yet.').waitFor();
	is(await stat('invited'), '0', 'the stats: nobody invited yet');
	is(await page.getByText('No cash to pay out yet.').count(), 1, 'no cash-out without cash');
	await shot('invite');

	await page.getByRole('link', { name: 'Profile' }).click();
	await page.getByRole('heading', { name: 'Profile' }).waitFor();
	await page.getByLabel('Language').selectOption('it');
	await page.getByRole('button', { name: 'Save' }).first().click();
	await page.getByRole('heading', { name: 'Profilo' }).waitFor();
	ok(await page.getByRole('link', { name: 'Crediti', exact: true }).isVisible(), 'switching to Italian translates the app');
	is(await page.evaluate(() => document.documentElement.lang), 'it', '<html lang> follows');
	await shot('profile-it');
	await page.getByLabel('Lingua').selectOption('en');
	await page.getByRole('button', { name: 'Salva' }).first().click();
	await page.getByRole('heading', { name: 'Profile' }).waitFor();

	// --- plans and packs through Stripe Checkout ------------------------------------
	// The fake Stripe's Checkout URLs are https://checkout.stripe.test/c/pay/ID:
	// the browser goes there and a stand-in page answers.  What Stripe does
	// next -- the signed webhook events (the .t file's `pay`) and the way
	// back (the session's own return URLs) -- follows.
	await page.route('https://checkout.stripe.test/**', (route) => route.fulfill({
		status: 200, contentType: 'text/html; charset=utf-8',
		body: '<!doctype html><html lang="en"><title>Checkout (test)</title><h1>Stripe Checkout (test)</h1></html>',
	}));
	const checkout = async (button) => {
		await button.click();
		await page.waitForURL(/^https:\/\/checkout\.stripe\.test\/c\/pay\//);
		const id = page.url().match(/\/c\/pay\/([A-Za-z0-9_]+)$/)[1];
		return { id, ...(await callJson('checkout', id)) };
	};
	// The return page polls for what the webhook granted (at most 30 s);
	// on a machine too slow for that it says "in a moment", and a reload
	// shows it (the state before Checkout is kept for the tab).
	const arrived = async () => {
		const done = page.locator('.notice').filter({ hasText: /^Done: you have/ });
		const either = page.locator('.notice').filter({ hasText: /^Done: you have|will appear in a moment/ });
		await either.waitFor({ timeout: 4 * T });
		if (!(await done.count())) {
			diag('the return page stopped waiting before the credits came: reloading it');
			await page.reload();
			await done.waitFor();
		}
		return done.textContent();
	};

	await page.getByRole('link', { name: 'Plans' }).click();
	await page.locator('.card.pack').first().waitFor();
	is(await page.locator('.card.plan').count(), 3, 'Plans lists the plans');
	is(await page.locator('.card.pack').count(), 3, 'and the credit packs');
	ok(await page.locator('.card.plan.current', { hasText: 'Free' }).isVisible(), 'the current plan is marked');
	ok(/\$4\.99/.test(await page.locator('.card.pack').first().textContent()), 'prices in the currency Stripe charges (USD)');
	await shot('plans');

	const b0 = await balance();
	const pack = await checkout(page.locator('.card.pack').first().getByRole('button', { name: 'Buy' }));
	ok(true, `Buy sends the browser to the Checkout URL Stripe gave (${pack.id})`);
	is(pack.mode, 'payment', 'a Checkout Session in payment mode');
	is(pack.metadata.pack, 'small', 'for the pack chosen');
	is(pack.success_url, `${BASE}/billing/success?session_id=${pack.id}`, 'returning to /billing/success with its id');
	is(pack.cancel_url, `${BASE}/billing/cancel`, 'or to /billing/cancel');
	const credits = Number(pack.metadata.credits);
	// Stripe's event first, then the way back (the usual order).
	isDeeply((await callJson('pay', pack.id)).codes, [200], 'the signed checkout.session.completed is taken');
	await page.goto(pack.success_url);
	await page.getByRole('heading', { name: 'Thank you!' }).waitFor();
	const packDone = await arrived();
	ok(packDone.includes(fmt(b0 + credits)), `the return page shows the new balance (${packDone})`);
	is(await balance(), b0 + credits, `and so does the top bar (${b0} + ${credits})`);
	await shot('billing-success');

	await page.getByRole('link', { name: 'See my credits' }).click();
	await page.getByRole('heading', { name: 'Credits', level: 1 }).waitFor();
	const paidRow = page.getByRole('region', { name: 'Payments' }).locator('tbody tr').first();
	await paidRow.waitFor();
	const paidText = await paidRow.textContent();
	ok(/Credit pack/.test(paidText) && /\$4\.99/.test(paidText) && paidText.includes(fmt(credits)) && /Completed/.test(paidText),
		'the payment is in the transactions: a credit pack, its price and credits, completed', paidText);
	ok((await page.getByRole('region', { name: 'History' }).locator('tbody tr').first().textContent()).includes(`+${fmt(credits)}`),
		'and the credits at the top of the history');
	await shot('credits');

	// A plan: Checkout left by its cancel link, then again and paid.
	const plusCard = () => page.locator('.card.plan').filter({ has: page.getByRole('heading', { name: 'Plus' }) });
	await page.getByRole('link', { name: 'Plans' }).click();
	let sub = await checkout(plusCard().getByRole('button', { name: 'Subscribe' }));
	is(sub.mode, 'subscription', 'Subscribe starts a Checkout Session in subscription mode');
	is(sub.metadata.plan, 'plus', 'for the plan chosen');
	await page.goto(sub.cancel_url);
	await page.getByRole('heading', { name: 'Checkout cancelled' }).waitFor();
	ok(await page.getByText('Nothing was charged.').isVisible(), 'the cancel page says nothing was charged');
	await shot('billing-cancel');
	is((await callJson('user', email)).plan, 'free', 'and the plan is unchanged');

	await page.getByRole('link', { name: 'Plans' }).click();
	sub = await checkout(plusCard().getByRole('button', { name: 'Subscribe' }));
	const plusCredits = (await callJson('plan', 'plus')).monthly_credits;
	const before2 = (await callJson('user', email)).credits;
	// Back before Stripe's events this time: the page waits for them.
	await page.goto(sub.success_url);
	await page.getByText('Waiting for your credits to arrive…').waitFor();
	ok(true, 'back from Checkout before the payment is known, the return page waits');
	isDeeply((await callJson('pay', sub.id)).codes, [200, 200],
		'the signed invoice.paid and checkout.session.completed are taken');
	const subDone = await arrived();
	ok(/on the Plus plan/.test(subDone) && subDone.includes(fmt(before2 + plusCredits)),
		`then shows the plan and its credits (${subDone})`);
	is(await balance(), before2 + plusCredits, `and the top bar the balance (+${plusCredits})`);
	await page.getByRole('link', { name: 'Plans' }).click();
	await page.getByRole('heading', { name: 'Your subscription' }).waitFor();
	ok(/Plus/.test(await page.locator('.card.sub').textContent()) && /Active/.test(await page.locator('.card.sub').textContent()),
		'Plans shows the subscription, active');
	ok(await plusCard().getByRole('button', { name: 'Your plan' }).isDisabled(), 'and the plan as the current one');
	await shot('plans-subscribed');
	await page.getByRole('button', { name: 'Cancel at the end of the period' }).click();
	await page.getByText(/^Your plan ends on /).waitFor();
	ok(true, 'cancelling at the end of the period says when it ends');

	// --- phone width: the chat list and a conversation ----------------------------
	await page.setViewportSize(SIZES.phone);
	await page.goto(`${BASE}/chat`);
	await page.locator('.conv-link').first().waitFor();
	ok(await page.locator('.conv-link').first().isVisible(), 'at phone width the chat opens on the list');
	await page.locator('.conv-link').first().click();
	await page.locator('.msg').first().waitFor();
	ok(await page.getByRole('link', { name: 'Conversations' }).isVisible(), 'and a conversation has a way back');
	const overflow = await overflowing();
	is(overflow.length, 0, 'nothing is wider than the phone', ...overflow.slice(0, 5));
	await page.setViewportSize(SIZES.desktop);

	// --- sign out, a wrong password -------------------------------------------------
	await page.getByRole('button', { name: 'Sign out' }).click();
	await page.getByRole('heading', { name: 'Sign in to Miky' }).waitFor();
	ok(true, 'sign-out leads to sign-in');
	await shot('signin');
	await page.getByLabel('Email').fill(email);
	await page.getByLabel('Password').fill('not my password');
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByText('That email and password do not match.').waitFor();
	ok(true, 'a wrong password at sign-in is refused, saying so');

	// --- forgot and reset ---------------------------------------------------------
	await page.getByRole('link', { name: 'Forgot your password?' }).click();
	await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
	await shot('forgot');
	await page.getByLabel('Email').fill(email);
	await page.getByRole('button', { name: 'Send the link' }).click();
	await page.getByText(/a link to reset its password is on its way/).waitFor();
	ok(true, 'forgot-password says a link is on its way');
	const reset = await mailLink(email, '/reset-password');
	if (ok(reset, 'a reset mail with a link to /reset-password')) {
		is(reset.form, '#', 'its token in the fragment');
		await page.goto(reset.link);
		await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
		ok(!page.url().includes('token='), 'the token leaves the address bar');
		await shot('reset');
		const fresh = 'another long password';
		await page.getByLabel('New password', { exact: true }).fill(fresh);
		await page.getByLabel('Repeat the new password').fill(`${fresh}!`);
		await page.getByRole('button', { name: 'Change password' }).click();
		await page.getByText('The two passwords are different.').waitFor();
		ok(true, 'two different passwords are refused');
		await page.getByLabel('Repeat the new password').fill(fresh);
		await page.getByRole('button', { name: 'Change password' }).click();
		await page.getByText('Your password was changed.').waitFor();
		ok(true, 'the reset leads to sign-in');
		await page.getByLabel('Email').fill(email);
		await page.getByLabel('Password').fill(fresh);
		await page.getByRole('button', { name: 'Sign in' }).click();
		await page.waitForURL(/\/chat/);
		ok(true, 'the new password signs in');
		await page.getByRole('button', { name: 'Sign out' }).click();
		await page.getByRole('heading', { name: 'Sign in to Miky' }).waitFor();
	}

	// --- the referrer: each invitee's status, a cash-out -----------------------------
	// Ada chatted (activated) and paid (qualified): Grace earned credits and
	// cash; Alan never chatted.  She is given more cash, as an older
	// referral would have, so a cash-out is above the minimum.
	await call('cash', REFERRER.email, 2000);
	await signIn(REFERRER);
	await page.getByRole('link', { name: 'Invite' }).click();
	const people = page.getByRole('region', { name: 'Your invitations' });
	await people.waitFor();
	ok(/Paying/.test(await people.locator('tr', { hasText: 'Ada' }).textContent()), 'the invitee who chatted and paid: Paying');
	ok(/Signed up/.test(await people.locator('tr', { hasText: 'Alan' }).textContent()), 'the one who never chatted: Signed up');
	is(await stat('invited'), '2', 'two invited');
	is(await stat('credits earned'), '300', 'credits earned for the activation');
	is(await stat('cash earned'), '$22.00', 'cash earned: the payment\'s reward and the older one');
	is(await stat('available'), '$22.00', 'all of it available');
	await shot('invite-stats');
	await page.getByLabel(/^Amount/).fill('5');
	await page.getByLabel('PayPal email or IBAN').fill('grace@example.com');
	await page.getByRole('button', { name: 'Request cash-out' }).click();
	await page.locator('.field-error:not([hidden])').first().waitFor();
	is(await page.getByLabel(/^Amount/).getAttribute('aria-invalid'), 'true', 'a cash-out below the minimum is refused by the amount');
	is((await callJson('cashouts', REFERRER.email)).cashouts.length, 0, 'and nothing is recorded');
	await page.getByLabel(/^Amount/).fill('22');
	await page.getByRole('button', { name: 'Request cash-out' }).click();
	await page.getByText(/^Cash-out of \$22\.00 requested/).waitFor();
	ok(true, 'a cash-out of everything available is requested');
	await page.getByText('No cash to pay out yet.').waitFor();
	is(await stat('being paid out'), '$22.00', 'the stats show it being paid out');
	is(await stat('available'), '$0.00', 'and nothing left available');
	isDeeply((await callJson('cashouts', REFERRER.email)).cashouts,
		[{ status: 'pending', cents: 2200, method: 'paypal', destination: 'grace@example.com' }],
		'a pending cash-out to that PayPal address');
	await page.getByRole('link', { name: 'Credits', exact: true }).click();
	const cashRow = page.getByRole('region', { name: 'Payments' }).locator('tbody tr', { hasText: 'Cash-out' });
	await cashRow.waitFor();
	ok(/Pending/.test(await cashRow.textContent()) && /\$22\.00/.test(await cashRow.textContent()), 'it is among her transactions, pending');
	await shot('invite-cashout');
	await page.getByRole('button', { name: 'Sign out' }).click();
	await page.getByRole('heading', { name: 'Sign in to Miky' }).waitFor();

	// --- the admin ------------------------------------------------------------------
	await signIn(ADMIN);
	await page.getByRole('link', { name: 'Admin' }).click();
	await page.locator('.stat-row .stat').first().waitFor();
	ok(true, 'an admin sees the admin area');
	is(await stat('users'), '4', 'the overview counts the users');
	is(await stat('cash-outs pending'), '1 · $22.00', 'and the pending cash-out');
	ok(/\$/.test(await stat('revenue')), `and the revenue (${await stat('revenue')})`);
	await shot('admin');

	await page.getByRole('link', { name: 'Users' }).click();
	await page.getByRole('cell', { name: REFERRER.email }).waitFor();
	await page.getByRole('searchbox', { name: 'Search by email or name' }).fill(email);
	await page.getByRole('button', { name: 'Search', exact: true }).click();
	await page.getByRole('cell', { name: REFERRER.email }).waitFor({ state: 'detached' });
	const adaUser = page.locator('table.table tbody tr', { hasText: email });
	await adaUser.waitFor();
	is(await page.locator('table.table tbody tr').count(), 1, 'the admin finds the user by email');
	const c0 = (await callJson('user', email)).credits;
	await adaUser.locator('summary', { hasText: 'Edit' }).click();
	await adaUser.getByLabel('Add credits (negative to remove)').fill(String(-(c0 + 1)));
	await adaUser.getByRole('button', { name: 'Save' }).click();
	await page.locator('.notice-error').waitFor();
	is((await callJson('user', email)).credits, c0, 'taking more credits than the user has is refused, changing nothing');
	await adaUser.getByLabel('Add credits (negative to remove)').fill('25');
	await adaUser.getByRole('button', { name: 'Save' }).click();
	await page.getByText(`${email} updated.`).waitFor();
	ok((await adaUser.textContent()).includes(fmt(c0 + 25)), 'the admin adds credits; the list shows the new balance');
	isDeeply(await callJson('ledger', email), { reason: 'admin', delta: 25, balance_after: c0 + 25 },
		'the user\'s ledger has the admin\'s row');
	await shot('admin-users');

	await page.getByRole('link', { name: 'Transactions' }).click();
	const cashout = page.locator('table.table tbody tr', { hasText: REFERRER.email });
	await cashout.waitFor();
	ok(/Cash-out/.test(await cashout.textContent()) && /\$22\.00/.test(await cashout.textContent()), 'the pending cash-out is listed');
	await shot('admin-transactions');
	await cashout.getByRole('button', { name: 'Mark paid' }).click();
	await cashout.locator('.badge', { hasText: 'Completed' }).waitFor();
	ok(true, 'the admin marks it paid');
	const paidOut = await callJson('cashouts', REFERRER.email);
	ok(paidOut.cashouts.length === 1 && paidOut.cashouts[0].status === 'completed' && paidOut.paid_out_cents === 2200,
		'it is completed and counted as paid out', JSON.stringify(paidOut));

	await page.getByRole('link', { name: 'Settings' }).click();
	const refCredits = page.getByLabel('referral_credits', { exact: true });
	await refCredits.waitFor();
	const was = await callJson('setting', 'referral_credits');
	const saveSetting = page.locator('.setting', { has: refCredits }).getByRole('button', { name: 'Save' });
	await refCredits.fill('-5');
	await saveSetting.click();
	await page.locator('.notice-error').waitFor();
	is(await callJson('setting', 'referral_credits'), was, `a setting out of its bounds is refused, changing nothing (${was})`);
	await refCredits.fill('350');
	await saveSetting.click();
	await page.getByText('referral_credits saved.').waitFor();
	is(await callJson('setting', 'referral_credits'), 350, 'the admin saves a setting, stored as a number');
	await shot('admin-settings');

	// --- the session: a reload keeps it, a refused refresh ends it -----------------
	await page.reload();
	await page.locator('#balance').waitFor();
	ok(true, 'a reload keeps the session (the refresh token is rotated)');
	await page.evaluate(() => localStorage.setItem('miky.refresh', 'spent-or-forged'));
	await page.goto(`${BASE}/credits`);
	await page.getByRole('heading', { name: 'Sign in to Miky' }).waitFor();
	ok(true, 'a refused refresh token signs out');

	// --- static files ---------------------------------------------------------------
	const r404 = await page.goto(`${BASE}/js/nope.js`);
	is(r404.status(), 404, 'a missing module is a 404, not the app');
	const rv = await page.goto(`${BASE}/chat/whatever`);
	is(rv.headers()['cache-control'], 'no-cache', 'screens are index.html, revalidated');
}

try {
	await main();
} catch (e) {
	ok(false, 'the browser run finished', e.stack || String(e));
	try { await page.screenshot({ path: path.join(ART, 'failure.png') }); diag(`screenshot: ${path.join(ART, 'failure.png')}`); } catch { /* gone */ }
} finally {
	is(violations.length, 0, 'no CSP violation', ...violations);
	const csp = consoleErrors.filter((m) => /Content Security Policy|Refused to/i.test(m));
	is(csp.length, 0, 'no CSP complaint in the console', ...csp);
	const others = consoleErrors.filter((m) => !/Content Security Policy|Refused to|Failed to load resource/i.test(m));
	is(others.length, 0, 'no script error in the console', ...others);
	diag(`screenshots: ${shots.length} in ${ART}`);
	await context.close();
	stdin.close();
}
