#!/usr/bin/env python3
"""Writes an apk v3 package (the ADB format that OpenWrt 25.12's apk-tools
installs) from the stage that scripts/build-ipk.sh --stage-only leaves:

    STAGE/data/      the files, with their modes, as they are installed
    STAGE/control/   control (ipk fields), conffiles, preinst, postinst,
                     prerm, postrm (each optional except control)

    tools/mkapk.py --stage STAGE --out-dir DIR [--compression deflate|none]

prints the path of DIR/NAME-VERSION_ARCH.apk. The package carries what
OpenWrt's own build (include/package-pack.mk, `apk mkpkg`) puts in one:

- info: name; version PKG_VERSION-rPKG_RELEASE (the ipk's "X-Y" becomes
  "X-rY", checked against apk's version grammar); arch (ipk "all" becomes
  "noarch"); depends; description (one line); license; origin; url;
  maintainer; installed-size; build-time = SOURCE_DATE_EPOCH; and the
  package's unique id (the first 20 bytes of the SHA-256 of the metadata).
- paths: every directory (root included) with mode root:root, and every
  file with mode, owner, size, mtime and SHA-256; file contents follow the
  metadata in DATA blocks.
- lib/apk/packages/NAME.list (the file list OpenWrt's default_postinst and
  default_prerm read to enable the init script and run uci-defaults),
  NAME.conffiles and NAME.conffiles_static ("path sha256", what sysupgrade
  keeps), NAME.rusers when the control has Require-User.
- scripts: post-install, post-upgrade (PKG_UPGRADE=1), pre-deinstall,
  and pre-install/pre-upgrade/post-deinstall when the stage has
  preinst/postrm. apk passes the version, not the package name, so each
  script first exports pkgname (and root) for OpenWrt's functions.sh.

apk keeps modified files under /etc itself (protected paths: a changed
config survives removal and upgrades, a new default lands as .apk-new).

Unsigned: install with `apk add --allow-untrusted`. Reproducible: owners,
modes, order and times are fixed (SOURCE_DATE_EPOCH, default 0); directories
are always 0755.

Format (learned from apk-tools' doc/apk-v3.5.scd and src/adb.h,
src/apk_adb.c): "ADBd" + raw deflate of ("ADB." "pckg" blocks), or the
uncompressed "ADB." "pckg" blocks. A block is a little-endian u32
(type << 30 | 4 + length), the payload, zero padding to 8 bytes. Values
in the ADB block are u32 tags: 4 bits type, 28 bits immediate or offset.
"""

import argparse
import hashlib
import os
import re
import stat
import struct
import sys
import zlib

# Value types (high 4 bits of a value tag).
T_INT, T_INT32, T_INT64 = 0x1, 0x2, 0x3
T_BLOB8, T_BLOB16, T_BLOB32 = 0x8, 0x9, 0xA
T_ARRAY, T_OBJECT = 0xD, 0xE
NULL = 0

BLOCK_ADB, BLOCK_DATA = 0, 2
SCHEMA_PACKAGE = b"pckg"

# Field slots (1-based) of the package schemas.
PKG_INFO, PKG_PATHS, PKG_SCRIPTS = 1, 2, 3
PI = {
    "name": 1, "version": 2, "hashes": 3, "description": 4, "arch": 5,
    "license": 6, "origin": 7, "maintainer": 8, "url": 9,
    "build-time": 11, "installed-size": 12, "depends": 15,
}
DEP_NAME, DEP_VERSION, DEP_MATCH = 1, 2, 3
ACL_MODE, ACL_USER, ACL_GROUP = 1, 2, 3
FI_NAME, FI_ACL, FI_SIZE, FI_MTIME, FI_HASH = 1, 2, 3, 4, 5
DI_NAME, DI_ACL, DI_FILES = 1, 2, 3
SCRIPTS = {
    "pre-install": 2, "post-install": 3, "pre-deinstall": 4,
    "post-deinstall": 5, "pre-upgrade": 6, "post-upgrade": 7,
}
# apk's dependency match bits (apk_version.h): equal 1, less 2, greater 4.
DEP_OPS = {"<": 2, "<=": 3, "=": 1, ">=": 5, ">": 4}
# opkg's relations: << and >> are strict; its old < and > mean <= and >=.
OPKG_OPS = {"<<": "<", ">>": ">", "<": "<=", ">": ">="}

