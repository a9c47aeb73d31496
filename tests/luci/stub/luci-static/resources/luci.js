// STUB of LuCI's luci.js for the browser test (our own code, not LuCI's):
// the global L (module loader with 'require' lines, toArray, resolveDefault,
// bind), E() to build elements, _() (no translation), String.prototype.format,
// and the page boot: log in through session.login, load a view, render it
// with LuCI's footer buttons (Save & Apply, Save, Reset).
'use strict';
(function() {
	String.prototype.format = function() {
		var args = Array.prototype.slice.call(arguments);
		return this.replace(/%(%|s|d|q)/g, function(m, k) {
			if (k === '%')
				return '%';
			var v = args.shift();
			return k === 'd' ? String(Math.trunc(+v)) : String(v);
		});
	};
	window._ = function(s) { return s; };
	window.N_ = function(n, s) { return s; };

	function E(tag, attrs, children) {
		if (Array.isArray(tag)) {
			var frag = document.createDocumentFragment();
			(attrs || []).forEach(function(c) { if (c != null) frag.appendChild(c instanceof Node ? c : document.createTextNode(String(c))); });
			return frag;
		}
		var el = document.createElement(tag);
		if (attrs && (typeof attrs !== 'object' || Array.isArray(attrs) || attrs instanceof Node)) {
			children = attrs;
			attrs = {};
		}
		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (typeof v === 'function')
				el.addEventListener(k, v);
			else if (v != null && v !== false)
				el.setAttribute(k, v === true ? '' : v);
		});
		function add(c) {
			if (c == null || c === false)
				return;
			if (Array.isArray(c))
				c.forEach(add);
			else if (c instanceof Node)
				el.appendChild(c);
			else if (typeof NodeList !== 'undefined' && c instanceof NodeList)
				Array.prototype.slice.call(c).forEach(add);
			else
				el.appendChild(document.createTextNode(String(c)));
		}
		add(children);
		return el;
	}
	window.E = E;

	var cache = {};
	var classTag = '__stubClass';

	function requires(src) {
		var out = [], re = /^\s*'require\s+([\w.]+)(?:\s+as\s+(\w+))?'\s*;/gm, m;
		while ((m = re.exec(src)) !== null)
			out.push({ name: m[1], as: m[2] || m[1].split('.').pop() });
		return out;
	}

	var L = {
		env: { sessionid: null },
		toArray: function(x) {
			if (x == null)
				return [];
			return Array.isArray(x) ? x : (x === '' ? [] : [ x ]);
		},
		resolveDefault: function(p, d) { return Promise.resolve(p).catch(function() { return d; }); },
		bind: function(fn, self) {
			var args = Array.prototype.slice.call(arguments, 2);
			return function() { return fn.apply(self, args.concat(Array.prototype.slice.call(arguments))); };
		},
		isObject: function(x) { return x != null && typeof x === 'object'; },
		/* Loads /luci-static/resources/NAME.js (dots are directories) and what it requires. */
		require: function(name) {
			if (cache[name])
				return cache[name];
			cache[name] = fetch('/luci-static/resources/' + name.replace(/\./g, '/') + '.js', { cache: 'no-store' })
				.then(function(r) {
					if (!r.ok)
						throw new Error('cannot load ' + name + ': HTTP ' + r.status);
					return r.text();
				})
				.then(function(src) {
					var reqs = requires(src);
					return Promise.all(reqs.map(function(r) { return L.require(r.name); })).then(function(deps) {
						var fn = new Function(reqs.map(function(r) { return r.as; }).join(','), src + '\n//# sourceURL=' + name + '.js');
						var out = fn.apply(window, deps);
						if (typeof out === 'function' && out[classTag]) {
							var inst = new out();
							inst.extend = function(p) { return out.extend(p); }; /* a module class stays extendable (view.extend) */
							return inst;
						}
						return out;
					});
				});
			return cache[name];
		},
		CLASS_TAG: classTag
	};
	window.L = L;

	/* Boot: login form, then the view named in data-view of <body>. */
	function boot() {
		var view = document.body.getAttribute('data-view');
		var main = document.getElementById('maincontent');
		var form = E('form', { 'id': 'login' }, [
			E('h2', {}, 'Authorization Required'),
			E('input', { 'name': 'luci_username', 'value': 'root' }),
			E('input', { 'name': 'luci_password', 'type': 'password' }),
			E('button', { 'class': 'cbi-button', 'type': 'submit' }, 'Log in')
		]);
		form.addEventListener('submit', function(ev) {
			ev.preventDefault();
			L.require('rpc').then(function(rpc) {
				return rpc.login(form.luci_username.value, form.luci_password.value);
			}).then(function(sid) {
				if (!sid) {
					main.insertBefore(E('div', { 'class': 'alert-message error' }, 'Invalid username and/or password!'), form);
					return;
				}
				L.env.sessionid = sid;
				form.remove();
				main.querySelectorAll('.alert-message.error').forEach(function(n) { n.remove(); });
				return L.require('view.' + view.replace(/\//g, '.')).then(function(v) {
					return Promise.resolve(v.load()).then(function(d) { return v.render(d); }).then(function(node) {
						main.appendChild(node);
						main.appendChild(E('div', { 'class': 'cbi-page-actions' }, [
							E('button', { 'class': 'cbi-button cbi-button-apply', 'click': function(ev) { return v.handleSaveApply(ev, '0'); } }, 'Save & Apply'),
							E('button', { 'class': 'cbi-button cbi-button-save', 'click': function(ev) { return v.handleSave(ev); } }, 'Save'),
							E('button', { 'class': 'cbi-button cbi-button-reset', 'click': function() { location.reload(); } }, 'Reset')
						]));
						document.body.setAttribute('data-ready', '1');
					});
				});
			}).catch(function(e) {
				main.appendChild(E('pre', { 'class': 'alert-message error stub-error' }, String(e && e.stack || e)));
			});
		});
		main.appendChild(form);
	}
	document.addEventListener('DOMContentLoaded', boot);
})();
