// STUB of LuCI's form module (our own code, written from LuCI's documented
// API, not copied): Map, NamedSection, GridSection (a table plus an edit
// dialog per section), and the options Value, Flag, ListValue, DynamicList,
// Button, DummyValue, with what postern's page uses of them: title,
// description, placeholder, default, rmempty, optional, modalonly, password,
// depends(), validate(), allowduplicates, cfgvalue/write/remove overrides,
// renderWidget, onclick. Behaviours LuCI has and the test relies on, kept:
//  - an invalid value shows its validate() message at the field;
//  - a DynamicList without allowduplicates drops a repeated item silently;
//  - parse() rejects with 'Option "X" contains an invalid input value.' or
//    'Option "X" must not be empty.' (rmempty = false, not optional);
//  - the GridSection dialog's Save swallows a parse error (no message: the
//    page must show its own).
'use strict';
'require baseclass';
'require uci';
'require ui';

var CBIMap = baseclass.extend({
	__init__: function(config, title, description) {
		this.config = config;
		this.title = title;
		this.description = description;
		this.children = [];
		this.data = uci;
	},
	section: function(Cls) {
		var args = Array.prototype.slice.call(arguments, 1);
		var s = Object.create(Cls.prototype);
		Cls.apply(s, [ this ].concat(args));
		this.children.push(s);
		return s;
	},
	lookupOption: function(name, section_id) {
		var type = (uci.get(this.config, section_id) || {})['.type'];
		for (var i = 0; i < this.children.length; i++) {
			var s = this.children[i];
			if (s.sectiontype !== type)
				continue;
			for (var j = 0; j < s.children.length; j++)
				if (s.children[j].option === name)
					return [ s.children[j], section_id ];
		}
		return null;
	},
	load: function() { return uci.load(this.config); },
	parse: function() {
		var tasks = [];
		this.children.forEach(function(s) {
			s.cfgsections().forEach(function(sid) {
				s.children.forEach(function(o) {
					if (o.getUIElement(sid))
						tasks.push(o.parse(sid));
				});
			});
		});
		return Promise.all(tasks);
	},
	save: function(cb, silent) {
		var self = this;
		return this.parse().then(function() { return uci.save(); }).then(function() { return self.rerender(); })
			.catch(function(e) {
				if (!silent)
					ui.addNotification('Save error', E('p', {}, e.message), 'error');
				return Promise.reject(e);
			});
	},
	rerender: function() {
		var old = this.root;
		return this.render().then(function(node) {
			if (old && old.parentNode)
				old.parentNode.replaceChild(node, old);
			return node;
		});
	},
	render: function() {
		var self = this;
		var node = E('div', { 'class': 'cbi-map', 'id': 'cbi-' + this.config }, [
			this.title ? E('h2', {}, this.title) : null,
			this.description ? E('div', { 'class': 'cbi-map-descr' }, this.description) : null
		]);
		this.children.forEach(function(s) { node.appendChild(s.render()); });
		node.__map = this;
		this.root = node;
		return Promise.resolve(node);
	}
});

function isEmpty(v) {
	return v == null || v === '' || (Array.isArray(v) && !v.length);
}

var AbstractSection = {
	init: function(map, title, description) {
		this.map = map;
		this.title = title;
		this.description = description;
		this.children = [];
	},
	option: function(Cls, option, title, description) {
		var o = Object.create(Cls.prototype);
		Cls.call(o, this.map, this, option, title, description);
		this.children.push(o);
		return o;
	},
	formvalue: function(sid, name) {
		var found = this.children.filter(function(o) { return o.option === name; })[0];
		return found ? found.formvalue(sid) : null;
	},
	renderOption: function(o, sid) {
		var widget = o.renderWidget(sid, o.cfgvalue(sid));
		var row = E('div', { 'class': 'cbi-value', 'data-name': o.option, 'data-section': sid }, [
			E('label', { 'class': 'cbi-value-title' }, o.title || o.option),
			E('div', { 'class': 'cbi-value-field' }, [ widget,
				o.description ? E('div', { 'class': 'cbi-value-description' }, o.description) : null,
				E('div', { 'class': 'cbi-value-error' }) ])
		]);
		o.rows[sid] = row;
		return row;
	},
	/* Shows or hides the options of `sid` by their depends(). */
	checkDepends: function(sid) {
		this.children.forEach(function(o) {
			if (o.rows[sid])
				o.rows[sid].style.display = o.isActive(sid) ? '' : 'none';
		});
	}
};

