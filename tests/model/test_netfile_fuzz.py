"""Mutated network files (issue 13): every one is refused with one NetworkFileError or loads as
a network khop can use (netfile_files.check_usable); no other exception, no hang.

Seeded and bounded: 2,000 files in the default run (about 2 s), ten times more under
``slow``. Each family mutates the small trained network of netfile_files: bytes of the whole
file, bytes of one member's ``.npy`` data (re-zipped, so the checksum holds), zip directory
fields, ``.npy`` headers and the JSON metadata. ``pytest -s`` prints the counts.
"""

import io
import json
import struct
import zipfile
from collections import Counter

import netfile_files as files
import numpy as np
import pytest

from khop.model.netfile import MEMBERS, TRAINING_ENTRIES

SEED = 13
DEFAULT_FILES = 2000


@pytest.fixture(scope="module")
def base():
    net, members = files.trained(seed=1)
    return {"members": members, "stored": files.npz(members),
            "deflated": files.npz(members, zipfile.ZIP_DEFLATED)}


def _bytes_mutation(rng, data):
    """``data`` with one of: bit flips, random bytes set, inserted, deleted, a truncation, a
    repeated range."""
    data = bytearray(data)
    n = len(data)
    kind = rng.choice(["flip", "set", "insert", "delete", "truncate", "repeat"])
    at = int(rng.integers(0, n))
    if kind == "flip":
        for i in rng.integers(0, n, size=int(rng.integers(1, 9))):
            data[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == "set":
        for i in rng.integers(0, n, size=int(rng.integers(1, 5))):
            data[i] = int(rng.choice([0, 0xFF, 0x7F, 0x80, int(rng.integers(0, 256))]))
    elif kind == "insert":
        data[at:at] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == "delete":
        del data[at:at + int(rng.integers(1, 64))]
    elif kind == "truncate":
        del data[at:]
    else:
        size = int(rng.integers(1, 64))
        data[at:at] = data[at:at + size]
    return kind, bytes(data)


def _whole_file(rng, base):
    which = rng.choice(["stored", "deflated"])
    kind, data = _bytes_mutation(rng, base[which])
    return f"{which} file, {kind}", data


def _one_member(rng, base):
    member = f"{rng.choice(MEMBERS)}.npy"
    members = dict(base["members"])
    raw = members[member]
    if rng.random() < 0.6:      # the header region
        head, tail = raw[:128], raw[128:]
        kind, head = _bytes_mutation(rng, head)
        members[member] = head + tail
    else:
        kind, members[member] = _bytes_mutation(rng, raw)
    compression = zipfile.ZIP_DEFLATED if rng.random() < 0.3 else zipfile.ZIP_STORED
    return f"member {member}, {kind}", files.npz(members, compression)


_NAMES = ["patterns", "PATTERNS.npy", "patterns.npy/", "../meta.npy", "extra.npy", "alpha.NPY",
          "meta.npy\x00", "loss_history.npz", "\u00e9.npy", ""]
_FLAG_BITS = [0, 1, 2, 3, 5, 6, 11, 13, 15]
_METHODS = [0, 8, 1, 6, 9, 12, 14, 93, 95, 97, 98, 99, 0xFFFF]
_SIZES = [0, 1, 10, 127, 128, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF]


def _zip_structure(rng, base):
    members = list(base["members"].items())
    kind = rng.choice(["rename", "drop", "add", "duplicate", "flags", "method", "size", "crc"])
    if kind in ("rename", "drop", "add", "duplicate"):
        i = int(rng.integers(0, len(members)))
        if kind == "rename":
            members[i] = (str(rng.choice(_NAMES)) or "x", members[i][1])
        elif kind == "drop":
            del members[i]
        elif kind == "add":
            members.append((str(rng.choice(_NAMES)) or "x", members[i][1]))
        else:
            members.append(members[i])
        rng.shuffle(members)
        return f"zip {kind} member {i}", files.npz(members)
    data = base[rng.choice(["stored", "deflated"])]
    index = int(rng.integers(0, 4))
    where = [("central", "local"), ("central",), ("local",)][int(rng.integers(0, 3))]
    field, value = {
        "flags": ("flags", 1 << int(rng.choice(_FLAG_BITS)) | int(rng.integers(0, 2)) << 3),
        "method": ("method", int(rng.choice(_METHODS))),
        "size": (str(rng.choice(["size", "compressed_size"])),
                 int(rng.choice(_SIZES)) + int(rng.integers(-1, 2))),
        "crc": ("crc", int(rng.integers(0, 1 << 32))),
    }[kind]
    return (f"zip {field}={value:#x} of member {index} in {'+'.join(where)}",
            files.patch_zip(data, index, field, value, where))


_DESCRS = ["'<f8'", "'>f8'", "'<f4'", "'<f2'", "'|i1'", "'<i8'", "'|u1'", "'|b1'", "'<c16'",
           "'|O'", "[('a', '<f8')]", "('<f8', (2,))", "'<U5'", "'|S5'", "'<M8[ns]'", "'|V8'",
           "'<f16'", "1", "None", "'<f8x'", "[]", "{}", "'<U99999999999'", "''"]
_FORTRAN = ["False", "True", "0", "1", "'yes'", "None"]
_SHAPES = ["(5, 12)", "(12, 5)", "()", "(60,)", "(3,)", "(1099511627776, 1048576)",
           "(-1, 12)", "(True, 12)", "(5.0, 12)", "[5, 12]", "(0, 12)", "(5, 0)", "None",
           "(5, 12, 1)", "(" * 12 + ")" * 12, "(10**12,)"]
_VERSIONS = [(1, 0), (1, 0), (2, 0), (3, 0), (1, 1), (0, 0)]


def _npy_header(rng, base):
    member = str(rng.choice(MEMBERS))
    original = base["members"][f"{member}.npy"]
    data = original[10 + struct.unpack("<H", original[8:10])[0]:]   # np.save writes v1.0
    text = files.header(descr=str(rng.choice(_DESCRS)), fortran=str(rng.choice(_FORTRAN)),
                        shape=str(rng.choice(_SHAPES)))
    if rng.random() < 0.3:      # bad dict syntax
        at = int(rng.integers(0, len(text)))
        text = text[:at] + str(rng.choice(["", "{", "}", "(", "'", "'''", ":", ",", "\\"])) + \
            text[at + int(rng.integers(0, 3)):]
    version = _VERSIONS[int(rng.integers(0, len(_VERSIONS)))]
    if rng.random() < 0.3:
        data = data[:int(rng.integers(0, len(data) + 1))] + rng.bytes(int(rng.integers(0, 9)))
    length = None if rng.random() < 0.85 else int(rng.integers(0, 1 << 16))
    npy = files.raw_npy(text, data, version if version[0] in (1, 2) else (1, 0), length)
    if version[0] not in (1, 2) or version != (version[0], 0):
        npy = npy[:6] + bytes(version) + npy[8:]
    return f"{member}.npy header {text!r} v{version} length {length}", files.npz(
        {**base["members"], f"{member}.npy": npy})


_JSON_VALUES = [True, False, None, 0, 1, -1, 2, 12, 5, 0.0, 0.03, 1e308, -0.5, "", "x", "bias",
                "paper", "exact", "float32", [], {}, [1], {"a": 1}, 10 ** 30, 2 ** 63, "2",
                "y" * 5000]
_RAW_EDITS = ['"gamma": NaN', '"gamma": Infinity', '"gamma": 1e999', '"gamma": -Infinity',
              '"n": 12, "n": 12', '"training": {"seed": 1, "seed": 2}', '"p": 00005',
              '"gamma": 0.03,', '"x": ' + "9" * 5000]


def _meta_json(rng, base):
    meta = json.loads(str(np.load(_as_npz(base))["meta"]))
    ops = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["top", "training", "delete", "extra", "deep", "raw", "long"])
        if kind == "top":
            key = str(rng.choice(list(meta)))
            meta[key] = _JSON_VALUES[int(rng.integers(0, len(_JSON_VALUES)))]
        elif kind == "training":
            key = str(rng.choice([*TRAINING_ENTRIES, "other"]))
            meta["training"] = dict(meta["training"]) if isinstance(meta.get("training"),
                                                                    dict) else {}
            meta["training"][key] = _JSON_VALUES[int(rng.integers(0, len(_JSON_VALUES)))]
        elif kind == "delete":
            key = str(rng.choice([*meta, "training.final_loss", "training.seed"]))
            if key.startswith("training.") and isinstance(meta.get("training"), dict):
                meta["training"].pop(key.split(".")[1], None)
            meta.pop(key, None)
        elif kind == "extra":
            meta[f"extra{len(ops)}"] = _JSON_VALUES[int(rng.integers(0, len(_JSON_VALUES)))]
        elif kind == "deep":
            # Spliced into the text below: json itself cannot write 10,000 levels.
            depth = int(rng.choice([5, 30, 31, 32, 33, 100, 10_000]))
            meta["training" if rng.random() < 0.5 else "deep"] = f"<deep {depth}>"
        elif kind == "long":
            meta["training" if rng.random() < 0.5 else "note"] = {
                "note": "z" * int(rng.choice([10, 1 << 19, (1 << 20) + 1]))}
        ops.append(kind)
    text = json.dumps(meta)
    for depth in (5, 30, 31, 32, 33, 100, 10_000):
        text = text.replace(f'"<deep {depth}>"', "[" * depth + "]" * depth)
    if "raw" in ops:
        edit = _RAW_EDITS[int(rng.integers(0, len(_RAW_EDITS)))]
        text = "{" + edit + ", " + text[1:]
        if rng.random() < 0.3:
            text = text[:int(rng.integers(0, len(text)))]
    return f"meta {'+'.join(ops)}", files.npz(
        {**base["members"], "meta.npy": files.npy(np.array(text))})


