'use strict';
'require baseclass';

/*
 * The daemon's per-option rules (src/config/typed*.rs), for the LuCI page:
 * each option of `postern schema` has a rule here, and a test in the postern
 * repository (tests/openwrt.rs + tests/luci/rules.test.js) probes every one
 * of them with the same values against `postern check`, so they cannot
 * drift. Rules that span sections (a knock step equal to spa_port, two
 * clients with one key, names that must exist, ...) are the daemon's alone:
 * the page runs `postern check` on the staged configuration before saving.
 *
 * A rule is checked with check(type, option, values, get): `values` is the
 * option's list (one item for a single option), `get(name)` reads another
 * option of the same section (the daemon checks a few options against their
 * neighbours and reports it on this option's line). It returns true or the
 * message to show.
 */

var BOOLS = [ '1', 'yes', 'on', 'true', 'enabled', '0', 'no', 'off', 'false', 'disabled' ];

function digits(v) {
	return typeof v === 'string' && /^[0-9]+$/.test(v);
}

/* A decimal number in lo..hi (digits only, as the daemon parses u64). */
function number(lo, hi, unit) {
	return function(v) {
		if (digits(v) && v.length <= 15 && +v >= lo && +v <= hi)
			return true;
		return unit ? _('%s to %s seconds').format(lo, hi) : _('A number from %s to %s').format(lo, hi);
	};
}

function port(v) {
	return (digits(v) && v.length <= 5 && +v >= 1 && +v <= 65535) ? true : _('A port number from 1 to 65535');
}

function portSpec(v) {
	var m = /^([^:]*):(.*)$/.exec(v || '');
	if (!m || !/^(tcp|udp)$/i.test(m[1]) || port(m[2]) !== true)
		return _('Expecting tcp:PORT or udp:PORT, e.g. tcp:22');
	return true;
}

function choice(words) {
	return function(v) {
		return words.indexOf(v) >= 0 ? true : _('One of: %s').format(words.join(', '));
	};
}

function bool(v) {
	return BOOLS.indexOf(String(v).toLowerCase()) >= 0 ? true : _('Use 1/0, yes/no, on/off, true/false');
}

/* IPv4 as Rust's Ipv4Addr parses it: four decimal octets, no leading zeros. */
function parseV4(s) {
	var parts = s.split('.');
	if (parts.length !== 4)
		return null;
	var out = [];
	for (var i = 0; i < 4; i++) {
		var p = parts[i];
		if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p.charAt(0) === '0') || +p > 255)
			return null;
		out.push(+p);
	}
	return out;
}

/* IPv6 as Rust's Ipv6Addr parses it: 16 bytes, or null. */
function parseV6(s) {
	var halves = s.split('::');
	if (halves.length > 2)
		return null;
	function groups(part, allowV4) {
		if (part === '')
			return [];
		var items = part.split(':'), bytes = [];
		for (var i = 0; i < items.length; i++) {
			var g = items[i];
			if (allowV4 && i === items.length - 1 && g.indexOf('.') >= 0) {
				var v4 = parseV4(g);
				if (!v4)
					return null;
				bytes = bytes.concat(v4);
			} else {
				if (!/^[0-9a-fA-F]{1,4}$/.test(g))
					return null;
				var n = parseInt(g, 16);
				bytes.push(n >> 8, n & 255);
			}
		}
		return bytes;
	}
	if (halves.length === 1) {
		var all = groups(s, true);
		return (all && all.length === 16) ? all : null;
	}
	var head = groups(halves[0], false), tail = groups(halves[1], true);
	if (!head || !tail || head.length + tail.length > 14)
		return null;
	var mid = [];
	for (var j = head.length + tail.length; j < 16; j++)
		mid.push(0);
	return head.concat(mid, tail);
}

function parseAddr(s) {
	var v4 = parseV4(s);
	if (v4)
		return v4;
	return s.indexOf(':') >= 0 ? parseV6(s) : null;
}

/* ADDR or ADDR/LEN with no host bits set, as the daemon's Cidr. */
function cidr(v) {
	var m = /^([^\/]*)(?:\/(.*))?$/.exec(v || '');
	var bytes = m ? parseAddr(m[1]) : null;
	if (!bytes)
		return _('Expecting an address or a network, e.g. 192.0.2.0/24 or 2001:db8::/48');
	var width = bytes.length * 8, len = width;
	if (m[2] !== undefined) {
		if (!/^[0-9]{1,3}$/.test(m[2]) || +m[2] > width)
			return _('The prefix length must be 0 to %d').format(width);
		len = +m[2];
	}
	for (var bit = len; bit < width; bit++)
		if (bytes[bit >> 3] & (0x80 >> (bit & 7)))
			return _('Host bits are set: write the network address');
	return true;
}

