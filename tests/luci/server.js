// The browser test's backend, in place of uhttpd + rpcd + ubusd (which CI
// cannot build): serves the page (openwrt/luci-app-postern/htdocs) over our
// LuCI stub (tests/luci/stub), and answers LuCI's JSON-RPC at /ubus:
//   session login        root / the password given; one session
//   uci get/set/add/delete/changes/apply
//                        staged changes per session on top of the config
//                        file, as rpcd keeps them; apply writes the file and
//                        sends SIGHUP to the daemon (procd's reload)
//   luci.postern status/check/revoke/unban
//                        the real ucode plugin when UCODE names a ucode
//                        interpreter (UCODE_LIB: its modules); else (CI: no
//                        registry ships ucode) the same postern commands the
//                        plugin (root/usr/share/rpcd/ucode/luci.postern) runs
//   network.interface dump
//                        one 'wan' interface with the given address
// Every ubus call is checked against the app's ACL file (acl.d), as rpcd does.
'use strict';
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync, spawnSync } = require('child_process');

const repo = path.join(__dirname, '../..');
const htdocs = path.join(repo, 'openwrt/luci-app-postern/htdocs');
const stubRoot = path.join(__dirname, 'stub');
const aclFile = path.join(repo, 'openwrt/luci-app-postern/root/usr/share/rpcd/acl.d/luci-app-postern.json');

/* UCI text → { name: { '.name', '.type', '.anonymous', '.index', opt: 'v' | ['v'] } }. */
function parseUci(text) {
	const out = {};
	let cur = null, index = 0, anon = 0;
	function words(line) {
		const w = [];
		let i = 0;
		while (i < line.length) {
			while (i < line.length && /\s/.test(line[i]))
				i++;
			if (i >= line.length || line[i] === '#')
				break;
			let word = '';
			while (i < line.length && !/\s/.test(line[i])) {
				const q = line[i];
				if (q === '\'' || q === '"') {
					i++;
					while (i < line.length && line[i] !== q)
						word += line[i++];
					i++;
				} else if (q === '\\') {
					word += line[i + 1];
					i += 2;
				} else {
					word += line[i++];
				}
			}
			w.push(word);
		}
		return w;
	}
	for (const line of text.split('\n')) {
		const w = words(line);
		if (!w.length)
			continue;
		if (w[0] === 'config') {
			const name = w[2] || ('cfg' + (anon++).toString(16).padStart(2, '0'));
			cur = out[name] = { '.name': name, '.type': w[1], '.anonymous': !w[2], '.index': index++ };
		} else if (w[0] === 'option' && cur) {
			cur[w[1]] = w[2];
		} else if (w[0] === 'list' && cur) {
			(cur[w[1]] = Array.isArray(cur[w[1]]) ? cur[w[1]] : []).push(w[2]);
		}
	}
	return out;
}

function quote(v) {
	return '\'' + String(v).replace(/'/g, '\'\\\'\'') + '\'';
}

function renderUci(sections) {
	return Object.values(sections).sort((a, b) => a['.index'] - b['.index']).map(s => {
		const lines = [ 'config ' + s['.type'] + (s['.anonymous'] ? '' : ' ' + quote(s['.name'])) ];
		for (const [k, v] of Object.entries(s)) {
			if (k.startsWith('.'))
				continue;
			if (Array.isArray(v))
				v.forEach(item => lines.push('\tlist ' + k + ' ' + quote(item)));
			else
				lines.push('\toption ' + k + ' ' + quote(v));
		}
		return lines.join('\n') + '\n';
	}).join('\n');
}