def _as_npz(base):
    return io.BytesIO(base["stored"])


FAMILIES = {"whole file": _whole_file, "one member": _one_member, "zip structure": _zip_structure,
            "npy header": _npy_header, "meta json": _meta_json}


def _fuzz(base, tmp_path, count, seed):
    rng = np.random.default_rng(seed)
    counts = Counter()
    names = list(FAMILIES)
    for i in range(count):
        family = names[i % len(names)]
        description, data = FAMILIES[family](rng, base)
        try:
            result = files.outcome(data, tmp_path)
        except Exception as e:
            pytest.fail(f"file {i} (seed {seed}; {family}: {description[:300]}): "
                        f"{type(e).__name__}: {e}")
        counts[result] += 1
        counts[family, result] += 1
    summary = ", ".join(f"{f}: {counts[f, 'refused']} refused / {counts[f, 'accepted']} accepted"
                        for f in names)
    return counts, (f"network file fuzz (seed {seed}): {count} files tried, "
                    f"{counts['refused']} refused with one NetworkFileError, "
                    f"{counts['accepted']} accepted and usable, 0 tracebacks ({summary})")


def test_mutated_network_files_are_refused_or_usable(base, tmp_path, record_property):
    counts, line = _fuzz(base, tmp_path, DEFAULT_FILES, SEED)
    record_property("fuzz", line)
    assert counts["refused"] + counts["accepted"] == DEFAULT_FILES
    # Every family both refuses files and (some mutations being harmless) accepts some.
    assert all(counts[f, "refused"] > 0 for f in FAMILIES)
    assert counts["meta json", "accepted"] > 0 and counts["zip structure", "accepted"] > 0


@pytest.mark.slow
def test_ten_times_more_mutated_network_files(base, tmp_path, record_property):
    counts, line = _fuzz(base, tmp_path, 10 * DEFAULT_FILES, SEED + 1)
    record_property("fuzz", line)
    assert counts["refused"] + counts["accepted"] == 10 * DEFAULT_FILES