var CBINamedSection = function(map, name, type, title, description) {
	AbstractSection.init.call(this, map, title, description);
	this.section = name;
	this.sectiontype = type;
};
CBINamedSection.prototype = Object.assign({}, AbstractSection, {
	cfgsections: function() { return [ this.section ]; },
	render: function() {
		var self = this, sid = this.section;
		var node = E('div', { 'class': 'cbi-section', 'data-type': this.sectiontype }, [ E('h3', {}, this.title) ]);
		this.children.forEach(function(o) { node.appendChild(self.renderOption(o, sid)); });
		this.checkDepends(sid);
		node.addEventListener('widget-change', function() { self.checkDepends(sid); });
		return node;
	}
});

var CBIGridSection = function(map, type, title, description) {
	AbstractSection.init.call(this, map, title, description);
	this.sectiontype = type;
	this.addremove = false;
	this.anonymous = true;
};
CBIGridSection.prototype = Object.assign({}, AbstractSection, {
	cfgsections: function() {
		return uci.sections(this.map.config, this.sectiontype).map(function(s) { return s['.name']; });
	},
	render: function() {
		var self = this;
		var node = E('div', { 'class': 'cbi-section', 'data-type': this.sectiontype }, [ E('h3', {}, this.title) ]);
		var cols = this.children.filter(function(o) { return !o.modalonly; });
		var table = E('table', { 'class': 'table cbi-section-table' }, [
			E('tr', { 'class': 'tr table-titles' }, [ E('th', {}, 'Name') ].concat(cols.map(function(o) { return E('th', {}, o.title || o.option); })).concat([ E('th', {}, '') ]))
		]);
		this.cfgsections().forEach(function(sid) {
			table.appendChild(E('tr', { 'class': 'tr cbi-section-table-row', 'data-sid': sid }, [ E('td', {}, sid) ].concat(cols.map(function(o) {
				var v = o.cfgvalue(sid);
				return E('td', { 'class': 'td', 'data-name': o.option }, o instanceof CBIFlag ? (v == null ? o.default : v) : (Array.isArray(v) ? v.join(' ') : (v == null ? '' : v)));
			})).concat([ E('td', {}, [
				E('button', { 'class': 'cbi-button cbi-button-edit', 'click': function() { self.renderModal(sid, false); } }, 'Edit'),
				E('button', { 'class': 'cbi-button cbi-button-remove', 'click': function() { uci.remove(self.map.config, sid); self.map.rerender(); } }, 'Delete')
			]) ])));
		});
		node.appendChild(table);
		if (this.addremove) {
			var name = E('input', { 'class': 'cbi-section-create-name', 'placeholder': 'name' });
			node.appendChild(E('div', { 'class': 'cbi-section-create' }, [ name,
				E('button', { 'class': 'cbi-button cbi-button-add', 'click': function() {
					if (!/^[A-Za-z0-9_]+$/.test(name.value))
						return;
					var sid = uci.add(self.map.config, self.sectiontype, name.value);
					self.children.forEach(function(o) {
						if (o.default != null && !(o instanceof CBIButton) && !(o instanceof CBIDummyValue) && o.option.charAt(0) !== '_')
							uci.set(self.map.config, sid, o.option, o.default);
					});
					self.renderModal(sid, true);
				} }, 'Add') ]));
		}
		this.node = node;
		return node;
	},
	renderModal: function(sid, isNew) {
		var self = this;
		var body = E('div', { 'class': 'cbi-section-node' });
		var modalMap = {
			config: this.map.config, data: uci, section: sid, children: [ this ], root: body,
			lookupOption: function(name, s) { return self.map.lookupOption(name, s); },
			parse: function() {
				return Promise.all(self.children.filter(function(o) { return o.getUIElement(sid); })
					.map(function(o) { return o.parse(sid); }));
			}
		};
		this.children.forEach(function(o) { body.appendChild(self.renderOption(o, sid)); });
		body.addEventListener('widget-change', function() { self.checkDepends(sid); });
		ui.showModal((this.title || '') + ' » ' + sid, [ body, E('div', { 'class': 'right' }, [
			E('button', { 'class': 'cbi-button cbi-button-cancel', 'click': function() {
				self.children.forEach(function(o) { delete o.widgets[sid]; });
				if (isNew)
					uci.remove(self.map.config, sid);
				ui.hideModal();
				self.map.rerender();
			} }, 'Dismiss'),
			E('button', { 'class': 'cbi-button cbi-button-positive important modal-save', 'click': function(ev) {
				return self.handleModalSave(modalMap, ev);
			} }, 'Save')
		]) ]);
		this.checkDepends(sid);
	},
	/* As LuCI's: the dialog's values into uci, then the table again; a parse
	 * error is swallowed (LuCI shows nothing either). */
	handleModalSave: function(modalMap, ev) {
		var self = this, sid = modalMap.section;
		return modalMap.parse().then(function() {
			self.children.forEach(function(o) { delete o.widgets[sid]; });
			ui.hideModal();
			return self.map.rerender();
		}).catch(function() {});
	}
});