UNIQUE_ID_LEN = 20  # SHA-1 length, filled from SHA-256 (as apk mkpkg does)
DESCRIPTION_MAX = 256  # OpenWrt's apk truncates longer descriptions

# apk's version grammar: number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}
VERSION_RE = re.compile(
    r"[0-9]+(\.[0-9]+)*[a-z]?"
    r"(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*"
    r"(~[0-9a-f]+)?(-r[0-9]+)?"
)
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._+-]*")


class Fail(Exception):
    """A refusal with a message for the user."""


def tag(kind, value):
    return (kind << 28) | value


class Adb:
    """The ADB block being built: an append-only arena of values.

    Offset 0 holds the header (compat version 0, version 0, the root
    value); values are written children first and referred to by offset.
    Equal scalars are written once."""

    def __init__(self):
        self.buf = bytearray(8)
        self.seen = {}

    def _put(self, data, align, dedup=True):
        key = (bytes(data), align)
        if dedup and key in self.seen:
            return self.seen[key]
        self.buf += b"\0" * (-len(self.buf) % align)
        off = len(self.buf)
        if off >= 1 << 28:
            raise Fail("package metadata too large")
        self.buf += data
        if dedup:
            self.seen[key] = off
        return off

    def blob(self, data, dedup=True):
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return NULL
        n = len(data)
        if n <= 0xFF:
            return tag(T_BLOB8, self._put(struct.pack("<B", n) + data, 1, dedup))
        if n <= 0xFFFF:
            return tag(T_BLOB16, self._put(struct.pack("<H", n) + data, 2, dedup))
        return tag(T_BLOB32, self._put(struct.pack("<I", n) + data, 4, dedup))

    def int(self, n):
        if n < 1 << 28:
            return tag(T_INT, n)
        if n < 1 << 32:
            return tag(T_INT32, self._put(struct.pack("<I", n), 4))
        return tag(T_INT64, self._put(struct.pack("<Q", n), 4))

    def _slots(self, kind, vals):
        while vals and vals[-1] == NULL:
            vals = vals[:-1]
        if not vals:
            return NULL
        data = struct.pack("<%dI" % (len(vals) + 1), len(vals) + 1, *vals)
        return tag(kind, self._put(data, 4))

    def obj(self, fields):
        """fields: {slot: value}; unset slots are NULL."""
        top = max(fields, default=0)
        return self._slots(T_OBJECT, [fields.get(i, NULL) for i in range(1, top + 1)])

    def arr(self, vals):
        return self._slots(T_ARRAY, [v for v in vals if v != NULL])

    def set_root(self, val):
        struct.pack_into("<BBHI", self.buf, 0, 0, 0, 0, val)


def block(kind, payload):
    raw = 4 + len(payload)
    if raw > 0x3FFFFFFF:
        raise Fail("block too large")
    return struct.pack("<I", (kind << 30) | raw) + payload + b"\0" * (-raw % 8)


def read_control(path):
    """ipk control fields; continuation lines are joined with spaces."""
    fields, last = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if line.startswith((" ", "\t")) and last:
                fields[last] += " " + line.strip()
            elif ":" in line:
                last, value = line.split(":", 1)
                fields[last] = value.strip()
    return fields


def apk_version(ipk_version):
    """"X-Y" (PKG_VERSION-PKG_RELEASE) -> "X-rY"; refuses what apk refuses."""
    m = re.fullmatch(r"(.+)-([0-9]+)", ipk_version)
    version = f"{m.group(1)}-r{m.group(2)}" if m else ipk_version
    if not VERSION_RE.fullmatch(version):
        raise Fail(f"version '{version}' is not valid for apk "
                   "(number{.number}{letter}{_suffix{number}}{~hash}{-r#})")
    return version


def dependencies(text):
    """"libc, foo (>= 1.2)" (opkg syntax) -> [(name, apk op, version)],
    sorted by name."""
    deps = {}
    for item in filter(None, (d.strip() for d in text.split(","))):
        m = re.fullmatch(r"([^\s(<>=]+)\s*(?:\(?\s*(<<|>>|<=|>=|<|>|=)\s*([^\s)]+)\s*\)?)?", item)
        if not m or not NAME_RE.fullmatch(m.group(1)):
            raise Fail(f"dependency '{item}' is not understood")
        name, op, ver = m.groups()
        op = OPKG_OPS.get(op, op)
        if ver and not VERSION_RE.fullmatch(ver):
            raise Fail(f"dependency '{item}': '{ver}' is not an apk version")
        deps[name] = (name, op, ver)
    return [deps[k] for k in sorted(deps, key=str.encode)]


