'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require ui';
'require uci';
'require tools.widgets as widgets';
'require postern.rules as rules';
'require postern.client as client';
'require postern.qr as qr';
'require postern.stage as stage';

/*
 * postern: settings (config postern 'main'), knock sequences (config sequence),
 * SPA clients (config client), router commands (config command), port
 * forwards (config forward) and the live status of the running daemon.
 * Section types and option names must match `postern schema --json`, and
 * every option is checked with the daemon's rules (postern/rules.js); tests
 * in the postern repository check both. Save & Apply first runs `postern
 * check` on the staged configuration and saves nothing it refuses.
 */

var callStatus = rpc.declare({ object: 'luci.postern', method: 'status', expect: { '': {} } });
var callCheck = rpc.declare({ object: 'luci.postern', method: 'check', params: [ 'config' ], expect: { '': {} } });
var callRevoke = rpc.declare({ object: 'luci.postern', method: 'revoke', params: [ 'addr', 'port' ], expect: { '': {} } });
var callUnban = rpc.declare({ object: 'luci.postern', method: 'unban', params: [ 'net' ], expect: { '': {} } });
var callInterfaces = rpc.declare({ object: 'network.interface', method: 'dump', expect: { 'interface': [] } });

/* Lists whose order matters and whose items may repeat (the daemon allows it). */
var REPEATABLE = { knock: true, exec: true, header: true, footer: true };

/* The address clients reach the router at: the WAN address when known. */
var routerAddress = '';

/* A sibling option's current value in the form (else the staged one). */
function sibling(option, section_id, name) {
	try {
		var found = option.map.lookupOption(name, section_id);
		if (found && found[0] && found[0].getUIElement(found[1])) {
			var v = found[0].formvalue(found[1]);
			if (v != null)
				return v;
		}
	} catch (e) {
		/* not rendered yet: the staged value */
	}
	return option.map.data.get(option.map.config, section_id, name);
}

/* Every option of `s` (a `type` section) gets the daemon's rule and default. */
function applyRules(s, type) {
	s.children.forEach(function(o) {
		var name = o.option;
		if (!name || name.charAt(0) === '_')
			return;
		var list = o instanceof form.DynamicList;
		o.validate = function(section_id, value) {
			if (value == null || value === '' || (Array.isArray(value) && !value.length))
				return true;
			var self = this, get = function(n) { return sibling(self, section_id, n); };
			if (!list)
				return rules.check(type, name, [ value ], get);
			/* A list is judged whole (order and repeats matter); an item being
			 * typed that is not in it yet is judged as the next one. */
			var all = [];
			try {
				all = L.toArray(this.getUIElement(section_id) ? this.formvalue(section_id) : null).slice();
			} catch (e) {
				/* not rendered yet */
			}
			L.toArray(value).forEach(function(v) {
				if (all.indexOf(v) < 0)
					all.push(v);
			});
			return rules.check(type, name, all, get);
		};
		if (list && REPEATABLE[name])
			o.allowduplicates = true;
		var d = rules.dflt(type, name);
		if (d != null && (o instanceof form.ListValue || o instanceof form.Flag))
			o.default = d;
		else if (d != null && !(o instanceof form.Flag) && o.placeholder == null)
			o.placeholder = d;
	});
}

function setField(map, section_id, name, value) {
	var found = map.lookupOption(name, section_id);
	if (found && found[0]) {
		var el = found[0].getUIElement(found[1]);
		if (el) {
			el.setValue(value);
			return;
		}
	}
	map.data.set(map.config, section_id, name, value);
}

/* A client's settings from the form (falling back to the staged values). */
function clientOf(map, section_id) {
	function get(name) {
		var found = map.lookupOption(name, section_id);
		var v = (found && found[0] && found[0].getUIElement(found[1])) ? found[0].formvalue(found[1]) : null;
		return v != null ? v : map.data.get(map.config, section_id, name);
	}
	return {
		name: section_id,
		key: get('key'),
		allow: L.toArray(get('allow')),
		command: L.toArray(get('command')),
		forward: L.toArray(get('forward')),
		fwknop_key: get('fwknop_key'),
		fwknop_hmac_key: get('fwknop_hmac_key'),
		fwknop_hmac_type: get('fwknop_hmac_type'),
		host: get('_router_address') || routerAddress,
		spaPort: map.data.get(map.config, 'main', 'spa_port') || '62201'
	};
}

