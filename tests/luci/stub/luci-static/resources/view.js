// STUB of LuCI's view module (our own code): the class views extend; the
// default handleSave saves every map of the page, handleSaveApply saves and
// applies (as LuCI's view.js).
'use strict';
'require baseclass';
'require ui';
return baseclass.extend({
	load: function() { return null; },
	render: function() { return E('div'); },
	handleSave: function(ev) {
		return Promise.all(Array.prototype.map.call(document.querySelectorAll('.cbi-map'), function(n) {
			return n.__map ? n.__map.save() : null;
		}));
	},
	handleSaveApply: function(ev, mode) {
		return this.handleSave(ev).then(function() { ui.changes.apply(mode == '0'); });
	}
});
