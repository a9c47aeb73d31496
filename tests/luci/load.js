// Loads a LuCI module (a view or a resource such as postern/rules.js) under
// node, the way LuCI's loader runs it: the file is a function body whose
// 'require NAME [as ALIAS]' lines name its arguments. `deps` maps each
// required name (e.g. 'baseclass', 'postern.rules') to the stub or module
// to pass. Also installs what LuCI puts in the global scope for modules:
// _() (identity: no translation) and String.prototype.format (%s, %d, %%).
'use strict';
const fs = require('fs');

if (!String.prototype.format) {
	String.prototype.format = function() {
		const args = Array.from(arguments);
		return this.replace(/%(%|s|d)/g, (m, k) => {
			if (k === '%')
				return '%';
			const v = args.shift();
			return k === 'd' ? String(Math.trunc(+v)) : String(v);
		});
	};
}
globalThis._ = globalThis._ || (s => s);
globalThis.N_ = globalThis.N_ || ((n, s) => s);

/** The 'require' names of a module source, with the argument each binds. */
function requires(src) {
	const out = [];
	const re = /^\s*'require\s+([\w.]+)(?:\s+as\s+(\w+))?'\s*;/gm;
	let m;
	while ((m = re.exec(src)) !== null)
		out.push({ name: m[1], as: m[2] || m[1].split('.').pop() });
	return out;
}

/** Runs the module at `path` with `deps`; returns what it returns. */
function load(path, deps) {
	const src = fs.readFileSync(path, 'utf8');
	const reqs = requires(src);
	for (const r of reqs)
		if (!(r.name in deps))
			throw new Error(`${path}: no stub for 'require ${r.name}'`);
	const fn = new Function(...reqs.map(r => r.as), src);
	return fn(...reqs.map(r => deps[r.name]));
}

const baseclass = { extend: o => o };

module.exports = { load, requires, baseclass };
