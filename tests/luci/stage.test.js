// postern/stage.js: the staged sections rendered as UCI text that the real
// `postern check --json` reads back value for value (quotes included), and
// its file:line errors mapped to the section and option that hold the line.
'use strict';
const path = require('path');
const assert = require('assert');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const { load, baseclass } = require('./load.js');

const root = path.join(__dirname, '../../openwrt/luci-app-postern/htdocs/luci-static/resources');
const stage = load(path.join(root, 'postern/stage.js'), { baseclass });
const POSTERN = process.env.POSTERN;
if (!POSTERN) {
	console.log('*** SKIPPED stage.test.js: POSTERN (the binary) not set ***');
	process.exit(0);
}

function check(text) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-stage-'));
	const file = path.join(dir, 'postern');
	fs.writeFileSync(file, text);
	const r = spawnSync(POSTERN, [ 'check', '--json', '-c', file ], { encoding: 'utf8' });
	fs.rmSync(dir, { recursive: true, force: true });
	return JSON.parse(r.stdout);
}

const KEY = 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=';
const sections = [
	{ '.name': 'main', '.type': 'postern', '.anonymous': false, '.index': 0, enabled: '1', interface: [ 'wan' ] },
	{ '.name': 'wake', '.type': 'command', '.anonymous': false, '.index': 1,
	  exec: [ '/bin/echo', 'it\'s', 'x', 'x' ], fwknop_match: 'it\'s "on"' },
	{ '.name': 'phone', '.type': 'client', '.anonymous': false, '.index': 2, key: KEY, allow: [ 'tcp:22' ], command: [ 'wake' ] },
	{ '.name': 'seq', '.type': 'sequence', '.anonymous': false, '.index': 3,
	  knock: [ 'tcp:7000', 'udp:8000', 'tcp:7000' ], open: [ 'tcp:2222' ] }
];
let r = stage.render(sections);
let res = check(r.text);
assert.strictEqual(res.ok, true, JSON.stringify(res) + '\n' + r.text);

// The daemon's errors land on the section and option that hold their lines.
const bad = JSON.parse(JSON.stringify(sections));
bad[0].max_skew = '0';
bad[2].key = KEY.slice(0, -4);
r = stage.render(bad);
res = check(r.text);
assert.strictEqual(res.ok, false);
const problems = stage.explain(res.errors, r);
const where = problems.map(p => `${p.type}.${p.sid}.${p.option}`).sort();
assert.deepStrictEqual(where, [ 'client.phone.key', 'postern.main.max_skew' ], JSON.stringify(problems));
assert.ok(problems.every(p => !p.message.includes(KEY.slice(0, -4))), 'no key echoed');
console.log('stage.test.js: ok');