/* The stanza, commands and QR code of the client being edited (no key shown). */
function renderPreview(node, map, section_id) {
	var c = clientOf(map, section_id), where = { host: c.host, spaPort: c.spaPort };
	var hasKey = !!c.key, hasFwknop = !!(c.fwknop_key && c.fwknop_hmac_key);
	var parts = [];
	if (!hasKey && !hasFwknop) {
		parts.push(E('p', {}, _('Generate a key to see the client\'s settings.')));
	} else {
		if (!c.host)
			parts.push(E('p', { 'class': 'alert-message warning' },
				_('Fill in the router address above: %s is a placeholder.').format(client.PLACEHOLDER)));
		if (hasKey) {
			parts.push(E('p', {}, _('On the client, put the key in %s (chmod 600) and this stanza in ~/.config/postern/client.conf:').format(client.keyFile(c))));
			parts.push(E('pre', { 'class': 'postern-stanza' }, client.stanza(c, where, false)));
			var cmds = client.commands(c);
			parts.push(E('p', {}, _('Then run:')));
			parts.push(E('pre', { 'class': 'postern-commands' }, cmds.length ? cmds.join('\n') : _('(allow ports, a command or a forward first)')));
		}
		if (hasFwknop) {
			parts.push(E('p', {}, _('fwknop clients (~/.fwknoprc, keys from the fields above):')));
			parts.push(E('pre', { 'class': 'postern-fwknoprc' }, client.fwknoprc(c, where)));
		}
		var qrBox = E('div', { 'class': 'postern-qr' });
		parts.push(E('button', {
			'class': 'cbi-button postern-show-qr',
			'click': function(ev) {
				ev.preventDefault();
				var text = client.qrText(clientOf(map, section_id), where);
				try {
					var cv = qr.canvas(qr.encode(text), 4);
					cv.className = 'postern-qr-code';
					qrBox.replaceChildren(cv, E('p', {}, hasFwknop ?
						_('For the Fwknop2 app: its keys. The code holds the secret keys: show it to your phone only.') :
						_('postern\'s stanza with its key. The code holds the secret key: show it to your phone only.')));
				} catch (e) {
					qrBox.replaceChildren(E('p', { 'class': 'alert-message warning' }, e.message));
				}
			}
		}, hasFwknop ? _('Show QR code for Fwknop2') : _('Show QR code')));
		parts.push(qrBox);
	}
	node.replaceChildren.apply(node, parts);
}

function refreshPreview() {
	document.querySelectorAll('.postern-preview').forEach(function(node) {
		if (node.postern)
			node.postern();
	});
}

/* The staged configuration checked by the daemon: [] or the problems, by section and option. */
function checkStaged() {
	var rendered = stage.render(uci.sections('postern'));
	return callCheck(rendered.text).then(function(res) {
		if (res && res.ok === true)
			return [];
		if (res && Array.isArray(res.errors))
			return stage.explain(res.errors, rendered);
		return [ { message: (res && res.error) || _('postern check did not answer') } ];
	}, function(err) {
		return [ { message: _('Could not run postern check: %s').format(err.message || err) } ];
	});
}

function describe(p) {
	var where = p.sid ? (p.option ? _('%s \'%s\', option %s').format(p.type, p.sid, p.option) :
		_('%s \'%s\'').format(p.type, p.sid)) : '';
	return E('li', {}, [ where ? E('strong', {}, where + ': ') : '', p.message ]);
}

function showProblems(problems, into) {
	var box = E('div', { 'class': into ? 'alert-message warning postern-problems' : 'postern-problems' }, [
		E('p', {}, _('postern would refuse this configuration; nothing was saved:')),
		E('ul', {}, problems.map(describe))
	]);
	if (into) {
		var old = into.querySelector('.postern-problems');
		if (old)
			old.remove();
		into.insertBefore(box, into.firstChild);
	} else {
		document.querySelectorAll('.postern-problems').forEach(function(n) {
			var note = n.closest('.alert-message');
			(note || n).remove();
		});
		ui.addNotification(null, box, 'warning');
	}
	return box;
}

