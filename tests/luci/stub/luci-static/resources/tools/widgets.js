// STUB of LuCI's tools.widgets (our own code): NetworkSelect as a list of network names.
'use strict';
'require form';
return { NetworkSelect: form.DynamicList };