var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/* Strict, padded, canonical base64 (as the daemon decodes it): bytes or null. */
function base64Decode(t) {
	if (typeof t !== 'string' || t.length % 4 !== 0)
		return null;
	var out = [];
	for (var q = 0; q < t.length; q += 4) {
		var chunk = t.substr(q, 4), last = q + 4 === t.length;
		var pad = last ? (/=*$/.exec(chunk)[0].length) : 0;
		if (pad > 2)
			return null;
		var n = 0;
		for (var i = 0; i < 4; i++) {
			var v = 0;
			if (i < 4 - pad) {
				v = B64.indexOf(chunk.charAt(i));
				if (v < 0)
					return null;
			}
			n = n * 64 + v;
		}
		if ((pad === 1 && (n & 0xff)) || (pad === 2 && (n & 0xffff)))
			return null;
		var bytes = [ (n >> 16) & 255, (n >> 8) & 255, n & 255 ];
		out = out.concat(bytes.slice(0, 3 - pad));
	}
	return out;
}

function base64Encode(bytes) {
	var s = '';
	for (var i = 0; i < bytes.length; i += 3) {
		var n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
		s += B64.charAt(n >> 18) + B64.charAt((n >> 12) & 63) +
			(i + 1 < bytes.length ? B64.charAt((n >> 6) & 63) : '=') +
			(i + 2 < bytes.length ? B64.charAt(n & 63) : '=');
	}
	return s;
}

function key32(v) {
	var b = base64Decode(v);
	if (!b)
		return _('The key is not valid base64');
	return b.length === 32 ? true : _('The key must be 32 bytes, base64 encoded');
}

function secret(max) {
	return function(v) {
		var b = base64Decode(v);
		if (!b)
			return _('The key is not valid base64');
		return (b.length >= 1 && b.length <= max) ? true : _('1 to %d bytes, base64 encoded').format(max);
	};
}

function uciName(v) {
	return /^[A-Za-z0-9_]+$/.test(v || '') ? true : _('UCI network names use letters, digits and _');
}

function deviceName(v) {
	var ok = typeof v === 'string' && v.length >= 1 && v.length <= 15 && v !== '.' && v !== '..' &&
		/^[\x21-\x7e]+$/.test(v) && !/[\/:]/.test(v);
	return ok ? true : _('Device names are 1-15 characters without spaces, \'/\' or \':\'');
}

function actionName(v) {
	return /^[A-Za-z0-9_]{1,32}$/.test(v || '') ? true : _('1 to 32 letters, digits or _');
}

function userName(v) {
	return /^[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,31}$/.test(v || '') ? true : _('Not a user name');
}

function absPath(v) {
	return (typeof v === 'string' && v.charAt(0) === '/' && !/[\x00-\x1f\x7f]/.test(v)) ?
		true : _('An absolute path, e.g. /var/run/postern');
}

function lanHost(kind) {
	return function(v) {
		var b = kind === 4 ? parseV4(v || '') : parseV6(v || '');
		var bad = !b || b.every(function(x) { return x === 0; }) ||
			(kind === 4 && (b[0] === 127 || b[0] >= 224 && b[0] <= 239 || b.join('.') === '255.255.255.255')) ||
			(kind === 6 && (b[0] === 0xff || b.slice(0, 15).every(function(x) { return x === 0; }) && b[15] === 1));
		return bad ? (kind === 4 ? _('The IPv4 address of a host') : _('The IPv6 address of a host')) : true;
	};
}

/* Each item of a list checked alone. */
/* A unicast address, as `config peer`'s address and source. */
function unicast(v) {
	var b = parseAddr(v);
	if (!b)
		return _('Expecting an IPv4 or IPv6 address');
	var zero = b.every(function(x) { return x === 0; });
	var bad = zero || (b.length === 4 && (b[0] === 127 || b[0] >= 224 && b[0] <= 239)) ||
		(b.length === 16 && (b[0] === 0xff || b.slice(0, 15).every(function(x) { return x === 0; }) && b[15] === 1));
	return bad ? _('Expecting a unicast address (not unspecified, loopback or multicast)') : true;
}

function each(itemRule) {
	return function(values, get) {
		for (var i = 0; i < values.length; i++) {
			var r = itemRule(values[i], get);
			if (r !== true)
				return r;
		}
		return true;
	};
}