/* A GridSection's modal: shows why Save refuses (LuCI's own save is silent) and
 * checks the section with the daemon before closing. */
function guardModal(s) {
	var save = s.handleModalSave;
	s.handleModalSave = function(modalMap, ev) {
		var self = this, args = arguments;
		var root = modalMap.root || document.querySelector('#modal_overlay .modal');
		var sid = modalMap.section || (modalMap.children[0] && modalMap.children[0].section);
		return modalMap.parse().then(function() {
			return checkStaged();
		}).then(function(problems) {
			var mine = problems.filter(function(p) { return !p.sid || p.sid === sid; });
			if (mine.length)
				return showProblems(mine, root);
			return save.apply(self, args);
		}, function(err) {
			showProblems([ { message: err.message || String(err) } ], root);
		});
	};
}

var GROUPS = {
	capture: _('Capture'), packets: _('Packets'), wire_rejected: _('Malformed packets dropped'),
	knock: _('Knock sequences'), totp: _('Time-derived sequences'), encoded: _('Encoded sequences'),
	auth_knock: _('Authenticated knocks'), spa: _('SPA packets'), spa_refused: _('SPA packets refused'),
	decisions: _('Decisions'), bans: _('Bans')
};
var COUNTERS = {
	frames: _('frames'), drops: _('dropped by the kernel'), other_host: _('for other hosts'),
	ring: _('ring buffers'), recvmsg: _('plain reads'), rejected: _('rejected'), tcp_not_syn: _('TCP other than SYN'),
	knocks: _('knocks'), not_knock_port: _('not a knock port'), steps_matched: _('steps matched'),
	duplicates: _('duplicates'), resets: _('wrong steps'), timeouts: _('timed out'), completed: _('completed'),
	evictions: _('evicted'), dropped_table_full: _('dropped (table full)'), wrong: _('wrong'), replays: _('replays'),
	checked: _('checked'), invalid: _('invalid'), not_allowed: _('not allowed'), granted: _('granted'),
	wrong_source: _('wrong source'), over_budget: _('over budget'), bad_tag: _('bad tag'), refused: _('refused'),
	cache_full: _('cache full'), packets: _('packets'), aead_attempts: _('decryptions tried'),
	hmac_attempts: _('HMACs tried'), accepted: _('accepted'), bad_length: _('bad length'),
	no_client_for_source: _('no client for the source'), budget_exceeded: _('over the verification budget'),
	auth_failed: _('wrong key'), bad_request: _('bad request'), bad_address: _('bad address'),
	too_old: _('too old'), too_new: _('too new'), before_replay_guard: _('before the replay guard'),
	replay: _('replays'), replay_cache_full: _('replay record full'), port_not_allowed: _('port not allowed'),
	duration_too_long: _('too long'), other_address: _('other address'), unsupported: _('unsupported'),
	command_not_allowed: _('command not allowed'), forward_not_allowed: _('forward not allowed'),
	opened: _('opened'), closed: _('closed'), commands: _('commands run'), forwards: _('forwards opened'),
	grants_forgotten: _('grants forgotten (table full)'), failures: _('failures'),
	trusted_failures: _('failures from trusted networks'), protected_failures: _('failures from the router\'s own networks'),
	bans: _('bans'), from_banned: _('packets from banned sources'), evicted: _('evicted'), untracked: _('not tracked (table full)')
};

function label(table, key) {
	return table[key] || key.replace(/_/g, ' ');
}

function actionButton(title, call, args, done) {
	return E('button', {
		'class': 'cbi-button cbi-button-remove',
		'click': ui.createHandlerFn(this, function() {
			return call.apply(null, args).then(function(res) {
				if (!res || res.ok !== true)
					ui.addNotification(null, E('p', {}, (res && res.error) || _('The daemon refused')), 'warning');
				return done();
			});
		})
	}, title);
}

function table(titles, rows, empty) {
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, titles.map(function(t) { return E('th', { 'class': 'th' }, t); }))
	].concat(rows.length ? rows : [
		E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, empty))
	]));
}

function row(cells) {
	return E('tr', { 'class': 'tr' }, cells.map(function(c) { return E('td', { 'class': 'td' }, c); }));
}

