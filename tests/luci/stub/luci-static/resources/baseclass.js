// STUB of LuCI's baseclass (our own code): extend() makes a class whose
// constructor calls __init__; super(name, args) calls the parent's method.
'use strict';
function extend(props) {
	var Parent = this;
	var Cls = function() {
		if (this.__init__)
			this.__init__.apply(this, arguments);
	};
	Cls.prototype = Object.create(Parent.prototype);
	Object.keys(props || {}).forEach(function(k) { Cls.prototype[k] = props[k]; });
	Cls.prototype.constructor = Cls;
	Cls.extend = extend;
	Cls[L.CLASS_TAG] = true;
	return Cls;
}
var Base = function() {};
Base.prototype.super = function(name, args) {
	var proto = Object.getPrototypeOf(Object.getPrototypeOf(this));
	return proto[name].apply(this, args || []);
};
Base.extend = extend;
return { extend: function(props) { return extend.call(Base, props); } };
