'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require tools.widgets as widgets';

/*
 * postern: settings (config postern 'main'), knock sequences (config sequence),
 * SPA clients (config client), router commands (config command), port
 * forwards (config forward) and the live status of the running daemon.
 * Section types and option names must match `postern schema --json`
 * (a test in the postern repository checks this file against it).
 */

var callStatus = rpc.declare({
	object: 'luci.postern',
	method: 'status',
	expect: { '': {} }
});

var PORT_RE = /^(tcp|udp):([0-9]{1,5})$/;

function validPortSpec(section_id, value) {
	if (value == null || value === '')
		return true;
	var m = PORT_RE.exec(value);
	if (!m || +m[2] < 1 || +m[2] > 65535)
		return _('Expecting tcp:PORT or udp:PORT, e.g. tcp:22');
	return true;
}

/* 32 random bytes from the browser's CSPRNG, base64: a new client key. */
function newKey() {
	var bytes = new Uint8Array(32);
	window.crypto.getRandomValues(bytes);
	var s = '';
	for (var i = 0; i < bytes.length; i++)
		s += String.fromCharCode(bytes[i]);
	return btoa(s);
}

function validKey(section_id, value) {
	if (value == null || value === '')
		return true; /* a client may have fwknop keys only; the daemon checks that one kind is set */
	try {
		if (atob(value).length !== 32)
			return _('The key must be 32 bytes, base64 encoded');
	} catch (e) {
		return _('The key is not valid base64');
	}
	return true;
}

/* The command a client runs to open its ports (shown for copying). */
function clientCommand(section_id, key, allow, spaPort) {
	var access = (allow || []).map(function(p) { return p.replace(':', '/'); }).join(',');
	return 'postern spa ROUTER_ADDRESS -A ' + (access || 'tcp/22') +
		(spaPort && spaPort !== '62201' ? ' --port ' + spaPort : '') +
		' --key ' + (key || 'KEY');
}

function renderGrants(st) {
	var rows = (st.grants || []).map(function(g) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, g.addr),
			E('td', { 'class': 'td' }, g.port),
			E('td', { 'class': 'td' }, g.origin),
			E('td', { 'class': 'td' }, String(g.expires_in_s) + ' s')
		]);
	});
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, _('Address')),
			E('th', { 'class': 'th' }, _('Port')),
			E('th', { 'class': 'th' }, _('Granted by')),
			E('th', { 'class': 'th' }, _('Expires in'))
		])
	].concat(rows.length ? rows : [
		E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, _('No live grants')))
	]));
}

function renderBans(st) {
	var bans = st.bans || [];
	if (!bans.length)
		return E('p', {}, _('No banned sources'));
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, _('Banned source (IPv6: network)')),
			E('th', { 'class': 'th' }, _('Lifted in'))
		])
	].concat(bans.map(function(b) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, b.addr),
			E('td', { 'class': 'td' }, String(b.expires_in_s) + ' s')
		]);
	})));
}

function renderForwards(st) {
	var fw = st.forwards || [];
	if (!fw.length)
		return E('p', {}, _('No live forwards'));
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, _('Address')),
			E('th', { 'class': 'th' }, _('Forward')),
			E('th', { 'class': 'th' }, _('Path')),
			E('th', { 'class': 'th' }, _('Client')),
			E('th', { 'class': 'th' }, _('Expires in'))
		])
	].concat(fw.map(function(f) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, f.addr),
			E('td', { 'class': 'td' }, f.forward),
			E('td', { 'class': 'td' }, f.path),
			E('td', { 'class': 'td' }, f.client),
			E('td', { 'class': 'td' }, String(f.expires_in_s) + ' s')
		]);
	})));
}

function renderCommands(st) {
	var cmds = st.commands || [];
	if (!cmds.length)
		return E('p', {}, _('No commands running'));
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, _('Command')),
			E('th', { 'class': 'th' }, _('Client')),
			E('th', { 'class': 'th' }, _('From')),
			E('th', { 'class': 'th' }, _('PID')),
			E('th', { 'class': 'th' }, _('Running for'))
		])
	].concat(cmds.map(function(c) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, c.name),
			E('td', { 'class': 'td' }, c.client),
			E('td', { 'class': 'td' }, c.source),
			E('td', { 'class': 'td' }, String(c.pid)),
			E('td', { 'class': 'td' }, String(c.running_s) + ' s')
		]);
	})));
}

