// STUB of LuCI's ui module (our own code): notifications above the page,
// one modal dialog at a time (#modal_overlay .modal), createHandlerFn, and
// changes.apply (commit through uci.apply, then a notice).
'use strict';
'require uci';
function main() { return document.getElementById('maincontent'); }
var ui = {
	addNotification: function(title, children, cls) {
		var n = E('div', { 'class': 'alert-message ' + (cls || '') }, [ title ? E('h4', {}, title) : null, children ]);
		main().insertBefore(n, main().firstChild);
		return n;
	},
	showModal: function(title, children) {
		var overlay = document.getElementById('modal_overlay');
		if (!overlay) {
			overlay = E('div', { 'id': 'modal_overlay' }, E('div', { 'class': 'modal' }));
			document.body.appendChild(overlay);
		}
		var modal = overlay.firstChild;
		modal.replaceChildren(E('h4', {}, title), E('div', { 'class': 'modal-body' }, children));
		overlay.style.display = 'block';
		document.body.classList.add('modal-overlay-active');
		return modal;
	},
	hideModal: function() {
		var overlay = document.getElementById('modal_overlay');
		if (overlay) {
			overlay.style.display = 'none';
			overlay.firstChild.replaceChildren();
		}
		document.body.classList.remove('modal-overlay-active');
	},
	createHandlerFn: function(ctx, fn) {
		var args = Array.prototype.slice.call(arguments, 2);
		return function(ev) {
			var btn = ev && ev.currentTarget;
			if (btn)
				btn.classList.add('spinning');
			return Promise.resolve(fn.apply(ctx, args.concat([ ev ]))).finally(function() {
				if (btn)
					btn.classList.remove('spinning');
			});
		};
	},
	changes: {
		apply: function(checked) {
			return uci.apply().then(function() {
				ui.addNotification(null, E('p', {}, 'Configuration changes applied.'), 'info applied');
			});
		}
	}
};
return ui;
