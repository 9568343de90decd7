#!/usr/bin/env python3
"""Reads include/tokemb.h (a small parser for the header's own restricted style: no macros needed for
core use, no structs by value, no varargs) and

  * generates rust/tokemb-sys/src/lib.rs               (--rust OUT)
  * generates python/tokemb/_sigs.py                    (--python OUT)
  * checks an existing lib.rs against the header         (--check-rust FILE)
  * checks the Python binding's ctypes table             (--check-python REPO/python)

The checks parse the *other* side independently (lib.rs with a regex over `pub fn` lines, the Python
table by importing it), so a hand edit that drifts from the header is caught, not regenerated over.
Types are compared exactly for Rust (`const float *` must be `*const f32`) and by ctypes class for
Python (every pointer is c_void_p, `const char *` results are c_char_p, integers by width and sign).
Standard library only.
"""
import argparse
import os
import re
import sys

C_SCALARS = {
    "void": "c_void", "char": "c_char", "int": "c_int", "unsigned": "c_uint", "float": "f32", "double": "f64",
    "int8_t": "i8", "uint8_t": "u8", "int16_t": "i16", "uint16_t": "u16", "int32_t": "i32", "uint32_t": "u32",
    "int64_t": "i64", "uint64_t": "u64", "size_t": "usize",
}
CTYPES_SCALARS = {
    "char": "c_char", "int": "c_int", "unsigned": "c_uint", "float": "c_float", "double": "c_double",
    "int8_t": "c_int8", "uint8_t": "c_uint8", "int16_t": "c_int16", "uint16_t": "c_uint16",
    "int32_t": "c_int32", "uint32_t": "c_uint32", "int64_t": "c_int64", "uint64_t": "c_uint64",
    "size_t": "c_size_t",
}


class CType:
    """base name, whether the base is const, and for each pointer level (inner to outer) nothing more:
    Rust only needs the constness of each pointee."""

    def __init__(self, text):
        text = text.replace("*", " * ").split()
        self.ptr_consts = []  # for each '*' (inner first): is the pointee const?
        base_const = False
        base = None
        cur_const = False
        for tok in text:
            if tok == "const":
                if base is None:
                    base_const = True
                else:
                    cur_const = True  # const applying to the pointer after the last '*'
            elif tok == "*":
                if not self.ptr_consts:
                    self.ptr_consts.append(base_const)
                else:
                    self.ptr_consts.append(cur_const)
                cur_const = False
            elif tok in ("struct", "enum"):
                continue
            else:
                if base is not None:
                    raise ValueError("cannot parse type %r" % " ".join(text))
                base = tok
        if base is None:
            raise ValueError("no base type in %r" % " ".join(text))
        self.base = base
        self.base_const = base_const

    @property
    def is_ptr(self):
        return bool(self.ptr_consts)

    def rust(self, typedefs):
        if self.base in C_SCALARS:
            t = C_SCALARS[self.base]
            if t in ("c_void", "c_char", "c_int", "c_uint"):
                t = "std::os::raw::" + t  # (core::ffi::c_char needs Rust 1.64; Debian 12 ships 1.63)
        elif self.base in typedefs:
            t = self.base
        else:
            raise ValueError("unknown C type %r" % self.base)
        for const in self.ptr_consts:
            t = ("*const " if const else "*mut ") + t
        return t

    def ctypes_name(self, typedefs_fn):
        """The ctypes class name used in the Python table."""
        if self.is_ptr:
            if self.base == "char" and len(self.ptr_consts) == 1:
                return "c_char_p"
            return "c_void_p"
        if self.base in typedefs_fn:
            return self.base  # a CFUNCTYPE defined in _sigs.py
        if self.base == "void":
            return "None"
        return CTYPES_SCALARS[self.base]


class Func:
    def __init__(self, name, ret, params):
        self.name, self.ret, self.params = name, ret, params  # params: list of (name, CType)


def _strip_comments(src):
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def _eval_c(expr, env):
    e = expr.strip()
    if e.startswith('"'):
        return e.strip('"')
    e = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", e)
    e = e.replace("INT64_MIN", str(-(2 ** 63))).replace("INT64_MAX", str(2 ** 63 - 1))
    e = e.replace("INT32_MIN", str(-(2 ** 31))).replace("INT32_MAX", str(2 ** 31 - 1))
    e = e.replace("UINT32_MAX", str(2 ** 32 - 1))
    e = re.sub(r"\(\s*(u?int(8|16|32|64)_t|double|float)\s*\)", "", e)  # casts
    if re.fullmatch(r"[-+]?\d+\.\d*([eE][-+]?\d+)?[fF]?", e):
        return float(e.rstrip("fF"))
    return int(eval(e, {"__builtins__": {}}, dict(env)))  # header-controlled text only