function start(opts) {
	// opts: { postern, config, socket, daemonPid, password, wanAddress, port }
	const acl = JSON.parse(fs.readFileSync(aclFile, 'utf8'))['luci-app-postern'];
	const allowed = {};
	for (const part of [ 'read', 'write' ])
		for (const [obj, methods] of Object.entries((acl[part] || {}).ubus || {}))
			for (const m of methods)
				allowed[obj + '.' + m] = true;
	const uciAllowed = new Set([ ...(acl.read.uci || []), ...(acl.write.uci || []) ]);
	const sessions = {};
	const log = [];

	function staged(sid) {
		const sess = sessions[sid];
		if (!sess.staged)
			sess.staged = parseUci(fs.readFileSync(opts.config, 'utf8'));
		return sess.staged;
	}

	/* With UCODE set (a ucode interpreter; CI has none), the luci.postern
	 * methods run the real plugin, its postern path pointed at a wrapper
	 * that adds the test daemon's socket. */
	let plugin = null;
	if (process.env.UCODE) {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-plugin-'));
		const wrapper = path.join(dir, 'postern');
		fs.writeFileSync(wrapper, '#!/bin/sh\ncase "$1" in status|revoke|unban) exec ' + opts.postern +
			' "$@" -s ' + opts.socket + ' ;; esac\nexec ' + opts.postern + ' "$@"\n', { mode: 0o755 });
		const src = fs.readFileSync(path.join(repo, 'openwrt/luci-app-postern/root/usr/share/rpcd/ucode/luci.postern'), 'utf8');
		plugin = path.join(dir, 'luci.postern');
		fs.writeFileSync(plugin, src.replace('/usr/sbin/postern', wrapper));
	}
	function viaPlugin(method, args) {
		const lib = process.env.UCODE_LIB ? [ '-L', process.env.UCODE_LIB ] : [];
		const r = spawnSync(process.env.UCODE, lib.concat([ path.join(__dirname, 'plugin_call.uc'), plugin, method, JSON.stringify(args || {}) ]), { encoding: 'utf8' });
		log.push('plugin ' + method);
		return [ 0, JSON.parse(r.stdout) ];
	}

	function postern(args) {
		const r = spawnSync(opts.postern, args, { encoding: 'utf8' });
		return { rc: r.status, out: (r.stdout || '') + (r.stderr || '') };
	}

	const ubus = {
		'session.login': (a) => {
			if (a.username !== 'root' || a.password !== opts.password)
				return [ 6 ];
			const sid = crypto.randomBytes(16).toString('hex');
			sessions[sid] = { staged: null, changes: 0 };
			return [ 0, { ubus_rpc_session: sid } ];
		},
		'uci.get': (a, sid) => [ 0, { values: staged(sid) } ],
		'uci.set': (a, sid) => {
			const s = staged(sid)[a.section];
			if (!s)
				return [ 4 ];
			Object.assign(s, a.values);
			sessions[sid].changes++;
			return [ 0, {} ];
		},
		'uci.add': (a, sid) => {
			const all = staged(sid);
			const name = a.name || ('cfg' + crypto.randomBytes(3).toString('hex'));
			const index = Math.max(-1, ...Object.values(all).map(s => s['.index'])) + 1;
			all[name] = Object.assign({ '.name': name, '.type': a.type, '.anonymous': !a.name, '.index': index }, a.values || {});
			sessions[sid].changes++;
			return [ 0, { section: name } ];
		},
		'uci.delete': (a, sid) => {
			const all = staged(sid);
			if (!all[a.section])
				return [ 4 ];
			if (a.options)
				a.options.forEach(o => delete all[a.section][o]);
			else if (a.option)
				delete all[a.section][a.option];
			else
				delete all[a.section];
			sessions[sid].changes++;
			return [ 0, {} ];
		},
		'uci.changes': (a, sid) => [ 0, { changes: sessions[sid].changes } ],
		'uci.apply': (a, sid) => {
			fs.writeFileSync(opts.config, renderUci(staged(sid)), { mode: 0o600 });
			sessions[sid].changes = 0;
			sessions[sid].staged = null;
			if (opts.daemonPid)
				process.kill(opts.daemonPid, 'SIGHUP');
			log.push('apply');
			return [ 0, {} ];
		},
		// The ucode plugin's methods, run the same way (plus -s SOCKET for the test daemon).
		'luci.postern.status': () => {
			const r = postern([ 'status', '--json', '-s', opts.socket ]);
			return [ 0, r.rc === 0 ? JSON.parse(r.out) : { error: r.out.trim() || 'postern is not running' } ];
		},
		'luci.postern.check': (a) => {
			if (typeof a.config !== 'string' || a.config.length > 262144)
				return [ 0, { error: 'config: UCI text expected' } ];
			const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-luci.'));
			const file = path.join(dir, 'postern');
			fs.writeFileSync(file, a.config, { mode: 0o600 });
			const r = postern([ 'check', '--json', '-c', file ]);
			fs.rmSync(dir, { recursive: true, force: true });
			log.push('check');
			try {
				return [ 0, JSON.parse(r.out) ];
			} catch (e) {
				return [ 0, { error: r.out.trim() } ];
			}
		},
		'luci.postern.revoke': (a) => {
			const r = postern([ 'revoke', String(a.addr || ''), String(a.port || ''), '-s', opts.socket ]);
			return [ 0, r.rc === 0 ? { ok: true, message: r.out.trim() } : { ok: false, error: r.out.trim() } ];
		},
		'luci.postern.unban': (a) => {
			const r = postern([ 'unban', String(a.net || ''), '-s', opts.socket ]);
			return [ 0, r.rc === 0 ? { ok: true, message: r.out.trim() } : { ok: false, error: r.out.trim() } ];
		},
		'network.interface.dump': () => [ 0, { interface: [
			{ interface: 'wan', up: true, 'ipv4-address': opts.wanAddress ? [ { address: opts.wanAddress, mask: 24 } ] : [] },
			{ interface: 'lan', up: true, 'ipv4-address': [ { address: '192.168.1.1', mask: 24 } ] }
		] } ]
	};

	function call(params) {
		const [sid, object, method, args] = params;
		if (object === 'session' && method === 'login')
			return ubus['session.login'](args || {});
		if (!sessions[sid])
			return [ 6 ]; /* UBUS_STATUS_PERMISSION_DENIED */
		if (object === 'uci') {
			/* apply/changes name no config: every staged config of the session is in the ACL. */
			if (!uciAllowed.has((args || {}).config) && !(method === 'apply' || method === 'changes'))
				return [ 6 ];
		} else if (!allowed[object + '.' + method]) {
			return [ 6 ];
		}
		if (plugin && object === 'luci.postern')
			return viaPlugin(method, args);
		const fn = ubus[object + '.' + method];
		return fn ? fn(args || {}, sid) : [ 3 ]; /* UBUS_STATUS_METHOD_NOT_FOUND */
	}

	const types = { '.js': 'application/javascript', '.html': 'text/html', '.css': 'text/css' };
	const server = http.createServer((req, res) => {
		if (req.method === 'POST' && req.url === '/ubus') {
			let body = '';
			req.on('data', d => body += d);
			req.on('end', () => {
				let reply;
				try {
					const rpc = JSON.parse(body);
					reply = { jsonrpc: '2.0', id: rpc.id, result: call(rpc.params) };
				} catch (e) {
					reply = { jsonrpc: '2.0', id: null, error: { code: -32000, message: String(e && e.message) } };
				}
				res.writeHead(200, { 'Content-Type': 'application/json' });
				res.end(JSON.stringify(reply));
			});
			return;
		}
		let url = decodeURIComponent(req.url.split('?')[0]);
		if (url === '/')
			url = '/index.html';
		const candidates = [ path.join(htdocs, url), path.join(stubRoot, url) ];
		const file = candidates.find(f => !path.relative(repo, f).startsWith('..') && fs.existsSync(f) && fs.statSync(f).isFile());
		if (!file) {
			res.writeHead(404);
			res.end('not found');
			return;
		}
		res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream' });
		res.end(fs.readFileSync(file));
	});
	return new Promise(resolve => server.listen(opts.port || 0, '127.0.0.1', () => resolve({ server, port: server.address().port, log })));
}

module.exports = { start, parseUci, renderUci };