/* A single option's one value. */
function one(rule) {
	return function(values, get) {
		return rule(values[0], get);
	};
}

var secs = function(lo, hi) { return one(number(lo, hi, true)); };
var num = function(lo, hi) { return one(number(lo, hi)); };

/* Knock steps: tcp:PORT/udp:PORT, no step equal to the one before (a
 * retransmitted SYN would count as the next knock); repeats further apart are fine. */
function knockSteps(values, get) {
	var r = each(portSpec)(values);
	if (r !== true)
		return r;
	if (values.length > 32)
		return _('At most %d knock steps').format(32);
	var steps = values.map(specOf);
	for (var i = 1; i < steps.length; i++)
		if (steps[i].proto === steps[i - 1].proto && steps[i].port === steps[i - 1].port)
			return _('Step %d repeats step %d: put a different port in between').format(i + 1, i);
	var own = guarded(get, actedList(get));
	for (var j = 0; j < steps.length; j++)
		for (var k = 0; k < own.length; k++)
			if (steps[j].proto === own[k].proto && steps[j].port === own[k].port)
				return _('Knock step %s is a port this sequence guards: pick another port').format(values[j]);
	return true;
}

function execList(values) {
	if (values.length > 32)
		return _('At most %d items').format(32);
	if (values.length && values[0].charAt(0) !== '/')
		return _('The program must be an absolute path (no shell runs it, nothing searches PATH)');
	for (var i = 0; i < values.length; i++)
		if (new Blob([ values[i] ]).size > 1024 || values[i].indexOf('\0') >= 0)
			return _('An argument is longer than 1024 bytes');
	return true;
}

function symbols(values, get) {
	var width = get('width');
	var below = (digits(width) && +width >= 10 && +width <= 256) ? +width : 10;
	if (values.length > 8)
		return _('At most %d symbols').format(8);
	return each(function(v) {
		return (digits(v) && v.length <= 15 && +v < below) ? true : _('A symbol from 0 to %d').format(below - 1);
	})(values);
}

function toArray(x) {
	if (x == null || x === '')
		return [];
	return Array.isArray(x) ? x : [ x ];
}

/* 'tcp:22' → { proto, port } (null when not a port spec). */
function specOf(v) {
	var m = /^(tcp|udp):([0-9]{1,5})$/i.exec(v || '');
	return (m && +m[2] >= 1 && +m[2] <= 65535) ? { proto: m[1].toLowerCase(), port: +m[2] } : null;
}

/* The ports a section guards: its open/close list (by action) or allow list. */
function guarded(get, listName) {
	return toArray(get(listName)).map(specOf).filter(function(p) { return p; });
}

/* A knock port range [lo, hi] of `proto` must hold none of the section's own guarded ports. */
function rangeFree(lo, hi, proto, ports) {
	for (var i = 0; i < ports.length; i++)
		if (ports[i].proto === proto && ports[i].port >= lo && ports[i].port <= hi)
			return _('The knock range %s:%d-%d holds %s:%d, a port this section guards: move the range')
				.format(proto, lo, hi, ports[i].proto, ports[i].port);
	return true;
}

function actedList(get) {
	return get('action') === 'close' ? 'close' : 'open';
}

function orDefault(get, name, dflt) {
	var v = get(name);
	return (v == null || v === '') ? dflt : v;
}

/* Per section type and option: { rule, list, dflt }. `dflt` is the daemon's
 * default where it has one (shown as the placeholder; a test checks that
 * writing it changes nothing). */
/* A TOTP sequence's (one with a key) guessing strength, as `postern check` computes it:
 * knocks x log2(ports per band) - log2(3 steps accepted); below 48 bits it is
 * refused. Values that are not numbers yet are judged by their own rules. */
function totpStrength(range, length) {
	if (!digits(range) || !digits(length) || +length < 2 || +range < 2)
		return true;
	var band = Math.floor(+range / +length);
	if (band < 16)
		return true; /* knock_base's rule says so, as the daemon does */
	var bits = +length * Math.log2(Math.max(band, 1)) - Math.log2(3);
	if (bits >= 48)
		return true;
	return _('A guessed sequence succeeds once in 2^%s tries (%d knocks in bands of %d ports); at least 48 bits are needed: raise the port range or the number of knocks')
		.format((Math.floor(bits * 10) / 10).toFixed(1), +length, band);
}