var NAME_RE = /^[A-Za-z0-9_]{1,32}$/;

function validName(section_id, value) {
	if (value == null || value === '')
		return true;
	return NAME_RE.test(value) ? true : _('1 to 32 letters, digits or _');
}

function renderCounters(st) {
	var groups = st.counters || {};
	return E('div', {}, Object.keys(groups).map(function(name) {
		var values = groups[name] || {};
		var shown = Object.keys(values).filter(function(k) { return values[k] > 0; })
			.map(function(k) { return k + '=' + values[k]; });
		return E('div', {}, [ E('strong', {}, name + ': '), shown.length ? shown.join(' ') : _('all 0') ]);
	}));
}

function renderStatus(st) {
	if (!st || st.error || !st.version)
		return E('em', {}, st && st.error ? st.error : _('postern is not running'));
	return E('div', {}, [
		E('p', {}, _('postern %s, backend %s, devices %s, up %d s').format(
			st.version, st.backend, (st.devices || []).join(', ') || '-', st.uptime_s)),
		renderGrants(st),
		renderBans(st),
		renderForwards(st),
		renderCommands(st),
		renderCounters(st)
	]);
}

return view.extend({
	load: function() {
		return L.resolveDefault(callStatus(), {});
	},

	render: function(status) {
		var m, s, o;

		m = new form.Map('postern', _('Postern'),
			_('Keeps protected ports closed; a trusted client opens one for its own address, for a short time, ' +
			  'with a secret knock sequence or one encrypted SPA packet.'));

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
		o.datatype = 'port';
		o.placeholder = '62201';

		o = s.option(form.Value, 'max_skew', _('Clock skew (s)'),
			_('SPA packets whose timestamp is further from the router clock are refused.'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '120';

		o = s.option(form.Value, 'source_skew', _('Clock skew for the source (s)'),
			_('Shorter window for SPA packets that ask for their own source address (no address sealed in them): a stolen one is usable only this long.'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '15';
		o.optional = true;

		o = s.option(form.Value, 'spa_verify_budget', _('SPA verifications per second'),
			_('Upper bound on decryption attempts per second for each client (packets that passed its pre-filter), and separately for all fwknop packets (flood protection).'));
		o.datatype = 'range(32,1000000)';
		o.placeholder = '1000';
		o.optional = true;

		o = s.option(form.Value, 'state_dir', _('State directory'),
			_('Where the SPA replay record is kept; keep it on tmpfs (no flash writes).'));
		o.placeholder = '/var/run/postern';
		o.optional = true;

		o = s.option(form.Value, 'user', _('Run as user'),
			_('The system user the daemon becomes after start, keeping only CAP_NET_RAW and CAP_NET_ADMIN; root keeps uid 0. Commands still run as configured, through a privileged launcher.'));
		o.placeholder = 'postern';
		o.optional = true;

		o = s.option(form.Value, 'ban_threshold', _('Ban after failures'),
			_('Failed SPA packets (bad key, replay, stale time) from one source, within the window, that ban it. Knocks never count (only their volume is limited).'));
		o.datatype = 'range(1,100000)';
		o.placeholder = '10';
		o.optional = true;

		o = s.option(form.Value, 'ban_window', _('Failure window (s)'),
			_('Failures are counted over this many seconds.'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '60';
		o.optional = true;

		o = s.option(form.Value, 'ban_duration', _('Ban duration (s)'),
			_('How long a banned network gets no new connections to guarded ports and forwards (its other traffic is untouched); 0 disables bans. Keep it short: failures need no key, so a spoofed source can get an innocent address banned.'));
		o.datatype = 'range(0,86400)';
		o.placeholder = '300';
		o.optional = true;

		o = s.option(form.Value, 'ban_ipv6_prefix', _('IPv6 ban prefix length'),
			_('IPv6 failures are counted and banned per network of this many bits, so that rotating addresses within one /64 does not escape. IPv4 is always per address.'));
		o.datatype = 'range(32,128)';
		o.placeholder = '64';
		o.optional = true;

		o = s.option(form.DynamicList, 'trusted', _('Never ban'),
			_('Networks (CIDR) that are never banned, e.g. where you administer the router from. Link-local and multicast sources, the router\'s own addresses and subnets, and its default gateways are never banned anyway.'));
		o.datatype = 'cidr';
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

		o = s.option(form.DynamicList, 'knock', _('Knocks'), _('tcp:PORT or udp:PORT, in order (leave empty for a time-derived sequence)'));
		o.validate = validPortSpec;

		/* Time-derived (TOTP) sequence: a key instead of fixed knocks. */
		o = s.option(form.Value, 'key', _('TOTP key'),
			_('Optional: with a key the knocks change every period (postern knock --totp / --print).'));
		o.password = true;
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.Value, 'knock_base', _('TOTP first port'));
		o.datatype = 'port';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'knock_range', _('TOTP port range'),
			_('Ports from the first one. Strength = knocks x log2(range / knocks) - log2(3) bits: at least 48 (refused below), 64 with the defaults.'));
		o.datatype = 'range(32,65535)';
		o.placeholder = '12288';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'length', _('TOTP knocks'));
		o.datatype = 'range(2,16)';
		o.placeholder = '6';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'period', _('TOTP period (s)'));
		o.datatype = 'range(5,3600)';
		o.placeholder = '30';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.ListValue, 'knock_proto', _('TOTP protocol'));
		o.value('tcp');
		o.value('udp');
		o.default = 'tcp';
		o.modalonly = true;
		o.depends({ key: /.+/ });

		o = s.option(form.Value, 'timeout', _('Timeout (s)'));
		o.datatype = 'range(1,3600)';
		o.placeholder = '10';

		o = s.option(form.ListValue, 'action', _('Action'));
		o.value('open', _('Open'));
		o.value('close', _('Close'));
		o.default = 'open';

		o = s.option(form.DynamicList, 'open', _('Ports to open'));
		o.validate = validPortSpec;
		o.depends('action', 'open');

		o = s.option(form.DynamicList, 'close', _('Ports to close'));
		o.validate = validPortSpec;
		o.depends('action', 'close');

		o = s.option(form.Value, 'duration', _('Open for (s)'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '30';
		o.depends('action', 'open');

		s = m.section(form.GridSection, 'encoded', _('Encoded sequences'),
			_('The knocks spell the port to open (postern knock --encode tcp/143 --profile NAME).'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.editable = true;

		o = s.option(form.Value, 'knock_base', _('First port'), _('Uses 2 x width ports from here.'));
		o.datatype = 'port';
		o.rmempty = false;

		o = s.option(form.Value, 'width', _('Symbols per half'));
		o.datatype = 'range(10,256)';
		o.placeholder = '10';

		o = s.option(form.DynamicList, 'header', _('Header symbols'));
		o.datatype = 'uinteger';
		o.modalonly = true;

		o = s.option(form.DynamicList, 'footer', _('Footer symbols'));
		o.datatype = 'uinteger';
		o.modalonly = true;

		o = s.option(form.Value, 'port_digits', _('Port digits'));
		o.datatype = 'range(1,5)';
		o.placeholder = '5';
		o.modalonly = true;

		o = s.option(form.Value, 'duration_digits', _('Duration digits'));
		o.datatype = 'range(0,4)';
		o.placeholder = '0';
		o.modalonly = true;

		o = s.option(form.DynamicList, 'allow', _('Ports it may open'));
		o.validate = validPortSpec;
		o.rmempty = false;

		o = s.option(form.Value, 'duration', _('Open for (s)'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '30';

		o = s.option(form.Value, 'max_duration', _('Longest grant (s)'));
		o.datatype = 'range(1,86400)';
		o.modalonly = true;

		o = s.option(form.Value, 'timeout', _('Gap between knocks (s)'));
		o.datatype = 'range(1,3600)';
		o.placeholder = '10';
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
		o.validate = validKey;
		o.modalonly = true;

		o = s.option(form.Button, '_generate', _('New key'));
		o.inputtitle = _('Generate key');
		o.modalonly = true;
		o.onclick = function(ev, section_id) {
			var field = this.map.lookupOption('key', section_id);
			if (field && field[0])
				field[0].getUIElement(section_id).setValue(newKey());
		};

		o = s.option(form.DynamicList, 'allow', _('Allowed ports'));
		o.validate = validPortSpec;
		o.rmempty = false;

		o = s.option(form.Value, 'max_duration', _('Longest grant (s)'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '3600';

		o = s.option(form.DynamicList, 'source', _('Source networks'),
			_('Optional: accept this client only from these networks (CIDR).'));
		o.datatype = 'cidr';
		o.modalonly = true;

		o = s.option(form.Value, 'knock_base', _('Authenticated knocks: first port'),
			_('Optional: 512 ports from here take one-time knock sequences sealed with this key.'));
		o.datatype = 'range(1,65024)';
		o.optional = true;
		o.modalonly = true;

		o = s.option(form.ListValue, 'knock_proto', _('Knock protocol'));
		o.value('tcp');
		o.value('udp');
		o.default = 'tcp';
		o.modalonly = true;
		o.depends({ knock_base: /.+/ });

		o = s.option(form.Value, 'knock_timeout', _('Gap between knocks (s)'));
		o.datatype = 'range(1,3600)';
		o.placeholder = '10';
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

		o = s.option(form.ListValue, 'fwknop_hmac_type', _('fwknop HMAC type'));
		[ 'sha256', 'sha1', 'sha384', 'sha512' ].forEach(function(t) { o.value(t); });
		o.default = 'sha256';
		o.modalonly = true;
		o.depends({ fwknop_key: /.+/ });

		o = s.option(form.Value, 'fwknop_timeout', _('fwknop grant (s)'),
			_('How long an fwknop request opens the ports unless the client asks for less (-f).'));
		o.datatype = 'range(1,86400)';
		o.placeholder = '30';
		o.modalonly = true;
		o.depends({ fwknop_key: /.+/ });

		o = s.option(form.DynamicList, 'command', _('Commands it may run'),
			_('Names of router commands (below) this client may run with postern spa --command NAME.'));
		o.validate = validName;
		o.modalonly = true;

		o = s.option(form.DynamicList, 'forward', _('Forwards it may open'),
			_('Names of port forwards (below) this client may open with postern spa --forward NAME or fwknop -N.'));
		o.validate = validName;
		o.modalonly = true;

		o = s.option(form.DummyValue, '_command', _('Client command'));
		o.rawhtml = false;
		o.cfgvalue = function(section_id) {
			return clientCommand(section_id,
				this.map.data.get('postern', section_id, 'key'),
				L.toArray(this.map.data.get('postern', section_id, 'allow')),
				this.map.data.get('postern', 'main', 'spa_port'));
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
		o.validate = function(section_id, value) {
			var items = L.toArray(this.formvalue(section_id));
			if (items.length && items[0].charAt(0) !== '/')
				return _('The program must be an absolute path');
			return true;
		};

		o = s.option(form.Value, 'timeout', _('Time limit (s)'));
		o.datatype = 'range(1,3600)';
		o.placeholder = '30';

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
		o.datatype = 'port';
		o.rmempty = false;

		o = s.option(form.Value, 'to', _('LAN host (IPv4)'));
		o.datatype = 'ip4addr';

		o = s.option(form.Value, 'to6', _('LAN host (IPv6)'));
		o.datatype = 'ip6addr';
		o.modalonly = true;

		o = s.option(form.Value, 'to_port', _('LAN port'), _('Default: the router port.'));
		o.datatype = 'port';

		var statusNode = E('div', { 'class': 'cbi-section' }, [
			E('h3', {}, _('Status')),
			E('div', { 'id': 'postern-status' }, renderStatus(status))
		]);

		poll.add(function() {
			return L.resolveDefault(callStatus(), {}).then(function(st) {
				var node = document.getElementById('postern-status');
				if (node)
					node.replaceChildren(renderStatus(st));
			});
		}, 5);

		return m.render().then(function(form) {
			return E([], [ statusNode, form ]);
		});
	}
});