function renderStatus(st, refresh) {
	if (!st || st.error || !st.version)
		return E('em', {}, st && st.error ? st.error : _('postern is not running'));
	var out = [];
	if (st.last_reload_error)
		out.push(E('div', { 'class': 'alert-message warning postern-reload-error' }, [
			E('strong', {}, _('The daemon refused the last reload and still runs the configuration before it:')),
			E('pre', {}, st.last_reload_error)
		]));
	out.push(E('p', {}, _('postern %s, firewall %s, devices %s, up %d s').format(
		st.version, st.backend, (st.devices || []).join(', ') || '-', st.uptime_s)));
	out.push(E('h4', {}, _('Open ports')));
	out.push(table([ _('Address'), _('Port'), _('Granted by'), _('Expires in'), '' ],
		(st.grants || []).map(function(g) {
			return row([ g.addr, g.port, g.origin, '%d s'.format(g.expires_in_s),
				actionButton(_('Revoke'), callRevoke, [ g.addr, g.port ], refresh) ]);
		}), _('No live grants')));
	out.push(E('h4', {}, _('Banned sources')));
	out.push(table([ _('Source (IPv6: network)'), _('Lifted in'), '' ],
		(st.bans || []).map(function(b) {
			return row([ b.addr, '%d s'.format(b.expires_in_s),
				actionButton(_('Lift ban'), callUnban, [ b.addr ], refresh) ]);
		}), _('No banned sources')));
	if ((st.peers || []).length) {
		out.push(E('h4', {}, _('Peer routers')));
		out.push(table([ _('Peer'), _('Address'), _('Reachable'), _('Last sync'), _('Drops') ],
			st.peers.map(function(p) {
				return row([ p.name, p.address, p.reachable ? _('yes') : _('no'),
					p.last_sync_s_ago == null ? _('never') : _('%d s ago').format(p.last_sync_s_ago),
					String(p.queue_drops + p.send_errors) ]);
			}), ''));
	}
	if ((st.forwards || []).length)
		out.push(table([ _('Address'), _('Forward'), _('Path'), _('Client'), _('Expires in') ],
			st.forwards.map(function(f) { return row([ f.addr, f.forward, f.path, f.client, '%d s'.format(f.expires_in_s) ]); }), ''));
	if ((st.commands || []).length)
		out.push(table([ _('Command'), _('Client'), _('From'), _('PID'), _('Running for') ],
			st.commands.map(function(c) { return row([ c.name, c.client, c.source, String(c.pid), '%d s'.format(c.running_s) ]); }), ''));
	var groups = st.counters || {};
	var counterRows = Object.keys(groups).map(function(g) {
		var values = groups[g] || {};
		var shown = Object.keys(values).filter(function(k) { return values[k] > 0; })
			.map(function(k) { return label(COUNTERS, k) + ': ' + values[k]; });
		return shown.length ? row([ label(GROUPS, g), shown.join(', ') ]) : null;
	}).filter(function(r) { return r; });
	out.push(E('h4', {}, _('Counters')));
	out.push(table([ _('What'), _('Since start') ], counterRows, _('Nothing counted yet')));
	return E('div', {}, out);
}

