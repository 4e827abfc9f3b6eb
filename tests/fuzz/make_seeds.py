#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus, tests/fuzz/corpus/<harness>/ (deterministic).

Run from anywhere: python3 tests/fuzz/make_seeds.py
Files named by a SHA-1 in corpus/ were found by fuzzing (libFuzzer -merge=1) and are left alone.
Reads the repository's tests/fixtures/tiny-f32 vocabulary and tests/tokenizer/corpus.jsonl;
the tiny checkpoints are generated here (1-2 layers, width 8, vocab 16: a few KB each).
"""
import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def config(layers=1, embd=8, heads=2, ctx=4, vocab=16, inner=None, ctx_key="n_positions", **extra):
    c = {"activation_function": "gelu_new", "model_type": "gpt2", "n_embd": embd,
         "n_head": heads, "n_inner": inner, "n_layer": layers, ctx_key: ctx,
         "layer_norm_epsilon": 1e-05, "vocab_size": vocab}
    c.update(extra)
    return json.dumps(c, sort_keys=True)


def encode(vals, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(vals), *vals)
    if dtype == "F16":
        return struct.pack("<%de" % len(vals), *vals)
    # BF16: the high half of the float32
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in vals)


QUANT = {  # linear weights that may be stored as NAME.q8 (I8 [out, in]) + NAME.scale (F16 [out, in/32])
    "wte.weight": lambda C, I, V: (V, C), "lm_head.weight": lambda C, I, V: (V, C),
    "attn.c_attn.weight": lambda C, I, V: (3 * C, C), "attn.c_proj.weight": lambda C, I, V: (C, C),
    "mlp.c_fc.weight": lambda C, I, V: (I, C), "mlp.c_proj.weight": lambda C, I, V: (C, I),
}


def checkpoint(layers=1, embd=8, ctx=4, vocab=16, inner=None, dtype="F32", prefix="",
               lm_head=False, masks=False, seed=1, quant=False):
    rng = random.Random(seed)
    inner = inner or 4 * embd
    shapes = {"wte.weight": [vocab, embd], "wpe.weight": [ctx, embd],
              "ln_f.weight": [embd], "ln_f.bias": [embd]}
    if lm_head:
        shapes["lm_head.weight"] = [vocab, embd]
    for i in range(layers):
        h = "h.%d." % i
        shapes.update({h + "ln_1.weight": [embd], h + "ln_1.bias": [embd],
                       h + "attn.c_attn.weight": [embd, 3 * embd], h + "attn.c_attn.bias": [3 * embd],
                       h + "attn.c_proj.weight": [embd, embd], h + "attn.c_proj.bias": [embd],
                       h + "ln_2.weight": [embd], h + "ln_2.bias": [embd],
                       h + "mlp.c_fc.weight": [embd, inner], h + "mlp.c_fc.bias": [inner],
                       h + "mlp.c_proj.weight": [inner, embd], h + "mlp.c_proj.bias": [embd]})
        if masks:
            shapes[h + "attn.bias"] = [1, 1, ctx, ctx]
    if quant:  # every linear weight quantized (q8_0: blocks of 32 along a row)
        for name in list(shapes):
            base = name.split(".", 2)[2] if name.startswith("h.") else name
            if base in QUANT:
                rows, cols = QUANT[base](embd, inner, vocab)
                del shapes[name]
                shapes[name + ".q8"] = ("I8", [rows, cols])
                shapes[name + ".scale"] = ("F16", [rows, cols // 32])
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(shapes):
        shape = shapes[name]
        dt = "F32" if name.endswith("attn.bias") and masks else dtype
        if isinstance(shape, tuple):
            dt, shape = shape
        n = 1
        for d in shape:
            n *= d
        if dt == "I8":
            blob = bytes(rng.randrange(256) for _ in range(n))
        else:
            vals = [round(rng.uniform(-1, 1), 3) if dt != "F16" or not quant else rng.uniform(0.001, 0.02)
                    for _ in range(n)]
            blob = encode(vals, dt)
        full = (name if name.startswith("lm_head") else prefix + name)
        header[full] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def loader_input(cfg, st, flags=0):
    cfg = cfg.encode()
    return bytes([flags]) + struct.pack("<H", len(cfg)) + cfg + st


def main():
    # Only this script's own files are rewritten: files named by a 40-digit SHA-1 are inputs
    # that fuzzing found (added with libFuzzer's -merge=1) and are kept.
    models = [
        ("f32", dict(), dict()),
        ("f16_prefix_lmhead_masks", dict(), dict(dtype="F16", prefix="transformer.", lm_head=True, masks=True)),
        ("bf16_2layers_inner", dict(layers=2, heads=4, inner=12, ctx_key="n_ctx"), dict(layers=2, inner=12, dtype="BF16")),
    ]
    for name, ckw, mkw in models:
        cfg = config(**ckw)
        st = checkpoint(**mkw)
        put("loader", name, loader_input(cfg, st, flags=len(name) & 0xFF))
        put("safetensors", name, st)
        put("config", name, cfg)
        put("json", "config_" + name, cfg)
        put("json", "header_" + name, st[8:8 + struct.unpack("<Q", st[:8])[0]])
    # q8_0 (width 32, the smallest a quantized matrix allows); flags: precision auto, then q8_0
    q8 = checkpoint(embd=32, quant=True, seed=3)
    put("loader", "q8_auto", loader_input(config(embd=32), q8, flags=0x10))
    put("loader", "q8_forced_q8", loader_input(config(embd=32), q8, flags=0x0C | 0x20))
    put("loader", "bf16_as_q8", loader_input(config(embd=32), checkpoint(embd=32, dtype="BF16", seed=4), flags=0x0C | 0x01))
    put("safetensors", "q8", q8)
    put("loader", "f32_sized_1byte_chunks", loader_input(config(), checkpoint(seed=2), flags=0x01))
    put("loader", "truncated", loader_input(config(), checkpoint()[:-5], flags=0x02))
    put("loader", "extra_bytes", loader_input(config(), checkpoint() + b"\0\0\0\0", flags=0x03))
    put("loader", "empty_file", loader_input(config(), b""))

    # config.json edge cases
    for f in ("tiny-f32", "tiny-bf16"):
        with open(os.path.join(ROOT, "tests/fixtures", f, "config.json")) as fh:
            put("config", "fixture_" + f, fh.read())
    put("config", "no_inner_eps_null", config(inner=None, layer_norm_epsilon=None))
    put("config", "flags", config(scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False))
    put("config", "big", config(layers=4096, embd=65536, heads=1, ctx=1 << 20, vocab=1 << 24))
    put("config", "bad_act", config(activation_function="relu"))
    put("config", "non_int", '{"n_layer":1.5,"n_head":1,"n_embd":1,"vocab_size":1,"n_ctx":1}')

    # safetensors edge cases
    def raw(header):
        h = header.encode()
        return struct.pack("<Q", len(h)) + h
    put("safetensors", "empty_header", raw("{}"))
    put("safetensors", "metadata_only", raw('{"__metadata__":{"a":"b"}}'))
    put("safetensors", "scalar_and_zero",
        raw('{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},'
            '"z":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]},'
            '"u":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[4,6]},'
            '"q":{"dtype":"Q4","shape":[7],"data_offsets":[6,9]}}') + b"\0" * 9)
    put("safetensors", "bare_header", '{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}')

    # JSON edge cases
    for i, s in enumerate([
        '{}', '[]', '""', '0', '-0.0e+0', '1.7976931348623157e308', '-9223372036854775808',
        '9223372036854775808', '123456789012345678901234567890123456789012345678901234567890123456789',
        '"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/\\b\\f\\r\\u0000"', '"\xc3\xa9\xf0\x9f\x98\x80"',
        '{"a":[1,-2.5e3,true,false,null,{"b":{}}],"a":2}', '[' * 63 + ']' * 63, ' \t\r\n[ 1 , 2 ] ',
    ]):
        put("json", "edge_%02d" % i, s)

    # tokenizer creation: the fixtures' 1257-token vocabulary, and a minimal one
    with open(os.path.join(ROOT, "tests/fixtures/tiny-f32/vocab.json"), "rb") as fh:
        vocab = fh.read()
    with open(os.path.join(ROOT, "tests/fixtures/tiny-f32/merges.txt"), "rb") as fh:
        merges = fh.read()
    put("tokenizer", "fixture_1257", vocab + b"\0" + merges)
    tokens = json.loads(vocab)
    by_id = sorted(tokens, key=lambda t: tokens[t])
    small = {t: i for i, t in enumerate(by_id[:256])}
    lines = merges.decode("utf-8").split("\n")[1:]
    kept = []
    for line in lines[:40]:
        a, b = line.split(" ")
        if a in small and b in small:
            small[a + b] = len(small)
            kept.append(line)
    small["<|endoftext|>"] = len(small)
    put("tokenizer", "minimal", json.dumps(small, ensure_ascii=False).encode() + b"\0" +
        ("#version: 0.2\r\n" + "\r\n".join(kept) + "\n\n").encode())

    # encoder: flags byte (bit 0: allow_special, bit 1: small cap) + text
    with open(os.path.join(ROOT, "tests/tokenizer/corpus.jsonl"), encoding="utf-8") as fh:
        cases = [json.loads(line) for line in fh if line.strip()]
    for i, c in enumerate(cases[:40]):
        text = c["text"].encode("utf-8", "surrogatepass")
        if len(text) <= 600:
            put("encode", "%02d_%s" % (i, c["name"][:30]), bytes([i & 3]) + text)
    put("encode", "eot", b"\x03a<|endoftext|>b<|endoftext|><|endoftext|>")
    put("encode", "bad_utf8", b"\x00ok \xe2\x82")

    # UTF-8 / decoder: raw bytes (also read as token ids two bytes at a time)
    for i, b in enumerate([
        b"", b"A", "é€😀".encode(), b"\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xf5",
        b"\xe2\x82\xac\xe2\x82\xf0\x9f\x98\xff\xfe\x80", bytes(range(256)),
        b"\xe2\xc0\x82\xc0\xac\xc0" + b"\xf0\xc0\x9f\xc0\x98\xc0\x80\xc0",  # bytes split across byte tokens
        struct.pack("<8H", 50256, 0, 1, 50257, 220, 198, 65535, 31373),
    ]):
        put("utf8", "seed_%02d" % i, b)

    total = 0
    for dirpath, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    print("corpus: %d bytes" % total)


if __name__ == "__main__":
    main()
