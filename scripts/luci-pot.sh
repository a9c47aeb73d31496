#!/usr/bin/env bash
# Writes openwrt/luci-app-postern/po/templates/postern.pot: every _('...')
# string of the page's JavaScript, in file order, once each (what LuCI's
# build/i18n-scan.pl extracts). tests/luci.rs checks its strings are current.
#   scripts/luci-pot.sh [--check]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
app="$top/openwrt/luci-app-postern"
out="$app/po/templates/postern.pot"
new=$(python3 - "$app/htdocs" <<'PY'
import os, re, sys
root = sys.argv[1]
files = []
for d, _, names in sorted(os.walk(root)):
    files += [os.path.join(d, n) for n in sorted(names) if n.endswith('.js')]
seen, out = {}, []
# _('…') and _("…") with the JS escapes \' \" \\ \n; adjacent '...' + '...' joined.
lit = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
call = re.compile(r"(?<![\w.])_\(\s*((?:" + lit + r")(?:\s*\+\s*(?:" + lit + r"))*)\s*[,)]", re.S)
def unquote(s):
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {'n': '\n', 't': '\t'}.get(m.group(1), m.group(1)), body)
for f in files:
    text = open(f, encoding='utf-8').read()
    rel = os.path.relpath(f, os.path.dirname(root))
    for m in call.finditer(text):
        parts = re.findall(lit, m.group(1))
        msg = ''.join(unquote(p) for p in parts)
        line = text.count('\n', 0, m.start()) + 1
        if msg not in seen:
            seen[msg] = len(out)
            out.append([msg, [f"{rel}:{line}"]])
        else:
            out[seen[msg]][1].append(f"{rel}:{line}")
def po(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n').replace('\t', '\\t') + '"'
print('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n')
for msg, refs in out:
    print('#: ' + ' '.join(refs))
    print('msgid ' + po(msg))
    print('msgstr ""\n')
PY
)
if [ "${1:-}" = --check ]; then
	# The strings must match; the #: line references may lag behind.
	[ -f "$out" ] && [ "$(grep -v '^#:' "$out")" = "$(printf '%s\n' "$new" | grep -v '^#:')" ] ||
		{ echo "luci-pot: $out lacks or has extra strings: run scripts/luci-pot.sh" >&2; exit 1; }
	exit 0
fi
mkdir -p "$(dirname "$out")"
printf '%s\n' "$new" >"$out"
echo "$out"
