// The LuCI page in headless Chromium (Debian's chromium, driven by
// playwright-core), against our LuCI stub and backend (server.js) with the
// real postern binary and a real daemon (started by tests/luci_browser.rs in
// network namespaces). Walks what a router owner does; any failed step
// exits non-zero with its name. Env: POSTERN, CONFIG, SOCKET, DAEMON_PID,
// CLIENT_NS, ATTACKER_NS, ROUTER_V4, ROUTER_X_V4, CLIENT_V4, ATTACKER_V4,
// SHOTS (a directory for the screenshots).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const assert = require('assert');
const { execFileSync } = require('child_process');
const { chromium } = require('playwright-core');
const jsQR = require('jsqr');
const { start } = require('./server.js');

const env = process.env;
const WAN = '203.0.113.5';
const PASSWORD = 'postern-test';
let step = 'start';
let failPage = null;
let profile = null; /* chromium's profile dir: removed on success and failure */

function say(s) {
	step = s;
	console.log('step: ' + s);
}

function postern(args) {
	return execFileSync(env.POSTERN, args, { encoding: 'utf8' });
}

function inNs(ns, args) {
	execFileSync('ip', [ 'netns', 'exec', ns, env.POSTERN ].concat(args), { stdio: 'ignore' });
}

async function main() {
	const { server, port, log } = await start({
		postern: env.POSTERN, config: env.CONFIG, socket: env.SOCKET, daemonPid: +env.DAEMON_PID,
		password: PASSWORD, wanAddress: WAN
	});
	profile = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-chromium-'));
	const browser = await chromium.launchPersistentContext(profile, {
		executablePath: '/usr/bin/chromium',
		headless: true,
		viewport: { width: 1200, height: 900 },
		args: [ '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync' ]
	});
	const page = browser.pages()[0] || await browser.newPage();
	failPage = page;
	const errors = [];
	page.on('pageerror', e => errors.push(e.message));
	const shot = async (name, el) => {
		if (!env.SHOTS)
			return;
		fs.mkdirSync(env.SHOTS, { recursive: true });
		await page.screenshot({ path: path.join(env.SHOTS, name + '.png'), fullPage: !el });
	};
	const text = () => page.evaluate(() => document.body.innerText);
	const modal = '#modal_overlay .modal';
	const field = (name) => `${modal} .cbi-value[data-name="${name}"]`;
	const fieldError = async (scope, name) => (await page.textContent(`${scope} .cbi-value[data-name="${name}"] .cbi-value-error`)).trim();
	const addItem = async (scope, name, value) => {
		await page.fill(`${scope} .cbi-value[data-name="${name}"] .cbi-dynlist-new`, value);
		await page.press(`${scope} .cbi-value[data-name="${name}"] .cbi-dynlist-new`, 'Enter');
	};
	const items = (scope, name) => page.$$eval(`${scope} .cbi-value[data-name="${name}"] .item span`, s => s.map(x => x.textContent));
	const removeItem = async (scope, name, index) => {
		const buttons = await page.$$(`${scope} .cbi-value[data-name="${name}"] .item .remove`);
		await buttons[index].click();
	};
	const addSection = async (type, name) => {
		await page.fill(`.cbi-section[data-type="${type}"] .cbi-section-create-name`, name);
		await page.click(`.cbi-section[data-type="${type}"] .cbi-button-add`);
		await page.waitForSelector(modal);
	};
	const decodeQr = async () => {
		const img = await page.evaluate(() => {
			const cv = document.querySelector('.postern-qr-code');
			const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height);
			return { w: cv.width, h: cv.height, data: Array.from(d.data) };
		});
		const got = jsQR(Uint8ClampedArray.from(img.data), img.w, img.h);
		assert.ok(got, 'the QR code decodes');
		return got.data;
	};

	await page.goto(`http://127.0.0.1:${port}/`);

	say('log in: a wrong password is refused');
	await page.fill('input[name=luci_password]', 'wrong');
	await page.click('#login button');
	await page.waitForSelector('.alert-message.error');
	say('log in');
	await page.fill('input[name=luci_password]', PASSWORD);
	await page.click('#login button');
	await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });

	say('the status sits below the page title, with human counter labels');
	const order = await page.evaluate(() => {
		const h2 = document.querySelector('.postern-page > h2');
		const st = document.querySelector('.postern-status');
		return h2.compareDocumentPosition(st) & Node.DOCUMENT_POSITION_FOLLOWING;
	});
	assert.ok(order, 'status after the title');
	assert.ok(/Since start/.test(await text()));
	await shot('luci-overview');

	say('add a client: the placeholder is the daemon default, no key before generating');
	await addSection('client', 'phone');
	assert.strictEqual(await page.getAttribute(`${field('max_duration')} input`, 'placeholder'), '300');
	assert.ok((await text()).includes('Generate a key to see'));
	say('generate a key: the stanza has key_file and the WAN address, the key is nowhere in the page text');
	await page.click(`${field('_generate')} button`);
	await page.waitForSelector('.postern-stanza');
	const key = await page.inputValue(`${field('key')} input`);
	assert.strictEqual(Buffer.from(key, 'base64').length, 32);
	assert.strictEqual(await page.getAttribute(`${field('key')} input`, 'type'), 'password');
	let stanza = await page.textContent('.postern-stanza');
	assert.ok(stanza.includes(`option host '${WAN}'`), stanza);
	assert.ok(stanza.includes('option key_file \'~/.config/postern/phone.key\''), stanza);
	assert.ok(!stanza.includes('access'), 'no ports yet: no access line');
	assert.ok(!(await text()).includes(key), 'the key is not shown');
	assert.ok(!/--key(?![-\w])/.test(await text()), 'no --key on a command line');
	assert.ok(!(await text()).includes('-A tcp/22'), 'no -A tcp/22 without ports');
	assert.ok(!(await text()).includes('ROUTER_ADDRESS'), 'no literal ROUTER_ADDRESS');

	say('an invalid allowed port shows its message; a valid one updates the command before saving');
	await addItem(modal, 'allow', 'tcp:0');
	assert.strictEqual(await fieldError(modal, 'allow'), 'Expecting tcp:PORT or udp:PORT, e.g. tcp:22');
	await removeItem(modal, 'allow', 0);
	await addItem(modal, 'allow', 'tcp:22');
	assert.strictEqual(await fieldError(modal, 'allow'), '');
	await page.waitForFunction(() => document.querySelector('.postern-stanza').textContent.includes('tcp/22'));
	stanza = await page.textContent('.postern-stanza');
	assert.ok(stanza.includes('list access \'tcp/22\''), stanza);
	assert.strictEqual((await page.textContent('.postern-commands')).trim(), 'postern spa --stanza phone');

	say('the QR code decodes to postern\'s stanza with the key');
	await page.click('.postern-show-qr');
	await page.waitForSelector('.postern-qr-code');
	let qr = await decodeQr();
	assert.strictEqual(qr, `config stanza 'phone'\n\toption host '${WAN}'\n\toption key '${key}'\n\tlist access 'tcp/22'\n`);
	await page.$eval('.postern-qr-code', n => n.scrollIntoView({ block: 'end' }));
	await shot('luci-client-qr', 'viewport');

	say('fwknop keys: generated as fwknop --key-gen, the QR code is Fwknop2\'s');
	await page.click(`${field('_fwknop_generate')} button`);
	const fk = await page.inputValue(`${field('fwknop_key')} input`);
	const fh = await page.inputValue(`${field('fwknop_hmac_key')} input`);
	assert.strictEqual(Buffer.from(fk, 'base64').length, 32);
	assert.strictEqual(Buffer.from(fh, 'base64').length, 64);
	await page.waitForSelector('.postern-fwknoprc');
	await page.click('.postern-show-qr');
	await page.waitForSelector('.postern-qr-code');
	qr = await decodeQr();
	assert.strictEqual(qr, `KEY_BASE64:${fk} HMAC_KEY_BASE64:${fh}`);
	assert.ok(!(await text()).includes(fk) && !(await text()).includes(fh), 'fwknop keys not shown as text');
	await page.click(`${modal} .modal-save`);
	await page.waitForSelector(modal, { state: 'hidden' });
	assert.ok((await page.textContent('.cbi-section[data-type="client"] tr[data-sid="phone"]')).includes('postern spa --stanza phone'));
	assert.ok(!(await text()).includes(key), 'the table shows no key');

	say('a client without a key: the dialog says why it is not saved');
	await addSection('client', 'nokey');
	await addItem(modal, 'allow', 'tcp:22');
	await page.click(`${modal} .modal-save`);
	await page.waitForSelector(`${modal} .postern-problems`);
	assert.ok((await page.textContent(`${modal} .postern-problems`)).includes('has no key'));
	await page.click(`${modal} .cbi-button-cancel`);

	say('invalid settings show their messages');
	const main = '.cbi-section[data-type="postern"]';
	await page.fill(`${main} .cbi-value[data-name="spa_port"] input`, '70000');
	assert.strictEqual(await fieldError(main, 'spa_port'), 'A port number from 1 to 65535');
	await page.fill(`${main} .cbi-value[data-name="spa_port"] input`, '62201');
	await page.fill(`${main} .cbi-value[data-name="max_skew"] input`, '1.5');
	assert.strictEqual(await fieldError(main, 'max_skew'), '1 to 86400 seconds');
	await page.fill(`${main} .cbi-value[data-name="max_skew"] input`, '120');
	await addItem(main, 'trusted', '192.0.2.1/24');
	assert.strictEqual(await fieldError(main, 'trusted'), 'Host bits are set: write the network address');
	await removeItem(main, 'trusted', 0);

	say('a sequence may come back to a port; an immediate repeat is refused with its message');
	await addSection('sequence', 'seq2');
	for (const k of [ 'tcp:7100', 'udp:8100', 'tcp:7100' ])
		await addItem(modal, 'knock', k);
	assert.deepStrictEqual(await items(modal, 'knock'), [ 'tcp:7100', 'udp:8100', 'tcp:7100' ]);
	assert.strictEqual(await fieldError(modal, 'knock'), '');
	await addItem(modal, 'knock', 'tcp:7100');
	assert.strictEqual(await fieldError(modal, 'knock'), 'Step 4 repeats step 3: put a different port in between');
	await removeItem(modal, 'knock', 3);
	await addItem(modal, 'open', 'tcp:23');
	await page.click(`${modal} .modal-save`);
	await page.waitForSelector(modal, { state: 'hidden' });

	say('a command: Save with no program says so; repeated arguments are kept');
	await addSection('command', 'wake');
	await page.click(`${modal} .modal-save`);
	await page.waitForSelector(`${modal} .postern-problems`);
	assert.ok((await page.textContent(`${modal} .postern-problems`)).includes('must not be empty'));
	for (const a of [ 'bin/true', ])
		await addItem(modal, 'exec', a);
	assert.ok((await fieldError(modal, 'exec')).includes('absolute path'));
	await removeItem(modal, 'exec', 0);
	for (const a of [ '/bin/true', 'x', 'x' ])
		await addItem(modal, 'exec', a);
	assert.deepStrictEqual(await items(modal, 'exec'), [ '/bin/true', 'x', 'x' ]);
	await page.click(`${modal} .modal-save`);
	await page.waitForSelector(modal, { state: 'hidden' });

	say('Save & Apply refuses what the daemon refuses (spa_port a knock step), saving nothing');
	const before = fs.readFileSync(env.CONFIG, 'utf8');
	await page.fill(`${main} .cbi-value[data-name="spa_port"] input`, '8100');
	await page.click('.cbi-button-apply');
	await page.waitForSelector('.alert-message .postern-problems, .postern-problems');
	const problems = await page.textContent('.postern-problems');
	assert.ok(problems.includes('spa_port 8100 is a knock step of sequence \'seq2\''), problems);
	assert.ok(problems.includes('postern \'main\', option spa_port'), problems);
	await shot('luci-refused');
	assert.strictEqual(fs.readFileSync(env.CONFIG, 'utf8'), before, 'nothing written');
	assert.ok(!log.includes('apply'), 'nothing applied');

	say('Save & Apply: the file passes postern check and holds the repeats');
	await page.fill(`${main} .cbi-value[data-name="spa_port"] input`, '62201');
	await page.evaluate(() => document.querySelectorAll('.postern-problems').forEach(n => n.closest('.alert-message') ? n.closest('.alert-message').remove() : n.remove()));
	await page.click('.cbi-button-apply');
	await page.waitForSelector('.alert-message.applied', { timeout: 10000 });
	const saved = fs.readFileSync(env.CONFIG, 'utf8');
	postern([ 'check', '-c', env.CONFIG ]);
	assert.strictEqual((saved.match(/list knock 'tcp:7100'/g) || []).length, 2, saved);
	assert.strictEqual((saved.match(/list exec 'x'/g) || []).length, 2, saved);
	assert.ok(saved.includes(`option key '${key}'`) && saved.includes(`option fwknop_hmac_key '${fh}'`), saved);
	assert.ok(!saved.includes('nokey'), saved);

	say('a live grant shows within one poll; Revoke ends it');
	inNs(env.CLIENT_NS, [ 'knock', env.ROUTER_V4, 'tcp:7000', 'udp:8000', 'tcp:9000' ]);
	const grantRow = `.postern-status tr:has(td:text-is("${env.CLIENT_V4}"))`;
	await page.waitForSelector(grantRow, { timeout: 15000 });
	await shot('luci-grant');
	await page.click(`${grantRow} button:text("Revoke")`);
	await page.waitForSelector(grantRow, { state: 'detached', timeout: 5000 });
	assert.ok(postern([ 'status', '--json', '-s', env.SOCKET ]).includes('"grants":[]'));

	say('a ban shows; Lift ban ends it');
	// Knocks never ban (a ban after wrong knocks was an oracle): SPA packets
	// sealed with a key the router does not know do.
	for (let i = 0; i < 3; i++)
		inNs(env.ATTACKER_NS, [ 'spa', env.ROUTER_X_V4, '-A', 'tcp/2222',
			'--key', 'bm90LXRoZS1yb3V0ZXJzLWtleS1hdC1hbGwtMzJieXQ=' ]);
	const banRow = `.postern-status tr:has(td:text-is("${env.ATTACKER_V4}"))`;
	await page.waitForSelector(banRow, { timeout: 15000 });
	await shot('luci-ban');
	await page.click(`${banRow} button:text("Lift ban")`);
	await page.waitForSelector(banRow, { state: 'detached', timeout: 5000 });
	assert.ok(postern([ 'status', '--json', '-s', env.SOCKET ]).includes('"bans":[]'));

	say('a reload the daemon refused shows in the status');
	const good = fs.readFileSync(env.CONFIG, 'utf8');
	fs.writeFileSync(env.CONFIG, good + "\nconfig client 'broken'\n\tlist allow 'tcp:22'\n");
	process.kill(+env.DAEMON_PID, 'SIGHUP');
	await page.waitForSelector('.postern-reload-error', { timeout: 15000 });
	assert.ok((await page.textContent('.postern-reload-error')).includes('has no key'));
	await shot('luci-reload-error');
	fs.writeFileSync(env.CONFIG, good);
	process.kill(+env.DAEMON_PID, 'SIGHUP');
	await page.waitForSelector('.postern-reload-error', { state: 'detached', timeout: 15000 });

	if (process.env.UCODE)
		assert.ok(log.includes('plugin check') && log.includes('plugin revoke') && log.includes('plugin unban'), 'the real plugin ran');
	console.log('backend: ' + (process.env.UCODE ? 'the real ucode plugin' : 'server.js running the plugin\'s postern commands'));
	assert.deepStrictEqual(errors, [], 'no script errors in the page');
	await browser.close();
	server.close();
	fs.rmSync(profile, { recursive: true, force: true });
	console.log('browser walk: ok');
}

main().catch(async e => {
	console.error(`FAILED at step "${step}": ${e && e.stack || e}`);
	if (failPage) {
		try {
			console.error('page text:\n' + await failPage.evaluate(() => document.body.innerText));
			await failPage.screenshot({ path: path.join(os.tmpdir(), 'postern-luci-failure.png'), fullPage: true });
		} catch (err) {}
	}
	if (profile)
		fs.rmSync(profile, { recursive: true, force: true });
	process.exit(1);
});