var CBIAbstractValue = function(map, section, option, title, description) {
	this.map = map;
	this.section = section;
	this.option = option;
	this.title = title;
	this.description = description;
	this.rmempty = true;
	this.optional = false;
	this.deps = [];
	this.widgets = {};
	this.rows = {};
	this.choices = [];
};
CBIAbstractValue.prototype = {
	depends: function(field, value) {
		var d = {};
		if (typeof field === 'string')
			d[field] = value;
		else
			d = field;
		this.deps.push(d);
	},
	value: function(key, label) { this.choices.push([ key, label != null ? label : key ]); },
	cfgvalue: function(sid) { return uci.get(this.map.config, sid, this.option); },
	formvalue: function(sid) {
		var w = this.widgets[sid];
		return w ? w.getValue() : null;
	},
	getUIElement: function(sid) { return this.widgets[sid] || null; },
	isActive: function(sid) {
		if (!this.deps.length)
			return true;
		var self = this;
		return this.deps.some(function(d) {
			return Object.keys(d).every(function(name) {
				var found = self.map.lookupOption(name, sid);
				var v = found ? found[0].formvalue(sid) : uci.get(self.map.config, sid, name);
				if (v == null && found)
					v = found[0].cfgvalue(sid);
				if (v == null && found)
					v = found[0].default;
				var want = d[name];
				if (want instanceof RegExp)
					return want.test(v == null ? '' : String(v));
				return String(v == null ? '' : v) === String(want);
			});
		});
	},
	/* true or the message: validate() on the value (each item of a list). */
	check: function(sid) {
		var v = this.formvalue(sid);
		if (!this.validate)
			return true;
		var items = Array.isArray(v) ? v : [ v ];
		for (var i = 0; i < items.length; i++) {
			var r = this.validate(sid, items[i]);
			if (r !== true)
				return r;
		}
		return true;
	},
	showError: function(sid) {
		var r = this.isActive(sid) ? this.check(sid) : true;
		var row = this.rows[sid];
		if (row) {
			row.querySelector('.cbi-value-error').textContent = r === true ? '' : r;
			row.classList.toggle('cbi-value-invalid', r !== true);
		}
		return r;
	},
	parse: function(sid) {
		var title = this.title || this.option;
		if (!this.isActive(sid))
			return Promise.resolve(this.remove(sid));
		var r = this.showError(sid);
		if (r !== true)
			return Promise.reject(new TypeError('Option "%s" contains an invalid input value.'.format(title) + ' ' + r));
		var v = this.formvalue(sid);
		if (isEmpty(v)) {
			if (this.rmempty || this.optional)
				return Promise.resolve(this.remove(sid));
			return Promise.reject(new TypeError('Option "%s" must not be empty.'.format(title)));
		}
		return Promise.resolve(this.write(sid, v));
	},
	write: function(sid, v) { uci.set(this.map.config, sid, this.option, v); },
	remove: function(sid) { uci.unset(this.map.config, sid, this.option); },
	changed: function(sid, el) {
		this.showError(sid);
		el.dispatchEvent(new CustomEvent('widget-change', { bubbles: true }));
	},
	renderWidget: function(sid, cfgvalue) {
		var self = this, v = cfgvalue != null ? cfgvalue : this.default;
		var input = E('input', { 'type': this.password ? 'password' : 'text', 'class': 'cbi-input-text',
			'name': this.option, 'placeholder': this.placeholder != null ? this.placeholder : null });
		input.value = v == null ? '' : v;
		input.addEventListener('input', function() { self.changed(sid, input); });
		this.widgets[sid] = { getValue: function() { return input.value; }, setValue: function(x) { input.value = x; self.changed(sid, input); } };
		return input;
	}
};

