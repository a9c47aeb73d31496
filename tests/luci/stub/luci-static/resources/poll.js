// STUB of LuCI's poll module (our own code): add(fn, seconds) runs fn periodically.
'use strict';
return { add: function(fn, interval) { window.setInterval(fn, (interval || 5) * 1000); } };
