'use strict';
'require baseclass';

/*
 * The staged configuration as UCI text, for `postern check` before saving.
 * LuCI's uci module holds the page's changes on top of what rpcd returned
 * (which already includes this session's staged, unapplied changes), so
 * uci.sections('postern') is exactly what Save & Apply would commit. This
 * renders it in order and remembers which section and option each line
 * holds, so the daemon's file:line errors can name them.
 */

function quote(v) {
	return '\'' + String(v).replace(/'/g, '\'\\\'\'') + '\'';
}

/* sections: uci.sections('postern') (objects with .name, .type, .anonymous and options). */
function render(sections) {
	var lines = [], where = [ null ];
	function add(text, at) {
		lines.push(text);
		where.push(at);
	}
	sections.forEach(function(s) {
		var id = { sid: s['.name'], type: s['.type'], option: null };
		add('config ' + s['.type'] + (s['.anonymous'] ? '' : ' ' + quote(s['.name'])), id);
		Object.keys(s).filter(function(k) { return k.charAt(0) !== '.'; }).forEach(function(k) {
			var v = s[k];
			if (Array.isArray(v))
				v.forEach(function(item, i) { add('\tlist ' + k + ' ' + quote(item), { sid: id.sid, type: id.type, option: k, item: i }); });
			else
				add('\toption ' + k + ' ' + quote(v), { sid: id.sid, type: id.type, option: k });
		});
		add('', id);
	});
	return { text: lines.join('\n') + '\n', where: where };
}

/* `postern check --json` errors → [{ sid, type, option, message }] by their lines. */
function explain(errors, rendered) {
	return (errors || []).map(function(e) {
		var at = rendered.where[e.line] || {};
		return { sid: at.sid || null, type: at.type || null, option: at.option || null, message: e.message };
	});
}

return baseclass.extend({ render: render, explain: explain, quote: quote });
