// Runs the rpcd ucode plugin's methods as rpcd would (request objects with
// args), printing one JSON line per call. Used by tests/luci.rs when a ucode
// interpreter is at hand (UCODE=/path/to/ucode; CI has none: no registry
// ships it). ARGV: the plugin file (its postern path already substituted).
let m = loadfile(ARGV[0])()['luci.postern'];
let calls = [
	[ 'methods', null ],
	[ 'status', {} ],
	[ 'check', { config: "config client 'x'\n\tlist allow 'tcp:22'\n" } ],
	[ 'check', { config: "config postern 'main'\n\toption spa_port '62201'\n" } ],
	[ 'check', { config: 5 } ],
	[ 'revoke', { addr: "192.0.2.1'; touch " + ARGV[1] + "; '", port: 'tcp:22' } ],
	[ 'unban', { net: '192.0.2.0/24' } ]
];
for (let c in calls) {
	if (c[0] == 'methods')
		print(sprintf('%J\n', sort(keys(m))));
	else
		print(sprintf('%J\n', m[c[0]].call({ args: c[1] })));
}
