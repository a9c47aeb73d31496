// STUB of LuCI's rpc module (our own code): declare() makes a function that
// calls a ubus method through the JSON-RPC endpoint /ubus with the session,
// as LuCI does; `expect` picks a member of the answer.
'use strict';
var id = 1;
function call(object, method, args) {
	return fetch('/ubus', {
		method: 'POST',
		headers: { 'Content-Type': 'application/json' },
		body: JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'call',
			params: [ L.env.sessionid || '00000000000000000000000000000000', object, method, args || {} ] })
	}).then(function(r) { return r.json(); }).then(function(reply) {
		if (reply.error)
			throw new Error(reply.error.message);
		var status = reply.result[0];
		if (status !== 0)
			throw new Error('ubus ' + object + ' ' + method + ': status ' + status);
		return reply.result[1];
	});
}
return {
	call: call,
	login: function(user, pass) {
		return call('session', 'login', { username: user, password: pass })
			.then(function(r) { return r && r.ubus_rpc_session; }, function() { return null; });
	},
	declare: function(o) {
		return function() {
			var args = {}, given = arguments;
			(o.params || []).forEach(function(p, i) { if (given[i] !== undefined) args[p] = given[i]; });
			return call(o.object, o.method, args).then(function(res) {
				var key = o.expect ? Object.keys(o.expect)[0] : '';
				if (key === '' || key == null)
					return res;
				return (res && res[key] !== undefined) ? res[key] : o.expect[key];
			});
		};
	}
};
