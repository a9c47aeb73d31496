// One rpcd call of the ucode plugin: ARGV = plugin file, method, JSON args.
// Prints the method's reply as JSON (server.js uses it when UCODE is set).
let m = loadfile(ARGV[0])()['luci.postern'];
print(sprintf('%J\n', m[ARGV[1]].call({ args: json(ARGV[2]) })));
