'use strict';
'require baseclass';

/*
 * What a client needs, made from its 'config client' section: the stanza of
 * ~/.config/postern/client.conf (the key stays in a key file, never on a
 * command line), the command to run, the text of its QR code, and new keys
 * (postern's and fwknop's) from the browser's CSPRNG.
 */

var PLACEHOLDER = 'ROUTER_PUBLIC_ADDRESS_HERE';

function quote(v) {
	return '\'' + String(v).replace(/'/g, '\'\\\'\'') + '\'';
}

function randomBase64(n) {
	var bytes = new Uint8Array(n);
	(globalThis.crypto || window.crypto).getRandomValues(bytes);
	var s = '';
	for (var i = 0; i < bytes.length; i++)
		s += String.fromCharCode(bytes[i]);
	return btoa(s);
}

/* c: { name, key, allow: [], command: [], forward: [], fwknop_key, fwknop_hmac_key, fwknop_hmac_type },
 * where: { host, spaPort }. */
function access(c) {
	return (c.allow || []).map(function(p) { return p.replace(':', '/'); });
}

function keyFile(c) {
	return '~/.config/postern/' + c.name + '.key';
}

/* The client.conf stanza; with `withKey` the key itself instead of key_file (for the QR code only). */
function stanza(c, where, withKey) {
	var lines = [ 'config stanza ' + quote(c.name),
		'\toption host ' + quote(where.host || PLACEHOLDER) ];
	lines.push(withKey ? '\toption key ' + quote(c.key) : '\toption key_file ' + quote(keyFile(c)));
	access(c).forEach(function(a) { lines.push('\tlist access ' + quote(a)); });
	if (where.spaPort && String(where.spaPort) !== '62201')
		lines.push('\toption port ' + quote(where.spaPort));
	return lines.join('\n') + '\n';
}

/* The commands to run on the client: open the ports, or run a command / open a forward. */
function commands(c) {
	var out = [];
	if (access(c).length)
		out.push('postern spa --stanza ' + c.name);
	(c.command || []).forEach(function(n) { out.push('postern spa --stanza ' + c.name + ' --command ' + n); });
	(c.forward || []).forEach(function(n) { out.push('postern spa --stanza ' + c.name + ' --forward ' + n); });
	return out;
}

/* fwknop's client settings (~/.fwknoprc), keys as fwknop --key-gen prints them. */
function fwknoprc(c, where) {
	var lines = [ '[' + c.name + ']',
		'SPA_SERVER          ' + (where.host || PLACEHOLDER),
		'SPA_SERVER_PORT     ' + (where.spaPort || '62201'),
		'ACCESS              ' + (access(c).join(',') || 'tcp/22'),
		'ALLOW_IP            source',
		'USE_HMAC            Y',
		'HMAC_DIGEST_TYPE    ' + (c.fwknop_hmac_type || 'sha256').toUpperCase(),
		'KEY_BASE64          (the fwknop key)',
		'HMAC_KEY_BASE64     (the fwknop HMAC key)' ];
	return lines.join('\n') + '\n';
}

/* What the QR code carries: the keys as the Fwknop2 app scans them when the
 * client has fwknop keys, else postern's stanza with its key. */
function qrText(c, where) {
	if (c.fwknop_key && c.fwknop_hmac_key)
		return 'KEY_BASE64:' + c.fwknop_key + ' HMAC_KEY_BASE64:' + c.fwknop_hmac_key;
	return stanza(c, where, true);
}

return baseclass.extend({
	PLACEHOLDER: PLACEHOLDER,
	stanza: stanza,
	commands: commands,
	fwknoprc: fwknoprc,
	qrText: qrText,
	keyFile: keyFile,
	/* A postern key: 32 random bytes (as postern keygen). */
	newKey: function() { return randomBase64(32); },
	/* fwknop keys as fwknop --key-gen makes them: a 32-byte key and a 64-byte HMAC key. */
	newFwknopKeys: function() { return { key: randomBase64(32), hmac: randomBase64(64) }; }
});
