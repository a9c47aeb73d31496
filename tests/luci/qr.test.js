// The page's QR encoder (postern/qr.js): every version it makes (1 to 10,
// level M, byte mode) decodes back to the same bytes with an independent
// decoder (jsQR, installed for the tests only: npm ci in tests/luci).
'use strict';
const path = require('path');
const assert = require('assert');
const { load, baseclass } = require('./load.js');

let jsQR;
try {
	jsQR = require('jsqr');
} catch (e) {
	if (process.env.CI === 'true')
		throw new Error('jsqr must be installed in CI (npm ci in tests/luci)');
	console.log('*** SKIPPED qr.test.js: jsqr not installed (npm ci in tests/luci) ***');
	process.exit(0);
}

const root = path.join(__dirname, '../../openwrt/luci-app-postern/htdocs/luci-static/resources');
const qr = load(path.join(root, 'postern/qr.js'), { baseclass });

/* The matrix as RGBA pixels, `scale` per module, 4 modules of quiet zone. */
function pixels(m, scale) {
	const n = m.length, side = (n + 8) * scale;
	const data = new Uint8ClampedArray(side * side * 4).fill(255);
	for (let r = 0; r < n; r++)
		for (let c = 0; c < n; c++)
			if (m[r][c])
				for (let y = 0; y < scale; y++)
					for (let x = 0; x < scale; x++) {
						const i = (((r + 4) * scale + y) * side + (c + 4) * scale + x) * 4;
						data[i] = data[i + 1] = data[i + 2] = 0;
					}
	return { data, side };
}

function roundTrip(text) {
	const m = qr.encode(text);
	const { data, side } = pixels(m, 4);
	const got = jsQR(data, side, side);
	assert.ok(got, `no QR code found for ${text.length} bytes (${m.length} modules)`);
	assert.strictEqual(got.data, text);
	return m.length;
}

const seen = new Set();
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n\t\'';
for (let len = 1; len <= 213; len += (len < 20 ? 1 : 7)) {
	let s = '';
	for (let i = 0; i < len; i++)
		s += alphabet[(i * 7 + len) % alphabet.length];
	seen.add((roundTrip(s) - 17) / 4);
}
// The longest that fits, and the real payloads the page encodes.
seen.add((roundTrip('x'.repeat(213)) - 17) / 4);
roundTrip('KEY_BASE64:' + 'A'.repeat(43) + '= HMAC_KEY_BASE64:' + 'B'.repeat(86) + '==');
roundTrip("config stanza 'phone'\n\toption host '203.0.113.5'\n\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='\n\tlist access 'tcp/22'\n");
assert.deepStrictEqual([...seen].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'every version made');
assert.throws(() => qr.encode('x'.repeat(214)), /Too long/);
console.log('qr.test.js: ok, versions', [...seen].join(','));