def walk(data_dir):
    """{dir relative path ("" = root): [(file name, full path)]}, sorted as
    apk sorts (bytewise)."""
    dirs = {"": []}
    for top, subdirs, names in os.walk(data_dir):
        rel = os.path.relpath(top, data_dir)
        rel = "" if rel == "." else rel
        for d in subdirs:
            if os.path.islink(os.path.join(top, d)):
                names.append(d)
            else:
                dirs[os.path.join(rel, d)] = []
        for n in names:
            p = os.path.join(top, n)
            if not stat.S_ISREG(os.lstat(p).st_mode):
                raise Fail(f"{p}: only regular files and directories are packaged")
            dirs[rel].append((n, p))
    return {d: sorted(dirs[d], key=lambda f: f[0].encode())
            for d in sorted(dirs, key=str.encode)}


def write_openwrt_lists(data_dir, name, conffiles, rusers):
    """lib/apk/packages/NAME.{rusers,list,conffiles,conffiles_static}, as
    OpenWrt's package-pack.mk writes them."""
    meta = os.path.join(data_dir, "lib/apk/packages")
    os.makedirs(meta, exist_ok=True)

    def put(suffix, text):
        p = os.path.join(meta, name + suffix)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(p, 0o644)

    if rusers:
        put(".rusers", rusers + "\n")
    own = {name + s for s in (".list", ".conffiles", ".conffiles_static")}
    listed = []
    for d, files in walk(data_dir).items():
        listed += ["/" + os.path.join(d, n) for n, _ in files
                   if not (d == "lib/apk/packages" and n in own)]
    put(".list", "".join(p + "\n" for p in sorted(listed)))
    if conffiles:
        put(".conffiles", "".join(c + "\n" for c in conffiles))
        static = ""
        for c in conffiles:
            p = os.path.join(data_dir, c.lstrip("/"))
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    static += f"{c} {hashlib.sha256(f.read()).hexdigest()}\n"
        put(".conffiles_static", static)