class Header:
    def __init__(self, path):
        raw = open(path, encoding="utf-8").read()
        src = _strip_comments(raw)
        self.defines = {}   # name -> value (int, float or str), in order
        self.enums = []     # (enum name, [(const name, value)])
        self.consts = {}    # every integer constant by name
        self.opaque = []    # opaque struct typedef names
        self.fnptrs = {}    # name -> (ret CType, [CType])
        self.funcs = []
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(TOKEMB_\w+)[ \t]+([^\n]+)$", src, flags=re.M):
            name, val = m.group(1), m.group(2).strip()
            if name in ("TOKEMB_H", "TOKEMB_API") or "(" in name:
                continue
            q = re.fullmatch(r"TOKEMB_EXPAND_AND_QUOTE_\((.*)\)", val)
            try:
                # a quoted dotted list of constants (the version string), else a C expression
                v = ".".join(str(self.consts[p.strip()]) for p in q.group(1).split(".")) if q else \
                    _eval_c(val, self.consts)
            except Exception:
                continue
            self.defines[name] = v
            if isinstance(v, int):
                self.consts[name] = v
        body = re.sub(r"^[ \t]*#[^\n]*$", " ", src, flags=re.M)
        body = body.replace('extern "C" {', " ")
        for m in re.finditer(r"\benum\s+(\w+)\s*\{(.*?)\}\s*;", body, flags=re.S):
            entries, nxt = [], 0
            for item in m.group(2).split(","):
                item = item.strip()
                if not item:
                    continue
                if "=" in item:
                    n, e = item.split("=", 1)
                    v = _eval_c(e, self.consts)
                else:
                    n, v = item, nxt
                n = n.strip()
                entries.append((n, v))
                self.consts[n] = v
                nxt = v + 1
            self.enums.append((m.group(1), entries))
        for m in re.finditer(r"\btypedef\s+struct\s+(\w+)\s+(\w+)\s*;", body):
            if m.group(1) != m.group(2):
                raise ValueError("typedef struct %s %s: names differ" % (m.group(1), m.group(2)))
            self.opaque.append(m.group(2))
        for m in re.finditer(r"\btypedef\s+([\w\s\*]+?)\(\s*\*\s*(\w+)\s*\)\s*\(([^)]*)\)\s*;", body):
            self.fnptrs[m.group(2)] = (CType(m.group(1)), [p for _, p in self._params(m.group(3))])
        for m in re.finditer(r"\bTOKEMB_API\s+([\w\s\*]+?)\b(tokemb_\w+)\s*\(([^)]*)\)\s*;", body):
            self.funcs.append(Func(m.group(2), CType(m.group(1)), self._params(m.group(3))))
        # Every TOKEMB_API in the text must have been understood.
        n_api = len(re.findall(r"\bTOKEMB_API\b", body))
        if n_api != len(self.funcs):
            raise ValueError("parsed %d of %d TOKEMB_API declarations" % (len(self.funcs), n_api))

    @staticmethod
    def _params(text):
        text = " ".join(text.split())
        if text in ("", "void"):
            return []
        out = []
        for i, p in enumerate(text.split(",")):
            p = p.strip()
            m = re.fullmatch(r"(.*?[\s\*])(\w+)", p)
            if m and m.group(1).replace("const", "").replace("*", "").strip():
                out.append((m.group(2), CType(m.group(1))))
            else:
                out.append(("arg%d" % i, CType(p)))
        return out

    def typedef_names(self):
        return set(self.opaque) | set(self.fnptrs)


# ------------------------------------------------------------------------------------------ Rust --

RUST_KEYWORDS = {"type", "fn", "ref", "mut", "in", "match", "loop", "move", "self", "box", "use", "mod", "impl"}


def _rust_param_name(n):
    return n + "_" if n in RUST_KEYWORDS else n


def _rust_const_type(v):
    if isinstance(v, float):
        return "f64"
    if isinstance(v, str):
        return "&str"
    return "i64" if not (-(2 ** 31) <= v < 2 ** 31) else "i32"