var RULES = {
	postern: {
		enabled: { rule: one(bool), dflt: '1' },
		interface: { list: true, rule: each(uciName) },
		device: { list: true, rule: each(deviceName) },
		backend: { rule: one(choice([ 'auto', 'fw4', 'fw3', 'nft', 'dry-run' ])), dflt: 'auto' },
		spa_port: { rule: one(port), dflt: '62201' },
		max_skew: { rule: secs(1, 86400), dflt: '120' },
		source_skew: { rule: secs(1, 86400), dflt: '15' },
		log_level: { rule: one(choice([ 'error', 'warn', 'info', 'debug', 'trace' ])), dflt: 'info' },
		spa_verify_budget: { rule: num(32, 1000000), dflt: '1000' },
		state_dir: { rule: one(absPath), dflt: '/var/run/postern' },
		user: { rule: one(userName) },
		ban_threshold: { rule: num(1, 100000), dflt: '10' },
		ban_window: { rule: secs(1, 86400), dflt: '60' },
		ban_duration: { rule: secs(0, 86400), dflt: '300' },
		ban_ipv6_prefix: { rule: num(32, 128), dflt: '64' },
		trusted: { list: true, rule: each(cidr) }
	},
	sequence: {
		enabled: { rule: one(bool), dflt: '1' },
		knock: { list: true, rule: knockSteps },
		timeout: { rule: secs(1, 3600), dflt: '10' },
		action: { rule: one(choice([ 'open', 'close' ])), dflt: 'open' },
		open: { list: true, rule: each(portSpec) },
		close: { list: true, rule: each(portSpec) },
		duration: { rule: secs(1, 86400), dflt: '30' },
		on_open: { rule: one(actionName) },
		on_close: { rule: one(actionName) },
		key: { rule: one(key32) },
		period: { rule: num(5, 3600), dflt: '30' },
		length: { rule: one(function(v, get) {
			var r = number(2, 16)(v);
			return r !== true || !get('key') ? r : totpStrength(orDefault(get, 'knock_range', '12288'), v);
		}), dflt: '6' },
		knock_base: { rule: one(function(v, get) {
			var r = number(1, 65535)(v);
			if (r !== true)
				return r;
			var range = orDefault(get, 'knock_range', '12288');
			if (digits(range) && +range >= 2 && +range <= 65535 && +v + +range - 1 > 65535)
				return _('knock_base + knock_range runs past port 65535');
			var length = orDefault(get, 'length', '6');
			if (digits(range) && +range >= 2 && +range <= 65535 && digits(length) && +length >= 2 && +length <= 16 &&
			    Math.floor(+range / +length) < 16)
				return _('knock_range gives each knock fewer than 16 ports');
			if (digits(range) && +range >= 2 && +range <= 65535)
				return rangeFree(+v, +v + +range - 1, orDefault(get, 'knock_proto', 'tcp'), guarded(get, actedList(get)));
			return true;
		}) },
		knock_range: { rule: one(function(v, get) {
			var r = number(2, 65535)(v);
			return r !== true || !get('key') ? r : totpStrength(v, orDefault(get, 'length', '6'));
		}), dflt: '12288' },
		knock_proto: { rule: one(choice([ 'tcp', 'udp' ])), dflt: 'tcp' }
	},
	client: {
		enabled: { rule: one(bool), dflt: '1' },
		key: { rule: one(key32) },
		allow: { list: true, rule: each(portSpec) },
		max_duration: { rule: secs(1, 86400), dflt: '300' },
		source: { list: true, rule: each(cidr) },
		allow_other_address: { rule: one(bool), dflt: '0' },
		require_address: { rule: one(bool), dflt: '0' },
		fwknop_key: { rule: one(secret(32)) },
		fwknop_hmac_key: { rule: one(function(v, get) {
			var r = secret(128)(v);
			if (r === true && v === get('fwknop_key'))
				return _('The HMAC key must differ from the fwknop key');
			return r;
		}) },
		fwknop_hmac_type: { rule: one(choice([ 'sha1', 'sha256', 'sha384', 'sha512' ])), dflt: 'sha256' },
		fwknop_timeout: { rule: one(function(v, get) {
			var r = number(1, 86400, true)(v);
			if (r !== true)
				return r;
			var max = orDefault(get, 'max_duration', '300');
			if (digits(max) && +max >= 1 && +max <= 86400 && +v > +max)
				return _('Longer than the client\'s longest grant (%s s)').format(max);
			return true;
		}), dflt: '30' },
		knock_base: { rule: one(function(v, get) {
			var r = number(1, 65024)(v);
			if (r === true && !get('key'))
				return _('Authenticated knocks use the client\'s postern key: set the key first');
			if (r === true)
				return rangeFree(+v, +v + 511, orDefault(get, 'knock_proto', 'tcp'), guarded(get, 'allow'));
			return r;
		}) },
		knock_proto: { rule: one(choice([ 'tcp', 'udp' ])), dflt: 'tcp' },
		knock_timeout: { rule: secs(1, 3600), dflt: '10' },
		command: { list: true, rule: each(actionName) },
		forward: { list: true, rule: each(actionName) },
		on_open: { rule: one(actionName) },
		on_close: { rule: one(actionName) },
		default_access: { list: true, rule: function(values, get) {
			var r = each(portSpec)(values);
			if (r !== true)
				return r;
			if (values.length > 16)
				return _('At most %d ports').format(16);
			var allow = guarded(get, 'allow');
			for (var i = 0; i < values.length; i++) {
				var p = specOf(values[i]);
				var found = allow.some(function(a) { return a.proto === p.proto && a.port === p.port; });
				if (!found)
					return _('%s is not in the client\'s allow list').format(values[i]);
			}
			return true;
		} }
	},
	encoded: {
		enabled: { rule: one(bool), dflt: '1' },
		knock_base: { rule: one(function(v, get) {
			var r = number(1, 65535)(v);
			if (r !== true)
				return r;
			var width = orDefault(get, 'width', '10');
			if (digits(width) && +width >= 10 && +width <= 256 && +v + 2 * +width - 1 > 65535)
				return _('knock_base + 2 x width runs past port 65535');
			if (digits(width) && +width >= 10 && +width <= 256)
				return rangeFree(+v, +v + 2 * +width - 1, 'tcp', guarded(get, 'allow'));
			return true;
		}) },
		width: { rule: num(10, 256), dflt: '10' },
		header: { list: true, rule: symbols },
		footer: { list: true, rule: symbols },
		port_digits: { rule: num(1, 5), dflt: '5' },
		duration_digits: { rule: num(0, 4), dflt: '0' },
		allow: { list: true, rule: function(values, get) {
			var r = each(portSpec)(values);
			if (r !== true)
				return r;
			var d = orDefault(get, 'port_digits', '5');
			if (digits(d) && +d >= 1 && +d <= 5)
				for (var i = 0; i < values.length; i++)
					if (+values[i].split(':')[1] >= Math.pow(10, +d))
						return _('%s has more than port_digits digits').format(values[i]);
			return true;
		} },
		duration: { rule: secs(1, 86400), dflt: '30' },
		max_duration: { rule: secs(1, 86400), dflt: '3600' },
		timeout: { rule: secs(1, 3600), dflt: '10' }
	},
	command: {
		enabled: { rule: one(bool), dflt: '1' },
		exec: { list: true, rule: execList },
		timeout: { rule: secs(1, 3600), dflt: '30' },
		user: { rule: one(userName) },
		fwknop_match: { rule: one(function(v) {
			return (v.length >= 1 && v.length <= 160 && /^[\x20-\x7e]*$/.test(v)) ? true :
				_('Printable ASCII, at most 160 characters (the text of fwknop -C)');
		}) }
	},
	forward: {
		enabled: { rule: one(bool), dflt: '1' },
		proto: { rule: one(choice([ 'tcp', 'udp' ])) },
		port: { rule: one(port) },
		to: { rule: one(lanHost(4)) },
		to6: { rule: one(lanHost(6)) },
		to_port: { rule: one(port) }
	},
	peer: {
		enabled: { rule: one(bool), dflt: '1' },
		address: { rule: one(unicast) },
		key: { rule: one(key32) },
		key_file: { rule: one(function(v, get) {
			if (toArray(get('key')).length)
				return _('Give key or key_file, not both');
			return absPath(v);
		}) },
		port: { rule: one(port), dflt: '62202' },
		interface: { rule: one(deviceName) },
		source: { rule: one(function(v, get) {
			var r = unicast(v);
			var a = parseAddr(toArray(get('address'))[0] || '');
			if (r === true && a && a.length !== parseAddr(v).length)
				return _('The source and the peer address must be of the same family');
			return r;
		}) }
	}
};

return baseclass.extend({
	RULES: RULES,

	/* true, or the message for option `option` of a `type` section holding `values`. */
	check: function(type, option, values, get) {
		var r = (RULES[type] || {})[option];
		if (!r)
			return _('Unknown option %s').format(option);
		return r.rule(values, get || function() { return null; });
	},

	/* The daemon's default of an option (null: none). */
	dflt: function(type, option) {
		var r = (RULES[type] || {})[option];
		return (r && r.dflt != null) ? r.dflt : null;
	},

	base64Decode: base64Decode,
	base64Encode: base64Encode
});