def body(path):
    """A script's text without its #! line."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    return "".join(lines)


def scripts(control_dir, name, has_rusers):
    """apk scripts from the ipk maintainer scripts."""
    head = f'#!/bin/sh\nexport root="${{IPKG_INSTROOT}}"\nexport pkgname=\'{name}\'\n'

    def have(s):
        return os.path.isfile(os.path.join(control_dir, s))

    out = {}
    if have("preinst"):
        pre = body(os.path.join(control_dir, "preinst"))
        out["pre-install"] = head + pre
        out["pre-upgrade"] = head + "export PKG_UPGRADE=1\n" + pre
    post = ""
    if has_rusers:
        post += ('[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] && '
                 '( . "${IPKG_INSTROOT}/lib/functions.sh"; add_group_and_user )\n')
    if have("postinst"):
        post += body(os.path.join(control_dir, "postinst"))
    if post:
        out["post-install"] = head + post
        out["post-upgrade"] = head + "export PKG_UPGRADE=1\n" + post
    if have("prerm"):
        out["pre-deinstall"] = head + body(os.path.join(control_dir, "prerm"))
    if have("postrm"):
        out["post-deinstall"] = head + body(os.path.join(control_dir, "postrm"))
    return out


def build(stage, out_dir, compression, epoch):
    control_dir = os.path.join(stage, "control")
    data_dir = os.path.join(stage, "data")
    c = read_control(os.path.join(control_dir, "control"))
    for key in ("Package", "Version", "Architecture"):
        if not c.get(key):
            raise Fail(f"control has no {key}")
    name = c["Package"]
    if not NAME_RE.fullmatch(name):
        raise Fail(f"package name '{name}' is not valid for apk")
    version = apk_version(c["Version"])
    arch = "noarch" if c["Architecture"] == "all" else c["Architecture"]
    description = c.get("Description", "")
    if len(description.encode()) > DESCRIPTION_MAX:
        raise Fail(f"description longer than {DESCRIPTION_MAX} bytes (OpenWrt's apk cuts it)")
    conffiles = []
    cf = os.path.join(control_dir, "conffiles")
    if os.path.isfile(cf):
        with open(cf, encoding="utf-8") as f:
            conffiles = [line.strip() for line in f if line.strip()]
    rusers = c.get("Require-User", "")

    write_openwrt_lists(data_dir, name, conffiles, rusers)
    tree = walk(data_dir)

    adb = Adb()
    root = adb.blob("root")
    installed_size = 0
    dir_vals, payloads = [], []
    for di, (d, files) in enumerate(tree.items(), start=1):
        file_vals = []
        for fi, (n, p) in enumerate(files, start=1):
            with open(p, "rb") as f:
                content = f.read()
            acl = {ACL_MODE: adb.int(stat.S_IMODE(os.lstat(p).st_mode)), ACL_USER: root, ACL_GROUP: root}
            file_vals.append(adb.obj({
                FI_NAME: adb.blob(n),
                FI_ACL: adb.obj(acl),
                FI_SIZE: adb.int(len(content)),
                FI_MTIME: adb.int(epoch),
                FI_HASH: adb.blob(hashlib.sha256(content).digest()),
            }))
            installed_size += len(content)
            if content:
                payloads.append(struct.pack("<II", di, fi) + content)
        dir_acl = adb.obj({ACL_MODE: adb.int(0o755), ACL_USER: root, ACL_GROUP: root})
        dir_vals.append(adb.obj({DI_NAME: adb.blob(d), DI_ACL: dir_acl, DI_FILES: adb.arr(file_vals)}))

    deps = []
    for dep_name, op, ver in dependencies(c.get("Depends", "")):
        fields = {DEP_NAME: adb.blob(dep_name)}
        if ver:
            fields[DEP_VERSION] = adb.blob(ver)
            if DEP_OPS[op] != DEP_OPS["="]:
                fields[DEP_MATCH] = adb.int(DEP_OPS[op])
        deps.append(adb.obj(fields))

    unique_id = adb.blob(b"\0" * UNIQUE_ID_LEN, dedup=False)
    info = {
        PI["name"]: adb.blob(name),
        PI["version"]: adb.blob(version),
        PI["hashes"]: unique_id,
        PI["description"]: adb.blob(description),
        PI["arch"]: adb.blob(arch),
        PI["license"]: adb.blob(c.get("License", "")),
        PI["origin"]: adb.blob(c.get("Source", "")),
        PI["maintainer"]: adb.blob(c.get("Maintainer", "")),
        PI["url"]: adb.blob(c.get("URL", "")),
        PI["build-time"]: adb.int(epoch),
        PI["installed-size"]: adb.int(max(installed_size, 1)),
        PI["depends"]: adb.arr(deps),
    }
    pkg = {PKG_INFO: adb.obj(info), PKG_PATHS: adb.arr(dir_vals)}
    script_texts = scripts(control_dir, name, bool(rusers))
    if script_texts:
        pkg[PKG_SCRIPTS] = adb.obj({SCRIPTS[k]: adb.blob(v) for k, v in script_texts.items()})
    adb.set_root(adb.obj(pkg))

    uid_at = (unique_id & 0x0FFFFFFF) + 1
    adb.buf[uid_at:uid_at + UNIQUE_ID_LEN] = hashlib.sha256(adb.buf).digest()[:UNIQUE_ID_LEN]

    body_bytes = b"ADB." + SCHEMA_PACKAGE + block(BLOCK_ADB, bytes(adb.buf))
    body_bytes += b"".join(block(BLOCK_DATA, p) for p in payloads)
    if compression == "deflate":
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        body_bytes = b"ADBd" + z.compress(body_bytes) + z.flush()

    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{name}-{version}_{arch}.apk")
    with open(out, "wb") as f:
        f.write(body_bytes)
    os.utime(out, (epoch, epoch))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", required=True, help="directory with data/ and control/")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    a = ap.parse_args()
    try:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
        print(build(a.stage, a.out_dir, a.compression, epoch))
    except (Fail, OSError) as e:
        sys.exit(f"mkapk: {e}")


if __name__ == "__main__":
    main()