def gen_rust(h):
    td = h.typedef_names()
    out = ["//! Raw `extern \"C\"` declarations for libtokemb, generated from include/tokemb.h by",
           "//! scripts/tokemb_header.py (`--rust`). Do not edit by hand: tests/check_rust_sys.sh",
           "//! compares every name, arity and parameter type with the header.",
           "#![allow(non_camel_case_types, non_upper_case_globals, clippy::all)]", ""]
    for name in h.opaque:
        out += ["/// Opaque handle (`typedef struct %s %s;`)." % (name, name),
                "#[repr(C)]", "pub struct %s {" % name, "    _private: [u8; 0],",
                "    _not_send_sync: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,", "}", ""]
    for name, (ret, params) in h.fnptrs.items():
        ps = ", ".join(p.rust(td) for p in params)
        r = "" if (ret.base == "void" and not ret.is_ptr) else " -> " + ret.rust(td)
        out += ["pub type %s = Option<unsafe extern \"C\" fn(%s)%s>;" % (name, ps, r), ""]
    out.append("// ---- #define constants")
    for name, v in h.defines.items():
        if isinstance(v, str):
            out.append('pub const %s: &str = "%s";' % (name, v))
        elif isinstance(v, float):
            out.append("pub const %s: f64 = %r;" % (name, v))
        elif name == "TOKEMB_NO_PADDING" or not (-(2 ** 31) <= v < 2 ** 31):
            out.append("pub const %s: i64 = %d;" % (name, v))
        elif name.startswith("TOKEMB_WRAP_") or name == "TOKEMB_VERSION_NUMBER":
            out.append("pub const %s: u32 = %d;" % (name, v))
        else:
            out.append("pub const %s: i32 = %d;" % (name, v))
    for ename, entries in h.enums:
        note = " (experimental block: outside the stable ABI, may change in any release)" \
            if ename.endswith("_experimental") else ""
        out += ["", "// ---- enum %s%s" % (ename, note)]
        for n, v in entries:
            out.append("pub const %s: i32 = %d;" % (n, v))
    out += ["", "extern \"C\" {"]
    for f in h.funcs:
        ps = ", ".join("%s: %s" % (_rust_param_name(n), t.rust(td)) for n, t in f.params)
        r = "" if (f.ret.base == "void" and not f.ret.is_ptr) else " -> " + f.ret.rust(td)
        out.append("    pub fn %s(%s)%s;" % (f.name, ps, r))
    out += ["}", ""]
    return "\n".join(out)


def parse_rust(path):
    """name -> (ret, [param types]) from `pub fn` lines of an extern block (one declaration a line)."""
    src = open(path, encoding="utf-8").read()
    funcs = {}
    for m in re.finditer(r"pub fn (\w+)\((.*?)\)\s*(->\s*([^;]+))?;", src):
        params = []
        if m.group(2).strip():
            depth, cur = 0, ""
            for ch in m.group(2):
                if ch in "(<":
                    depth += 1
                elif ch in ")>":
                    depth -= 1
                if ch == "," and depth == 0:
                    params.append(cur)
                    cur = ""
                else:
                    cur += ch
            if cur.strip():
                params.append(cur)
        types = [" ".join(p.split(":", 1)[1].split()) for p in params]
        ret = " ".join(m.group(4).split()) if m.group(4) else "()"
        funcs[m.group(1)] = (ret, types)
    consts = {m.group(1): m.group(2) for m in re.finditer(r"pub const (\w+): [^=]+= ([^;]+);", src)}
    return funcs, consts


def check_rust(h, path):
    td = h.typedef_names()
    funcs, consts = parse_rust(path)
    errs = []
    for f in h.funcs:
        if f.name not in funcs:
            errs.append("%s: declared in the header, missing in %s" % (f.name, path))
            continue
        ret, types = funcs[f.name]
        want_ret = "()" if (f.ret.base == "void" and not f.ret.is_ptr) else f.ret.rust(td)
        if ret != want_ret:
            errs.append("%s: result %s in Rust, %s from the header" % (f.name, ret, want_ret))
        if len(types) != len(f.params):
            errs.append("%s: %d parameters in Rust, %d in the header" % (f.name, len(types), len(f.params)))
            continue
        for i, ((pn, pt), rt) in enumerate(zip(f.params, types)):
            if rt != pt.rust(td):
                errs.append("%s: parameter %d (%s) is %s in Rust, header says %s" % (f.name, i, pn, rt, pt.rust(td)))
    names = {f.name for f in h.funcs}
    for n in funcs:
        if n not in names:
            errs.append("%s: declared in Rust, not in the header" % n)
    for n, v in h.consts.items():
        if n not in consts:
            errs.append("constant %s missing in Rust" % n)
        elif int(consts[n]) != v:
            errs.append("constant %s = %s in Rust, %d in the header" % (n, consts[n], v))
    return errs, len(h.funcs)


