// Reads probe cases (JSON on stdin: [{type, option, values, siblings}]),
// checks each with the LuCI page's rules (postern/rules.js), and prints the
// verdicts (JSON: true or the message) in order. Driven by tests/openwrt.rs,
// which compares them with `postern check` on the same values.
'use strict';
const path = require('path');
const { load, baseclass } = require('./load.js');

const root = path.join(__dirname, '../../openwrt/luci-app-postern/htdocs/luci-static/resources');
const rules = load(path.join(root, 'postern/rules.js'), { baseclass });
// The page's key-size check uses Blob (a browser global; node has it too).

let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
	const cases = JSON.parse(input);
	const out = cases.map(c => {
		const get = name => (name in c.siblings) ? c.siblings[name] : null;
		return rules.check(c.type, c.option, c.values, get);
	});
	const dflts = {};
	for (const type of Object.keys(rules.RULES))
		for (const option of Object.keys(rules.RULES[type]))
			dflts[`${type}.${option}`] = rules.dflt(type, option);
	process.stdout.write(JSON.stringify({ verdicts: out, defaults: dflts, rules: Object.keys(rules.RULES).map(t => [t, Object.keys(rules.RULES[t])]) }));
});
