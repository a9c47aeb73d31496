// STUB of LuCI's uci module (our own code). As LuCI's: load() reads a config
// through rpcd's uci.get (which already holds this session's staged changes),
// set/unset/add/remove change a local copy, sections() shows the copy with
// the changes, save() stages them (uci.set/add/delete), apply() commits
// (uci.apply: the config file is written and the service reloaded).
'use strict';
'require rpc';
var state = { values: {}, changes: {}, order: 0 };
function clone(x) { return JSON.parse(JSON.stringify(x)); }
var uci = {
	load: function(config) {
		return rpc.call('uci', 'get', { config: config }).then(function(r) {
			state.values[config] = r.values || {};
			state.changes[config] = { creates: {}, deletes: {}, sets: {} };
			state.order = Object.keys(state.values[config]).length + 1000;
			return [ config ];
		});
	},
	get: function(config, sid, opt) {
		var s = uci.section(config, sid);
		if (!s)
			return null;
		return opt == null ? s : (s[opt] !== undefined ? s[opt] : null);
	},
	section: function(config, sid) {
		var list = uci.sections(config).filter(function(s) { return s['.name'] === sid; });
		return list[0] || null;
	},
	sections: function(config, type, cb) {
		var base = clone(state.values[config] || {}), ch = state.changes[config] || { creates: {}, deletes: {}, sets: {} };
		Object.keys(ch.creates).forEach(function(sid) { base[sid] = clone(ch.creates[sid]); });
		Object.keys(ch.deletes).forEach(function(sid) { delete base[sid]; });
		Object.keys(ch.sets).forEach(function(sid) {
			if (!base[sid])
				return;
			Object.keys(ch.sets[sid]).forEach(function(o) {
				var v = ch.sets[sid][o];
				if (v == null)
					delete base[sid][o];
				else
					base[sid][o] = clone(v);
			});
		});
		var out = Object.keys(base).map(function(k) { return base[k]; })
			.filter(function(s) { return !type || s['.type'] === type; })
			.sort(function(a, b) { return a['.index'] - b['.index']; });
		if (cb)
			out.forEach(cb);
		return out;
	},
	set: function(config, sid, opt, value) {
		var ch = state.changes[config];
		if (ch.creates[sid]) {
			if (value == null || value === '' || (Array.isArray(value) && !value.length))
				delete ch.creates[sid][opt];
			else
				ch.creates[sid][opt] = clone(value);
			return;
		}
		(ch.sets[sid] = ch.sets[sid] || {})[opt] = (value === '' || (Array.isArray(value) && !value.length)) ? null : clone(value);
	},
	unset: function(config, sid, opt) { uci.set(config, sid, opt, null); },
	add: function(config, type, name) {
		var sid = name || ('cfg' + (state.order++).toString(16));
		state.changes[config].creates[sid] = { '.name': sid, '.type': type, '.anonymous': !name, '.index': state.order++ };
		return sid;
	},
	remove: function(config, sid) {
		var ch = state.changes[config];
		if (ch.creates[sid])
			delete ch.creates[sid];
		else
			ch.deletes[sid] = true;
	},
	save: function() {
		var calls = [];
		Object.keys(state.changes).forEach(function(config) {
			var ch = state.changes[config];
			Object.keys(ch.creates).forEach(function(sid) {
				var s = ch.creates[sid], values = {};
				Object.keys(s).filter(function(k) { return k.charAt(0) !== '.'; }).forEach(function(k) { values[k] = s[k]; });
				calls.push(function() { return rpc.call('uci', 'add', { config: config, type: s['.type'], name: s['.anonymous'] ? undefined : sid, values: values }); });
			});
			Object.keys(ch.sets).forEach(function(sid) {
				var set = {}, del = [];
				Object.keys(ch.sets[sid]).forEach(function(o) {
					if (ch.sets[sid][o] == null)
						del.push(o);
					else
						set[o] = ch.sets[sid][o];
				});
				if (Object.keys(set).length)
					calls.push(function() { return rpc.call('uci', 'set', { config: config, section: sid, values: set }); });
				if (del.length)
					calls.push(function() { return rpc.call('uci', 'delete', { config: config, section: sid, options: del }); });
			});
			Object.keys(ch.deletes).forEach(function(sid) {
				calls.push(function() { return rpc.call('uci', 'delete', { config: config, section: sid }); });
			});
		});
		return calls.reduce(function(p, c) { return p.then(c); }, Promise.resolve()).then(function() {
			return Promise.all(Object.keys(state.changes).map(uci.load));
		});
	},
	apply: function() {
		return rpc.call('uci', 'apply', { rollback: false });
	}
};
return uci;