# ---------------------------------------------------------------------------------------- Python --

def gen_python(h):
    td = set(h.fnptrs)
    out = ['"""ctypes signatures of every function in include/tokemb.h, and its constants. Generated by',
           "scripts/tokemb_header.py (--python); tests/check_python_sigs.sh compares this table with the",
           'header (names, arities, types by ctypes class), so it cannot drift silently."""',
           "import ctypes", "from ctypes import (c_char_p, c_double, c_float, c_int, c_int8, c_int16, c_int32,",
           "                    c_int64, c_size_t, c_uint, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p)", ""]
    for name, (ret, params) in h.fnptrs.items():
        ps = [p.ctypes_name(td) for p in params]
        out.append("%s = ctypes.CFUNCTYPE(%s)" % (name, ", ".join([ret.ctypes_name(td)] + ps)))
    out += ["", "# name: (restype, [argtypes])", "SIGS = {"]
    for f in h.funcs:
        out.append('    "%s": (%s, [%s]),' % (f.name, f.ret.ctypes_name(td),
                                            ", ".join(t.ctypes_name(td) for _, t in f.params)))
    out += ["}", "", "# every integer constant of the header (enums and #defines)", "CONSTS = {"]
    for n, v in h.consts.items():
        out.append('    "%s": %d,' % (n, v))
    out += ["}", ""]
    return "\n".join(out)


def check_python(h, pydir):
    sys.path.insert(0, pydir)
    import importlib.util
    spec = importlib.util.spec_from_file_location("tokemb_sigs_under_test", os.path.join(pydir, "tokemb", "_sigs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    td = set(h.fnptrs)
    errs = []

    import ctypes as C

    def canon(t):
        """ctypes aliases (c_int32 is c_int, c_size_t is c_ulong on LP64): compare by kind and size."""
        if t is None:
            return "void"
        if t is C.c_void_p or t is C.c_char_p:
            return t.__name__
        for n in td:
            if t is getattr(mod, n, None):
                return n
        if t in (C.c_float, C.c_double):
            return "f%d" % C.sizeof(t)
        if issubclass(t, C._SimpleCData) and t._type_ in "bBhHiIlLqQ":
            return ("u" if t._type_.isupper() else "i") + str(8 * C.sizeof(t))
        return repr(t)

    def want(ct):
        n = ct.ctypes_name(td)
        if n == "None":
            return "void"
        return canon(getattr(C, n)) if hasattr(C, n) else n

    def cname(t):
        return canon(t)

    for f in h.funcs:
        if f.name not in mod.SIGS:
            errs.append("%s: in the header, missing from python/tokemb/_sigs.py" % f.name)
            continue
        res, args = mod.SIGS[f.name]
        if cname(res) != want(f.ret):
            errs.append("%s: restype %s, header says %s" % (f.name, cname(res), want(f.ret)))
        if len(args) != len(f.params):
            errs.append("%s: %d argtypes, %d parameters in the header" % (f.name, len(args), len(f.params)))
            continue
        for i, (a, (pn, pt)) in enumerate(zip(args, f.params)):
            if cname(a) != want(pt):
                errs.append("%s: argtype %d (%s) is %s, header says %s" % (f.name, i, pn, cname(a), want(pt)))
    names = {f.name for f in h.funcs}
    for n in mod.SIGS:
        if n not in names:
            errs.append("%s: in _sigs.py, not in the header" % n)
    for n, v in h.consts.items():
        if mod.CONSTS.get(n) != v:
            errs.append("constant %s: %r in _sigs.py, %d in the header" % (n, mod.CONSTS.get(n), v))
    return errs, len(h.funcs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("header")
    ap.add_argument("--rust")
    ap.add_argument("--python")
    ap.add_argument("--check-rust")
    ap.add_argument("--check-python")
    a = ap.parse_args()
    h = Header(a.header)
    rc = 0
    if a.rust:
        open(a.rust, "w", encoding="utf-8").write(gen_rust(h))
    if a.python:
        open(a.python, "w", encoding="utf-8").write(gen_python(h))
    for opt, fn in (("check_rust", check_rust), ("check_python", check_python)):
        target = getattr(a, opt)
        if target:
            errs, n = fn(h, target)
            for e in errs:
                print("DRIFT:", e)
            print("%s: %d header functions, %d problems" % (opt, n, len(errs)))
            rc |= 1 if errs else 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