function wanAddress(ifaces, names) {
	var wanted = names.length ? names : [ 'wan' ];
	for (var i = 0; i < wanted.length; i++) {
		var it = (ifaces || []).filter(function(x) { return x.interface === wanted[i]; })[0];
		var a = it && ((it['ipv4-address'] || [])[0] || (it['ipv6-address'] || [])[0]);
		if (a && a.address)
			return a.address;
	}
	return '';
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), {}),
			L.resolveDefault(callInterfaces(), []),
			uci.load('postern')
		]);
	},

	render: function(data) {
		var m, s, o;
		routerAddress = wanAddress(data[1], L.toArray(uci.get('postern', 'main', 'interface')));

		/* The page's title and description are drawn here, above the status;
		 * the map itself has none (LuCI re-renders a map on save). */
		m = new form.Map('postern');

		s = m.section(form.NamedSection, 'main', 'postern', _('Settings'));
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;

		o = s.option(widgets.NetworkSelect, 'interface', _('Networks'),
			_('Knocks and SPA packets are sniffed on these networks (usually wan).'));
		o.multiple = true;
		o.nocreate = true;

		o = s.option(form.DynamicList, 'device', _('Extra devices'),
			_('Capture devices used in addition to the networks, e.g. eth1.'));
		o.optional = true;

		o = s.option(form.ListValue, 'backend', _('Firewall'));
		o.value('auto', _('Automatic (fw4, else fw3)'));
		o.value('fw4', 'fw4 (nftables)');
		o.value('fw3', 'fw3 (iptables + ipset)');
		o.value('nft', _('Own nftables table'));
		o.value('dry-run', _('Dry run (log only)'));
		o.default = 'auto';

		o = s.option(form.Value, 'spa_port', _('SPA port'), _('UDP port of SPA packets; nothing listens on it.'));

		o = s.option(form.Value, 'max_skew', _('Clock skew (s)'),
			_('SPA packets whose timestamp is further from the router clock are refused.'));

		o = s.option(form.Value, 'source_skew', _('Clock skew for the source (s)'),
			_('Shorter window for SPA packets that ask for their own source address (no address sealed in them): a stolen one is usable only this long.'));
		o.optional = true;

		o = s.option(form.Value, 'spa_verify_budget', _('SPA verifications per second'),
			_('Upper bound on decryption attempts per second for each client (packets that passed its pre-filter), and separately for all fwknop packets (flood protection).'));
		o.optional = true;

		o = s.option(form.Value, 'state_dir', _('State directory'),
			_('Where the SPA replay record is kept; keep it on tmpfs (no flash writes).'));
		o.optional = true;

		o = s.option(form.Value, 'user', _('Run as user'),
			_('The system user the daemon becomes after start, keeping only CAP_NET_RAW and CAP_NET_ADMIN; root keeps uid 0. Commands still run as configured, through a privileged launcher.'));
		o.placeholder = 'postern';
		o.optional = true;

		o = s.option(form.Value, 'ban_threshold', _('Ban after failures'),
			_('Failed SPA packets (bad key, replay, stale time) from one source, within the window, that ban it. Knocks never count (only their volume is limited).'));
		o.optional = true;

		o = s.option(form.Value, 'ban_window', _('Failure window (s)'),
			_('Failures are counted over this many seconds.'));
		o.optional = true;

		o = s.option(form.Value, 'ban_duration', _('Ban duration (s)'),
			_('How long a banned network gets no new connections to guarded ports and forwards (its other traffic is untouched); 0 disables bans. Keep it short: failures need no key, so a spoofed source can get an innocent address banned.'));
		o.optional = true;

		o = s.option(form.Value, 'ban_ipv6_prefix', _('IPv6 ban prefix length'),
			_('IPv6 failures are counted and banned per network of this many bits, so that rotating addresses within one /64 does not escape. IPv4 is always per address.'));
		o.optional = true;

		o = s.option(form.DynamicList, 'trusted', _('Never ban'),
			_('Networks (CIDR) that are never banned, e.g. where you administer the router from. Link-local and multicast sources, the router\'s own addresses and subnets, and its default gateways are never banned anyway.'));
		o.optional = true;

		o = s.option(form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		s = m.section(form.GridSection, 'sequence', _('Knock sequences'),
			_('A source that knocks these ports in order, within the timeout, gets the action.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.DynamicList, 'knock', _('Knocks'), _('tcp:PORT or udp:PORT, in order (leave empty for a time-derived sequence); a port may come back later in the sequence'));
		o.allowduplicates = true;

		/* Time-derived (TOTP) sequence: a key instead of fixed knocks. */
		o = s.option(form.Value, 'key', _('TOTP key'),
			_('Optional: with a key the knocks change every period (postern knock --totp / --print).'));
		o.password = true;
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'knock_base', _('TOTP first port'));
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'knock_range', _('TOTP port range'),
			_('Ports from the first one. Strength = knocks x log2(range / knocks) - log2(3) bits: at least 48 (refused below), 64 with the defaults.'));
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'length', _('TOTP knocks'));
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'period', _('TOTP period (s)'));
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.ListValue, 'knock_proto', _('TOTP protocol'));
		o.value('tcp');
		o.value('udp');
		o.default = 'tcp';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'timeout', _('Timeout (s)'));

		o = s.option(form.ListValue, 'action', _('Action'));
		o.value('open', _('Open'));
		o.value('close', _('Close'));
		o.default = 'open';

		o = s.option(form.DynamicList, 'open', _('Ports to open'));
		o.depends('action', 'open');

		o = s.option(form.DynamicList, 'close', _('Ports to close'));
		o.depends('action', 'close');

		o = s.option(form.Value, 'duration', _('Open for (s)'));
		o.depends('action', 'open');

		o = s.option(form.Value, 'on_open', _('Command on open'),
			_('Optional: a router command (below) run when a grant of %s opens (not again when it is refreshed). It gets POSTERN_ADDRESS, POSTERN_PORTS, POSTERN_GRANTED_BY, POSTERN_DURATION.').format(_('this sequence')));
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'on_close', _('Command on close'),
			_('Optional: a router command (below) run once when that grant ends: at its expiry, on a close request, or when a reload removes %s.').format(_('this sequence')));
		o.optional = true;
		o.modalonly = true;

		s = m.section(form.GridSection, 'encoded', _('Encoded sequences'),
			_('The knocks spell the port to open (postern knock --encode tcp/143 --profile NAME).'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.Value, 'knock_base', _('First port'), _('Uses 2 x width ports from here.'));
		o.rmempty = false;

		o = s.option(form.Value, 'width', _('Symbols per half'));

		o = s.option(form.DynamicList, 'header', _('Header symbols'));
		o.allowduplicates = true;
		o.modalonly = true;

		o = s.option(form.DynamicList, 'footer', _('Footer symbols'));
		o.allowduplicates = true;
		o.modalonly = true;

		o = s.option(form.Value, 'port_digits', _('Port digits'));
		o.modalonly = true;

		o = s.option(form.Value, 'duration_digits', _('Duration digits'));
		o.modalonly = true;

		o = s.option(form.DynamicList, 'allow', _('Ports it may open'));
		o.rmempty = false;

		o = s.option(form.Value, 'duration', _('Open for (s)'));

		o = s.option(form.Value, 'max_duration', _('Longest grant (s)'));
		o.modalonly = true;

		o = s.option(form.Value, 'timeout', _('Gap between knocks (s)'));
		o.modalonly = true;

		s = m.section(form.GridSection, 'client', _('SPA clients'),
			_('Each client has its own key and may open only the ports listed for it.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.Value, 'key', _('Key'), _('32 random bytes, base64. Keep it secret.'));
		o.password = true;
		o.modalonly = true;

		o = s.option(form.Button, '_generate', _('New key'));
		o.inputtitle = _('Generate key');
		o.modalonly = true;
		o.onclick = function(ev, section_id) {
			setField(this.map, section_id, 'key', client.newKey());
			refreshPreview();
		};

		o = s.option(form.DynamicList, 'allow', _('Allowed ports'),
			_('Required unless the client may run a command or open a forward.'));

		o = s.option(form.Value, 'max_duration', _('Longest grant (s)'));

		o = s.option(form.DynamicList, 'source', _('Source networks'),
			_('Optional: accept this client only from these networks (CIDR).'));
		o.modalonly = true;

		o = s.option(form.Value, 'knock_base', _('Authenticated knocks: first port'),
			_('Optional: 512 ports from here take one-time knock sequences sealed with this key.'));
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.ListValue, 'knock_proto', _('Knock protocol'));
		o.value('tcp');
		o.value('udp');
		o.default = 'tcp';
		o.modalonly = true;
		o.depends({ knock_base: /.+/ });

		o = s.option(form.Value, 'knock_timeout', _('Gap between knocks (s)'));
		o.modalonly = true;
		o.depends({ knock_base: /.+/ });

		o = s.option(form.Flag, 'allow_other_address', _('May open for other addresses'),
			_('Allow requests that name another address than the packet\'s source (fwknop -a).'));
		o.default = '0';
		o.modalonly = true;

		o = s.option(form.Flag, 'require_address', _('Require an explicit address'),
			_('Refuse packets that do not name their address (postern spa without --resolve or -a, fwknop -s): a packet stolen on the way and re-sent from elsewhere then opens nothing.'));
		o.default = '0';
		o.modalonly = true;

		o = s.option(form.Value, 'fwknop_key', _('fwknop key'),
			_('Optional: base64 Rijndael key for fwknop clients and phone apps (fwknop --key-gen).'));
		o.password = true;
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'fwknop_hmac_key', _('fwknop HMAC key'),
			_('Base64 HMAC key; required with a fwknop key.'));
		o.password = true;
		o.optional = true;
		o.modalonly = true;
		o.depends({ fwknop_key: /.+/ });

		o = s.option(form.Button, '_fwknop_generate', _('New fwknop keys'),
			_('A 32-byte key and a 64-byte HMAC key, as fwknop --key-gen makes them.'));
		o.inputtitle = _('Generate fwknop keys');
		o.modalonly = true;
		o.onclick = function(ev, section_id) {
			var k = client.newFwknopKeys();
			setField(this.map, section_id, 'fwknop_key', k.key);
			setField(this.map, section_id, 'fwknop_hmac_key', k.hmac);
			refreshPreview();
		};

		o = s.option(form.ListValue, 'fwknop_hmac_type', _('fwknop HMAC type'));
		[ 'sha256', 'sha1', 'sha384', 'sha512' ].forEach(function(t) { o.value(t); });
		o.default = 'sha256';
		o.modalonly = true;
		o.depends({ fwknop_key: /.+/ });

		o = s.option(form.Value, 'fwknop_timeout', _('fwknop grant (s)'),
			_('How long an fwknop request opens the ports unless the client asks for less (-f).'));
		o.modalonly = true;
		o.depends({ fwknop_key: /.+/ });

		o = s.option(form.DynamicList, 'command', _('Commands it may run'),
			_('Names of router commands (below) this client may run with postern spa --command NAME.'));
		o.modalonly = true;

		o = s.option(form.DynamicList, 'forward', _('Forwards it may open'),
			_('Names of port forwards (below) this client may open with postern spa --forward NAME or fwknop -N.'));
		o.modalonly = true;

		o = s.option(form.DynamicList, 'default_access', _('Ports opened when none are asked for'),
			_('Optional: what a request without ports opens (postern spa without -A, fwknop -A none): some of the allowed ports, e.g. tcp:22.'));
		o.modalonly = true;

		o = s.option(form.Value, 'on_open', _('Command on open'),
			_('Optional: a router command (below) run when a grant of %s opens (not again when it is refreshed). It gets POSTERN_ADDRESS, POSTERN_PORTS, POSTERN_GRANTED_BY, POSTERN_DURATION.').format(_('this client')));
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'on_close', _('Command on close'),
			_('Optional: a router command (below) run once when that grant ends: at its expiry, on a close request, or when a reload removes %s.').format(_('this client')));
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, '_router_address', _('Router address for clients'),
			_('The address or name clients reach the router at, for the stanza and QR code below (not saved). Filled in with the WAN address when the router has one.'));
		o.modalonly = true;
		o.placeholder = client.PLACEHOLDER;
		o.cfgvalue = function() { return routerAddress; };
		o.write = o.remove = function() {};

		o = s.option(form.DummyValue, '_preview', _('Client setup'));
		o.modalonly = true;
		o.rawhtml = true;
		o.renderWidget = function(section_id) {
			var self = this;
			var node = E('div', { 'class': 'postern-preview', 'data-section': section_id });
			node.postern = function() { renderPreview(node, self.map, section_id); };
			window.setTimeout(node.postern, 0);
			return node;
		};

		o = s.option(form.DummyValue, '_command', _('Client command'));
		o.modalonly = false;
		o.cfgvalue = function(section_id) {
			var c = clientOf(this.map, section_id);
			return client.commands(c).join('\n') || _('(nothing allowed yet)');
		};

		s = m.section(form.GridSection, 'command', _('Router commands'),
			_('Programs a client may ask the router to run. The program and each argument are separate ' +
			  'items and are passed as they are: no shell, no PATH search.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.DynamicList, 'exec', _('Program and arguments'),
			_('First item: the program\'s absolute path, e.g. /usr/bin/etherwake; then one item per argument.'));
		o.rmempty = false;
		o.allowduplicates = true;

		o = s.option(form.Value, 'timeout', _('Time limit (s)'));

		o = s.option(form.Value, 'user', _('Run as user'), _('Optional: a user instead of root.'));
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'fwknop_match', _('fwknop command text'),
			_('Optional: fwknop clients run this command by sending exactly this text (fwknop -C).'));
		o.optional = true;
		o.modalonly = true;

		s = m.section(form.GridSection, 'forward', _('Port forwards'),
			_('A client may open a forward for its own address: connections to the router\'s port reach ' +
			  'the LAN host (IPv4 through NAT; IPv6 straight to the host\'s address).'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.ListValue, 'proto', _('Protocol'));
		o.value('tcp');
		o.value('udp');
		o.default = 'tcp';

		o = s.option(form.Value, 'port', _('Router port'));
		o.rmempty = false;

		o = s.option(form.Value, 'to', _('LAN host (IPv4)'));

		o = s.option(form.Value, 'to6', _('LAN host (IPv6)'));
		o.modalonly = true;

		o = s.option(form.Value, 'to_port', _('LAN port'), _('Default: the router port.'));

		s = m.section(form.GridSection, 'peer', _('Peer routers'),
			_('The other router of a VRRP pair (keepalived): grants, forwards, bans and replay state are sent to it ' +
			  'as they happen, so a failover keeps them. Both routers need the same key.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.Value, 'address', _('Peer address'), _('The other router\'s address, best on a dedicated link.'));
		o.rmempty = false;

		o = s.option(form.Value, 'key', _('Peer key'), _('32 bytes, base64, the same on both routers (postern keygen).'));
		o.password = true;
		o.modalonly = true;

		o = s.option(form.Value, 'key_file', _('Peer key file'),
			_('Instead of the key: an absolute path to a file holding it, readable by the daemon\'s user.'));
		o.modalonly = true;

		o = s.option(form.Value, 'port', _('UDP port'), _('The same on both routers.'));
		o.placeholder = '62202';

		o = s.option(form.Value, 'source', _('Source address'), _('Optional: this router\'s address to send from and listen on.'));
		o.modalonly = true;

		o = s.option(form.Value, 'interface', _('Peer link device'),
			_('Optional but recommended: the device of the link to the peer (e.g. a dedicated port or VLAN). ' +
			  'Peer datagrams are then taken from that device only, so forged ones from the WAN never reach postern.'));
		o.modalonly = true;

		m.children.forEach(function(sec) {
			applyRules(sec, sec.sectiontype);
			if (sec instanceof form.GridSection)
				guardModal(sec);
		});
		this.map = m;

		var statusBody = E('div', { 'id': 'postern-status' });
		var refresh = function() {
			return L.resolveDefault(callStatus(), {}).then(function(st) {
				statusBody.replaceChildren(renderStatus(st, refresh));
			});
		};
		statusBody.replaceChildren(renderStatus(data[0], refresh));
		var statusNode = E('div', { 'class': 'cbi-section postern-status' }, [ E('h3', {}, _('Status')), statusBody ]);
		poll.add(refresh, 5);

		['change', 'input', 'widget-change'].forEach(function(ev) {
			document.addEventListener(ev, function(e) {
				if (e.target && e.target.closest && e.target.closest('.modal'))
					window.setTimeout(refreshPreview, 0);
			}, true);
		});

		return m.render().then(function(node) {
			return E('div', { 'class': 'postern-page' }, [
				E('h2', { 'name': 'content' }, _('Postern')),
				E('div', { 'class': 'cbi-map-descr' },
					_('Keeps protected ports closed; a trusted client opens one for its own address, for a short time, ' +
					  'with a secret knock sequence or one encrypted SPA packet.')),
				statusNode,
				node
			]);
		});
	},

	/* Save: nothing is staged that `postern check` refuses. */
	handleSave: function(ev) {
		var m = this.map;
		return m.parse().then(checkStaged).then(function(problems) {
			if (problems.length) {
				showProblems(problems);
				return Promise.reject(new Error('refused by postern check'));
			}
			return m.save();
		});
	},

	handleSaveApply: function(ev, mode) {
		return this.handleSave(ev).then(function() {
			ui.changes.apply(mode == '0');
		}, function() {});
	}
});