function subclass(render, extra) {
	var C = function() { CBIAbstractValue.apply(this, arguments); };
	C.prototype = Object.assign(Object.create(CBIAbstractValue.prototype), extra || {});
	if (render)
		C.prototype.renderWidget = render;
	return C;
}

var CBIValue = subclass(null);

var CBIFlag = subclass(function(sid, cfgvalue) {
	var self = this, v = cfgvalue != null ? cfgvalue : (this.default != null ? this.default : '0');
	var box = E('input', { 'type': 'checkbox', 'name': this.option });
	box.checked = v === '1';
	box.addEventListener('change', function() { self.changed(sid, box); });
	this.widgets[sid] = { getValue: function() { return box.checked ? '1' : '0'; }, setValue: function(x) { box.checked = x === '1'; } };
	return box;
});

var CBIListValue = subclass(function(sid, cfgvalue) {
	var self = this, v = cfgvalue != null ? cfgvalue : this.default;
	var sel = E('select', { 'name': this.option }, this.choices.map(function(c) { return E('option', { 'value': c[0] }, c[1]); }));
	if (v != null)
		sel.value = v;
	sel.addEventListener('change', function() { self.changed(sid, sel); });
	this.widgets[sid] = { getValue: function() { return sel.value; }, setValue: function(x) { sel.value = x; } };
	return sel;
});

var CBIDynamicList = subclass(function(sid, cfgvalue) {
	var self = this, items = L.toArray(cfgvalue != null ? cfgvalue : this.default).slice();
	var list = E('div', { 'class': 'cbi-dynlist', 'data-name': this.option });
	var input = E('input', { 'class': 'cbi-input-text cbi-dynlist-new', 'placeholder': this.placeholder != null ? this.placeholder : null });
	function draw() {
		list.replaceChildren.apply(list, items.map(function(it, i) {
			return E('div', { 'class': 'item' }, [ E('span', {}, it), E('button', { 'class': 'cbi-button remove', 'click': function(ev) {
				ev.preventDefault();
				items.splice(i, 1);
				draw();
				self.changed(sid, list);
			} }, '×') ]);
		}).concat([ input, E('button', { 'class': 'cbi-button cbi-button-add add-item', 'click': function(ev) {
			ev.preventDefault();
			add();
		} }, '+') ]));
	}
	function add() {
		var v = input.value;
		if (v === '')
			return;
		if (!self.allowduplicates && items.indexOf(v) >= 0) {
			input.value = '';
			return; /* LuCI drops a repeated item without a word */
		}
		items.push(v);
		input.value = '';
		draw();
		input.focus();
		self.changed(sid, list);
	}
	input.addEventListener('keydown', function(ev) {
		if (ev.key === 'Enter') {
			ev.preventDefault();
			add();
		}
	});
	draw();
	this.widgets[sid] = { getValue: function() { return items.slice(); }, setValue: function(x) { items = L.toArray(x).slice(); draw(); } };
	return list;
});

var CBIButton = subclass(function(sid) {
	var self = this;
	var b = E('button', { 'class': 'cbi-button', 'name': this.option, 'click': function(ev) {
		ev.preventDefault();
		return self.onclick && self.onclick(ev, sid);
	} }, this.inputtitle || this.title);
	this.widgets[sid] = { getValue: function() { return null; }, setValue: function() {} };
	return b;
}, { write: function() {}, remove: function() {} });

var CBIDummyValue = subclass(function(sid, cfgvalue) {
	this.widgets[sid] = { getValue: function() { return null; }, setValue: function() {} };
	return E('div', { 'class': 'cbi-dummy' }, cfgvalue == null ? '' : String(cfgvalue));
}, { write: function() {}, remove: function() {}, parse: function() { return Promise.resolve(); } });

return {
	Map: CBIMap,
	NamedSection: CBINamedSection,
	GridSection: CBIGridSection,
	TypedSection: CBIGridSection,
	Value: CBIValue,
	Flag: CBIFlag,
	ListValue: CBIListValue,
	DynamicList: CBIDynamicList,
	Button: CBIButton,
	DummyValue: CBIDummyValue
};
