#!/usr/bin/python3
"""Independent float64 reference for GPT-2 inference, and the test-fixture maker.

Subcommands
  fixtures --out tests/fixtures [--models models/]
        Regenerate every committed fixture deterministically (tiny-f32, tiny-f16,
        tiny-bf16: random checkpoints in Hugging Face layout + expected.json; tiny-q8:
        tiny-f32 quantized to q8_0 by this script).
  features --out tests/fixtures
        Write tests/fixtures/<name>/expected_score.json for every committed fixture: the
        expected values of the writing-tool API (scoring with top-K alternatives and token
        texts, zero-shot ranking of choices, greedy generation with a logit bias and with
        banned words). Reads the fixture checkpoints written by `fixtures`.
  logits --model DIR (--ids "1 2 3" | --text "..." [--allow-special]) [--all] [--top K]
        Print float64 reference logits (last position, or every position with --all)
        for any HF-layout folder (config.json + model.safetensors, F32/F16/BF16, or
        q8_0 as written by `gpt2 quantize`: dequantized exactly to float64).
  q8fixture --out tests/fixtures
        Quantize tiny-f32 to q8_0 in Python (tests/fixtures/tiny-q8) + expected.json.
  quantize SRC OUT
        Write a q8_0 copy of an HF folder (the Python twin of `gpt2 quantize --type q8_0`).
  train --out tests/fixtures
        Write tests/fixtures/<name>/expected_train.json for tiny-f32, tiny-f16 and tiny-bf16:
        the float64 loss and every parameter's gradient (per tensor: max |g|, L2 norm and
        sampled entries) for a batch of 2 windows of the full context (with and without a
        loss mask), and the losses of 20 SGD and 20 AdamW steps (shuffle off), following the
        data feeding and optimiser rules written down in src/train.h. Autograd + torch.optim
        semantics written out here, float64 throughout.
  trainbench --model DIR [--batch 4] [--seq 128] [--steps 3] [--threads 1]
        PyTorch float32 training speed (AdamW, median step after a warm-up step), to compare
        with `gpt2 finetune --threads N`.
  make --out DIR --layers L --embd C --heads H --ctx N --vocab-from models/
       [--dtype f32|f16|bf16] [--prefix] [--masks] [--lm-head] [--seed S]
       [--inner N] [--merges M] [--std X] [--ctx-key n_positions|n_ctx|both]
        Write a random checkpoint of any shape. Tensors are generated and written one
        (chunk) at a time, so a 500 MB file never needs to be held in memory.

The model is written from the GPT-2 definition: pre-LN blocks
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
causal multi-head self-attention with scale 1/sqrt(head_dim), Conv1D layers
(y = x @ W + b, W stored [in, out]), gelu_new MLP, final ln_f and logits = h @ wte^T
(or lm_head.weight^T when the file has one). Every computation is in float64, starting
from the weights exactly as stored (F16/BF16 values are widened exactly to float64).
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe_reference as bpe  # noqa: E402

# --------------------------------------------------------------------------------------
# safetensors reading / writing
# --------------------------------------------------------------------------------------

DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "BOOL": 1, "I64": 8}
DTYPE_NAME = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    header.pop("__metadata__", None)
    return 8 + n, header


def load_safetensors_f64(path):
    """Returns {name: float64 torch tensor} with values exactly as stored."""
    base, header = read_safetensors_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = mm[base + b: base + e]
        dt = info["dtype"]
        shape = tuple(info["shape"])
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        elif dt == "F64":
            a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
        elif dt in ("U8", "BOOL"):
            a = np.frombuffer(raw, dtype=np.uint8).astype(np.float64)
        elif dt == "I8":
            a = np.frombuffer(raw, dtype=np.int8).astype(np.float64)
        else:
            raise ValueError("unsupported dtype %s for %s" % (dt, name))
        assert a.size == int(np.prod(shape, dtype=np.int64)), name
        out[name] = torch.from_numpy(a.reshape(shape))
    return out


class SafetensorsStreamWriter:
    """Writes a safetensors file whose tensor list is known up front; the data of each
    tensor is then appended in header order (by offset), possibly in several chunks."""

    def __init__(self, path, specs, metadata=None):
        # specs: list of (name, dtype, shape) in data order.
        self.specs = specs
        header = {}
        off = 0
        for name, dt, shape in specs:
            n = DTYPE_SIZE[dt] * int(np.prod(shape, dtype=np.int64))
            header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
        self.total = off
        header["__metadata__"] = metadata or {"format": "pt"}
        # Deterministic: entries sorted by name (metadata first, like HF).
        items = [("__metadata__", header["__metadata__"])] + sorted(
            (k, v) for k, v in header.items() if k != "__metadata__")
        text = "{" + ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":"))
                              for k, v in items) + "}"
        hb = text.encode("utf-8")
        hb += b" " * ((-len(hb)) % 8)
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(hb)))
        self.f.write(hb)
        self.written = 0

    def write(self, arr):
        """arr: numpy array already in the target dtype's little-endian byte layout."""
        mv = memoryview(np.ascontiguousarray(arr)).cast("B")
        self.f.write(mv)
        self.written += mv.nbytes

    def close(self):
        assert self.written == self.total, (self.written, self.total)
        self.f.close()


def to_storage(t32, dt):
    """float32 torch tensor -> numpy array holding the bytes of dtype dt."""
    if dt == "F32":
        return t32.numpy().astype("<f4", copy=False)
    if dt == "F16":
        return t32.to(torch.float16).numpy().astype("<f2", copy=False)
    if dt == "BF16":
        return t32.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2", copy=False)
    raise ValueError(dt)


# --------------------------------------------------------------------------------------
# config and model
# --------------------------------------------------------------------------------------

def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    act = cfg.get("activation_function", "gelu_new")
    if act != "gelu_new":
        raise ValueError("activation_function %r not supported" % act)
    for k in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if cfg.get(k):
            raise ValueError("%s not supported" % k)
    if cfg.get("scale_attn_weights", True) is not True:
        raise ValueError("scale_attn_weights=false not supported")
    C = cfg["n_embd"]
    n_ctx = cfg.get("n_positions", cfg.get("n_ctx"))
    return {
        "n_layer": cfg["n_layer"], "n_head": cfg["n_head"], "n_embd": C,
        "n_ctx": n_ctx, "vocab_size": cfg["vocab_size"],
        "n_inner": cfg.get("n_inner") or 4 * C,
        "eps": cfg.get("layer_norm_epsilon", 1e-5),
    }


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def dequantize_q8(raw):
    """Replaces each quantized pair NAME.q8 (I8 [out, in]) + NAME.scale (F16 [out, in/32])
    (docs/quantized-format.md) by NAME in float64, in Hugging Face's layout (Conv1D weights
    back to [in, out]): W[o, i] = q8[o, i] * scale[o, i // 32], exactly."""
    out = {}
    for name, t in raw.items():
        if name.endswith(".q8"):
            base = name[:-3]
            if base + ".scale" not in raw:
                raise ValueError("missing tensor %s.scale" % base)
            sc = raw[base + ".scale"]
            rows, cols = t.shape
            if cols % 32 or tuple(sc.shape) != (rows, cols // 32):
                raise ValueError("%s.scale has shape %s for %s" % (base, tuple(sc.shape), tuple(t.shape)))
            w = t * sc.repeat_interleave(32, dim=1)
            out[base] = w.T.contiguous() if base.endswith(CONV1D) else w
        elif name.endswith(".scale"):
            if name[:-6] + ".q8" not in raw:
                raise ValueError("missing tensor %s.q8" % name[:-6])
        else:
            out[name] = t
    return out


class Reference:
    """The float64 GPT-2 forward pass."""

    def __init__(self, folder):
        self.cfg = load_config(folder)
        raw = dequantize_q8(load_safetensors_f64(os.path.join(folder, "model.safetensors")))
        w = {}
        for name, t in raw.items():
            n = name[len("transformer."):] if name.startswith("transformer.") else name
            if n.endswith(".attn.bias") or n.endswith(".attn.masked_bias"):
                continue  # causal-mask buffers: the mask is implied by the architecture
            w[n] = t
        c = self.cfg
        C, L, V = c["n_embd"], c["n_layer"], c["vocab_size"]
        expect = {"wte.weight": (V, C), "wpe.weight": (c["n_ctx"], C),
                  "ln_f.weight": (C,), "ln_f.bias": (C,)}
        for i in range(L):
            p = "h.%d." % i
            expect.update({
                p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
                p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
                p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                p + "mlp.c_fc.weight": (C, c["n_inner"]), p + "mlp.c_fc.bias": (c["n_inner"],),
                p + "mlp.c_proj.weight": (c["n_inner"], C), p + "mlp.c_proj.bias": (C,),
            })
        if "lm_head.weight" in w:
            expect["lm_head.weight"] = (V, C)
        for k, shp in expect.items():
            if k not in w:
                raise ValueError("missing tensor " + k)
            if tuple(w[k].shape) != shp:
                raise ValueError("%s has shape %s, expected %s" % (k, tuple(w[k].shape), shp))
        extra = set(w) - set(expect)
        if extra:
            raise ValueError("unexpected tensors: %s" % sorted(extra))
        self.w = w
        self.head = w.get("lm_head.weight", w["wte.weight"])

    @staticmethod
    def layer_norm(x, g, b, eps):
        mu = x.mean(dim=-1, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)  # biased variance
        return (x - mu) / torch.sqrt(var + eps) * g + b

    @staticmethod
    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    def forward(self, ids):
        """ids: list of ints (1 <= T <= n_ctx). Returns float64 logits [T, V]."""
        c, w = self.cfg, self.w
        T = len(ids)
        if not 1 <= T <= c["n_ctx"]:
            raise ValueError("sequence length %d outside 1..%d" % (T, c["n_ctx"]))
        C, H = c["n_embd"], c["n_head"]
        D = C // H
        idx = torch.tensor(ids, dtype=torch.long)
        x = w["wte.weight"][idx] + w["wpe.weight"][:T]
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        for i in range(c["n_layer"]):
            p = "h.%d." % i
            a = self.layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], c["eps"])
            qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
            q = q.reshape(T, H, D).transpose(0, 1)      # [H, T, D]
            k = k.reshape(T, H, D).transpose(0, 1)
            v = v.reshape(T, H, D).transpose(0, 1)
            s = (q @ k.transpose(1, 2)) / math.sqrt(D)  # [H, T, T]
            s = s.masked_fill(future, float("-inf"))
            s = torch.softmax(s, dim=-1)
            y = (s @ v).transpose(0, 1).reshape(T, C)
            x = x + (y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
            m = self.layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], c["eps"])
            m = self.gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
            x = x + (m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        x = self.layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], c["eps"])
        return x @ self.head.T


def top2_margin(logits):
    v = torch.topk(logits, 2).values
    return float(v[0] - v[1])


def greedy(ref, ids, n):
    """Greedy continuation with a full float64 recompute per step. Stops after n tokens
    or when the context is full. Returns (tokens, logits that chose the last one, min margin)."""
    seq = list(ids)
    out, last, margin = [], None, None
    while len(out) < n and len(seq) < ref.cfg["n_ctx"]:
        lg = ref.forward(seq)[-1]
        t = int(torch.argmax(lg))
        m = top2_margin(lg)
        margin = m if margin is None else min(margin, m)
        out.append(t)
        seq.append(t)
        last = lg
    return out, last, margin


# --------------------------------------------------------------------------------------
# random checkpoints
# --------------------------------------------------------------------------------------

CHUNK = 1 << 20  # elements generated per random draw


def tensor_plan(L, C, inner, V, n_ctx, prefix, masks, lm_head):
    """[(file name, canonical key, shape, kind)], sorted by file name."""
    pre = "transformer." if prefix else ""
    plan = [(pre + "wte.weight", "wte.weight", (V, C), "embed"),
            (pre + "wpe.weight", "wpe.weight", (n_ctx, C), "pos"),
            (pre + "ln_f.weight", "ln_f.weight", (C,), "gain"),
            (pre + "ln_f.bias", "ln_f.bias", (C,), "bias")]
    for i in range(L):
        p = "h.%d." % i
        for n, shp, kind in [("ln_1.weight", (C,), "gain"), ("ln_1.bias", (C,), "bias"),
                             ("attn.c_attn.weight", (C, 3 * C), "weight"),
                             ("attn.c_attn.bias", (3 * C,), "bias"),
                             ("attn.c_proj.weight", (C, C), "weight"),
                             ("attn.c_proj.bias", (C,), "bias"),
                             ("ln_2.weight", (C,), "gain"), ("ln_2.bias", (C,), "bias"),
                             ("mlp.c_fc.weight", (C, inner), "weight"),
                             ("mlp.c_fc.bias", (inner,), "bias"),
                             ("mlp.c_proj.weight", (inner, C), "weight"),
                             ("mlp.c_proj.bias", (C,), "bias")]:
            plan.append((pre + p + n, p + n, shp, kind))
        if masks:
            plan.append((pre + p + "attn.bias", None, (1, 1, n_ctx, n_ctx), "tril"))
            if masks == "both":
                plan.append((pre + p + "attn.masked_bias", None, (), "masked_bias"))
    if lm_head:
        # Same generator key as wte: identical values (tied weights stored twice).
        plan.append(("lm_head.weight", "wte.weight", (V, C), "embed"))
    return sorted(plan, key=lambda e: e[0])


def random_chunks(key, shape, kind, seed, std):
    """Yields float32 torch chunks (row blocks) of the tensor; deterministic per
    (seed, key) and independent of the order tensors are generated in."""
    g = torch.Generator()
    g.manual_seed((seed * 1000003 + zlib.crc32(key.encode())) % (1 << 62))
    n = int(np.prod(shape, dtype=np.int64))
    scale, mean = {"embed": (std, 0.0), "pos": (std * 0.5, 0.0), "weight": (std, 0.0),
                   "gain": (0.2, 1.0), "bias": (0.1, 0.0)}[kind]
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        r = torch.randn(k, generator=g, dtype=torch.float64) * scale + mean
        yield r.to(torch.float32)
        done += k


def make_checkpoint(out, L, C, H, n_ctx, vocab_dir, dtype="f32", prefix=False,
                    masks=None, lm_head=False, seed=0, inner=None, merges=None, std=0.2,
                    ctx_key="both", mask_dtype="F32"):
    """Writes config.json, vocab.json, merges.txt, model.safetensors into out.
    masks: None, "bias" (attn.bias only) or "both" (attn.bias + attn.masked_bias)."""
    assert C % H == 0, "n_embd must be divisible by n_head"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8") as f:
        full_vocab = json.load(f)
    full_merges = bpe.read_merges(os.path.join(vocab_dir, "merges.txt"))
    if merges is not None:
        vocab, mlist = bpe.small_vocab(full_vocab, full_merges, merges)
    else:
        vocab, mlist = full_vocab, full_merges
    bpe.write_vocab_merges(out, vocab, mlist)
    V = len(vocab)
    eot = vocab[bpe.EOT]
    dt = DTYPE_NAME[dtype]
    cfg = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
           "attn_pdrop": 0.1, "bos_token_id": eot, "embd_pdrop": 0.1, "eos_token_id": eot,
           "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
           "n_embd": C, "n_head": H, "n_inner": inner, "n_layer": L,
           "resid_pdrop": 0.1, "scale_attn_weights": True,
           "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype],
           "use_cache": True, "vocab_size": V}
    if ctx_key in ("both", "n_ctx"):
        cfg["n_ctx"] = n_ctx
    if ctx_key in ("both", "n_positions"):
        cfg["n_positions"] = n_ctx
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    plan = tensor_plan(L, C, inner or 4 * C, V, n_ctx, prefix, masks, lm_head)
    specs = []
    for name, key, shape, kind in plan:
        sdt = mask_dtype if kind == "tril" else ("F32" if kind == "masked_bias" else dt)
        specs.append((name, sdt, shape))
    wr = SafetensorsStreamWriter(os.path.join(out, "model.safetensors"), specs)
    for (name, key, shape, kind), (_, sdt, _) in zip(plan, specs):
        if kind == "tril":
            T = shape[-1]
            for r in range(T):  # row by row: row r is 1 for columns <= r
                row = torch.zeros(T, dtype=torch.float32)
                row[:r + 1] = 1.0
                wr.write(to_storage(row, sdt))
        elif kind == "masked_bias":
            wr.write(to_storage(torch.tensor([-1e4], dtype=torch.float32), sdt))
        else:
            for ch in random_chunks(key, shape, kind, seed, std):
                wr.write(to_storage(ch, sdt))
    wr.close()
    return cfg


# --------------------------------------------------------------------------------------
# q8_0 quantization (an independent implementation of the rule in docs/quantized-format.md)
# --------------------------------------------------------------------------------------

def q8_quantize(w32):
    """w32: float32 numpy [out, in], in % 32 == 0 -> (int8 [out, in], float16 [out, in/32]).
    Per block of 32: scale = fp16(max|v| / 127) (float32 division, round to nearest even,
    capped at 65504), q = round-half-away(v / scale) (float32 division) clamped to +-127;
    a zero scale gives q = 0."""
    rows, cols = w32.shape
    b = w32.reshape(rows, cols // 32, 32)
    amax = np.nanmax(np.abs(b), axis=2).astype(np.float32)
    h = (amax / np.float32(127)).astype(np.float16)
    h = np.where(np.isinf(h), np.float16(65504), h).astype(np.float16)
    s = h.astype(np.float32)[:, :, None]
    r = np.zeros_like(b)
    np.divide(b, s, out=r, where=(s != 0))
    r = np.nan_to_num(r.astype(np.float64), nan=0.0)
    q = np.sign(r) * np.floor(np.abs(r) + 0.5)
    q = np.clip(q, -127, 127).astype(np.int8)
    return q.reshape(rows, cols), h


def quantize_checkpoint(src, out):
    """Writes a q8_0 copy of the HF folder src into out (config/vocab/merges copied)."""
    import shutil
    os.makedirs(out, exist_ok=True)
    for f in ("config.json", "vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(src, f), os.path.join(out, f))
    base, header = read_safetensors_header(os.path.join(src, "model.safetensors"))
    mm = np.memmap(os.path.join(src, "model.safetensors"), dtype=np.uint8, mode="r")
    specs, data = [], []
    for name in sorted(header):
        info = header[name]
        bare = name[len("transformer."):] if name.startswith("transformer.") else name
        if bare.endswith(".attn.bias") or bare.endswith(".attn.masked_bias"):
            continue
        b, e = info["data_offsets"]
        raw = mm[base + b: base + e]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        linear = bare in ("wte.weight", "lm_head.weight") or bare.endswith(CONV1D)
        if linear:
            if dt == "F32":
                a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            elif dt == "F16":
                a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
            else:
                a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            a = a.reshape(shape)
            w = a.T if bare.endswith(CONV1D) else a  # [out, in]
            if w.shape[1] % 32 == 0:
                q, h = q8_quantize(np.ascontiguousarray(w))
                specs.append((name + ".q8", "I8", q.shape))
                data.append(q)
                specs.append((name + ".scale", "F16", h.shape))
                data.append(h.astype("<f2"))
                continue
            specs.append((name, "F16", shape))
            data.append(a.astype("<f2"))
            continue
        specs.append((name, dt, shape))
        data.append(np.asarray(raw))
    meta = {"format": "pt", "gpt2_wasm.quant": "q8_0", "gpt2_wasm.version": "1"}
    wr = SafetensorsStreamWriter(os.path.join(out, "model.safetensors"), specs, metadata=meta)
    for arr in data:
        wr.write(arr)
    wr.close()


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------

FIXTURE_MERGES = 1000

FIXTURES = [
    dict(name="tiny-f32", L=2, C=64, H=4, n_ctx=64, inner=None, dtype="f32", prefix=False,
         masks="bias", lm_head=False, seed=1, ctx_key="both"),
    dict(name="tiny-f16", L=2, C=64, H=4, n_ctx=64, inner=None, dtype="f16", prefix=True,
         masks="both", lm_head=True, seed=1, ctx_key="both"),
    dict(name="tiny-bf16", L=3, C=48, H=3, n_ctx=40, inner=96, dtype="bf16", prefix=False,
         masks=None, lm_head=False, seed=4, ctx_key="n_ctx"),
]

LONG_TEXT = (
    "It was a bright cold day in April, and the clocks were striking thirteen. "
    "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile "
    "wind, slipped quickly through the glass doors of Victory Mansions, though not "
    "quickly enough to prevent a swirl of gritty dust from entering along with him. "
    "The hallway smelt of boiled cabbage and old rag mats. At one end of it a coloured "
    "poster, too large for indoor display, had been tacked to the wall.")

CASE_TEXTS = [
    ("english", "The quick brown fox jumps over the lazy dog.", False),
    ("single_token", "The", False),
    ("digits_punct_newlines",
     "Year 2023: 4.5%!\nOk?\n\n  \tx\u00e9\n", False),
    ("special_eot", "First document ends here.<|endoftext|>Second document begins", True),
]


def text_with_n_tokens(tok, n):
    """Shortest prefix of LONG_TEXT (ending in a non-space) that encodes to n tokens."""
    for end in range(1, len(LONG_TEXT) + 1):
        s = LONG_TEXT[:end]
        if s[-1] == " ":
            continue
        k = len(tok.encode(s))
        if k == n:
            return s
        if k > n + 8:
            break
    raise RuntimeError("no prefix with %d tokens" % n)


def fmt_float(x):
    s = format(float(x), ".17g")
    assert math.isfinite(float(x)), s
    return s


def dump_json(obj, indent=0):
    """JSON with floats written as 17 significant digits, long lists on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        items = ["%s  %s: %s" % (pad, json.dumps(k), dump_json(v, indent + 1))
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(dump_json(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad + "  " + dump_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, float):
        return fmt_float(obj)
    raise TypeError(type(obj))


def make_case(ref, name, text, ids, allow_special, n_greedy=16):
    logits = ref.forward(ids)                       # [T, V]
    lsm = torch.log_softmax(logits, dim=-1)
    logprobs, ranks, rank_gap = [], [], None
    for t in range(1, len(ids)):
        row = logits[t - 1]
        logprobs.append(float(lsm[t - 1, ids[t]]))
        ranks.append(int((row > row[ids[t]]).sum()))
        others = torch.cat([row[:ids[t]], row[ids[t] + 1:]])
        gap = float((others - row[ids[t]]).abs().min())
        rank_gap = gap if rank_gap is None else min(rank_gap, gap)
    g, glast, gmargin = greedy(ref, ids, n_greedy)
    case = {"name": name, "text": text}
    if allow_special:
        case["allow_special"] = True
    case.update({
        "ids": ids,
        "logits_last": [float(v) for v in logits[-1]],
        "logits_last_margin": top2_margin(logits[-1]),
        "logprobs": logprobs,
        "ranks": ranks,
        "ranks_min_gap": rank_gap,
        "greedy": g,
        "greedy_logits_last": [float(v) for v in glast] if glast is not None else [],
        "greedy_min_margin": gmargin,
    })
    return case


def build_q8_fixture(out):
    """tests/fixtures/tiny-q8: tiny-f32 quantized to q8_0 by quantize_checkpoint (Python, not
    the C tool), with expected values of the float64 forward pass over the dequantized weights."""
    src, folder = os.path.join(out, "tiny-f32"), os.path.join(out, "tiny-q8")
    quantize_checkpoint(src, folder)
    tok = bpe.BPE.load(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    ref = Reference(folder)
    n_ctx = ref.cfg["n_ctx"]
    texts = list(CASE_TEXTS)
    texts.insert(3, ("fill_ctx", text_with_n_tokens(tok, n_ctx), False))
    cases = [make_case(ref, name, text, tok.encode(text, allow_special=special), special)
             for name, text, special in texts]
    margins = [c["greedy_min_margin"] for c in cases if c["greedy_min_margin"] is not None]
    margins += [c["logits_last_margin"] for c in cases]
    doc = {
        "generator": "/usr/bin/python3 tools/gpt2_reference.py q8fixture --out tests/fixtures",
        "model": "tiny-q8", "dtype": "q8_0 (from tiny-f32)",
        "vocab_size": ref.cfg["vocab_size"], "n_ctx": n_ctx,
        "eot_id": tok.vocab[bpe.EOT], "min_margin": min(margins),
        "cases": cases,
    }
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        f.write(dump_json(doc) + "\n")
    return min(margins), [(c["name"], len(c["ids"]), c["greedy_min_margin"]) for c in cases]


def build_fixtures(out, models_dir):
    os.makedirs(out, exist_ok=True)
    summary = []
    for fx in FIXTURES:
        folder = os.path.join(out, fx["name"])
        make_checkpoint(folder, fx["L"], fx["C"], fx["H"], fx["n_ctx"], models_dir,
                        dtype=fx["dtype"], prefix=fx["prefix"], masks=fx["masks"],
                        lm_head=fx["lm_head"], seed=fx["seed"], inner=fx["inner"],
                        merges=FIXTURE_MERGES, ctx_key=fx["ctx_key"])
        tok = bpe.BPE.load(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
        ref = Reference(folder)
        n_ctx = ref.cfg["n_ctx"]
        texts = list(CASE_TEXTS)
        texts.insert(3, ("fill_ctx", text_with_n_tokens(tok, n_ctx), False))
        texts.insert(4, ("ctx_minus_4", text_with_n_tokens(tok, n_ctx - 4), False))
        cases = []
        for name, text, special in texts:
            ids = tok.encode(text, allow_special=special)
            if name == "single_token":
                assert len(ids) == 1, ids
            if name == "special_eot":
                assert tok.vocab[bpe.EOT] in ids
            cases.append(make_case(ref, name, text, ids, special))
        margins = [c["greedy_min_margin"] for c in cases if c["greedy_min_margin"] is not None]
        margins += [c["logits_last_margin"] for c in cases]
        doc = {
            "generator": "/usr/bin/python3 tools/gpt2_reference.py fixtures --out tests/fixtures",
            "model": fx["name"], "dtype": DTYPE_NAME[fx["dtype"]],
            "vocab_size": ref.cfg["vocab_size"], "n_ctx": n_ctx,
            "eot_id": tok.vocab[bpe.EOT], "min_margin": min(margins),
            "cases": cases,
        }
        with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
            f.write(dump_json(doc) + "\n")
        summary.append((fx["name"], min(margins), [(c["name"], len(c["ids"]), len(c["greedy"]),
                                                    c["greedy_min_margin"]) for c in cases]))
    return summary


# --------------------------------------------------------------------------------------
# writing-tool features: scoring with alternatives, ranking choices, bans
# --------------------------------------------------------------------------------------

SCORE_TOPK = 5

FEATURE_SCORE_TEXTS = CASE_TEXTS + [
    ("multibyte", "Caf\u00e9 \u2615 na\u00efve \u65e5\u672c\u8a9e \U0001F600!", False),
]

# (name, prompt, choices)
RANK_CASES = [
    ("sentiment", "Review: a wonderful, moving film. Sentiment:", [" positive", " negative", " neutral"]),
    ("capital", "The capital of France is", [" Paris", " London", " Rome", " a city"]),
    ("boundary", "The cat sat on the ma", ["t.", "ttress", "p"]),  # merges across the boundary
    ("empty_prompt", "", ["Hello world", "xq zv"]),
]


def token_bytes_table(tok):
    """[id] -> bytes of the token (GPT-2 byte alphabet undone; <|endoftext|> literal)."""
    u2b = {u: b for b, u in tok.b2u.items()}
    out = [b""] * len(tok.vocab)
    for s, i in tok.vocab.items():
        out[i] = s.encode() if s == bpe.EOT else bytes(u2b[c] for c in s)
    return out


def streaming_texts(tb, ids):
    """Each token's text when the ids are decoded in order with an incremental UTF-8
    decoder (errors replaced); the final flush goes to the last token."""
    import codecs
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    texts = [dec.decode(tb[i]) for i in ids]
    if texts:
        texts[-1] += dec.decode(b"", final=True)
    return texts


def top_k_of(row, k):
    """Top k (id, logprob) of one row of logits: larger logit first, equal logits lower id
    first; and the smallest logit gap between consecutive entries of the top k+1 (how close
    the order is to a tie)."""
    lsm = torch.log_softmax(row, dim=-1)
    order = sorted(range(row.shape[0]), key=lambda i: (-float(row[i]), i))[:k + 1]
    gap = min(float(row[order[j]] - row[order[j + 1]]) for j in range(len(order) - 1))
    return [int(i) for i in order[:k]], [float(lsm[i]) for i in order[:k]], gap


def score_case(ref, tok, tb, name, text, special):
    ids = tok.encode(text, allow_special=special)
    logits = ref.forward(ids)
    lsm = torch.log_softmax(logits, dim=-1)
    positions = []
    for t in range(1, len(ids)):
        row = logits[t - 1]
        tid, tlp, gap = top_k_of(row, SCORE_TOPK)
        positions.append({
            "logprob": float(lsm[t - 1, ids[t]]),
            "rank": int((row > row[ids[t]]).sum()),
            "top_ids": tid,
            "top_logprobs": tlp,
            "top_min_gap": gap,
        })
    case = {"name": name, "text": text}
    if special:
        case["allow_special"] = True
    case.update({"ids": ids, "token_texts": streaming_texts(tb, ids), "positions": positions})
    return case


def rank_case(ref, tok, name, prompt, choices):
    eot = tok.vocab[bpe.EOT]
    base = tok.encode(prompt)
    out = []
    for index, choice in enumerate(choices):
        full = tok.encode(prompt + choice)
        c = 0
        while c < len(base) and c < len(full) and base[c] == full[c]:
            c += 1
        context = full[:c] if c > 0 else [eot]
        scored = full[c:]
        assert scored, (name, choice)
        seq = context + scored
        lsm = torch.log_softmax(ref.forward(seq), dim=-1)
        lps = [float(lsm[len(context) + j - 1, scored[j]]) for j in range(len(scored))]
        total = math.fsum(lps)
        out.append({"choice": choice, "index": index, "context": context, "scored": scored,
                    "logprobs": lps, "logprob": total, "mean_logprob": total / len(scored)})
    return {"name": name, "prompt": prompt, "choices": out}


def is_word_byte(b):
    return (0x61 <= b <= 0x7A) or (0x41 <= b <= 0x5A) or (0x30 <= b <= 0x39) or b >= 0x80


def banned_tokens(tb, text, words):
    """Token ids banned after the byte string `text` (generate.h's rule, written directly
    from its statement): t is banned when some word W occurs in text + bytes(t) at a word
    start and ends inside bytes(t)."""
    out = set()
    for w in words:
        w = w.encode("utf-8")
        free = not is_word_byte(w[0])
        tail = text[-(len(w) + 1):] if len(text) > len(w) else text
        cut = len(text) - len(tail)  # offset of tail in text
        for t, b in enumerate(tb):
            s = tail + b
            for p in range(len(s) - len(w) + 1):
                if p + len(w) <= len(tail):
                    continue  # ends before the token
                if s[p:p + len(w)] != w:
                    continue
                start = free or (p == 0 and cut == 0) or (p > 0 and not is_word_byte(s[p - 1]))
                if p == 0 and cut > 0 and not free:
                    start = not is_word_byte(text[cut - 1])
                if start:
                    out.add(t)
                    break
    return out


def greedy_controlled(ref, tb, ids, n, bias=None, words=()):
    """Greedy continuation (full recompute per step) with a logit bias {id: value} added
    and banned words applied. Returns (tokens, min margin between the best and second-best
    allowed logits)."""
    seq = list(ids)
    text = b"".join(tb[i] for i in ids)
    out, margin = [], None
    while len(out) < n and len(seq) < ref.cfg["n_ctx"]:
        row = ref.forward(seq)[-1].clone()
        for i, v in (bias or {}).items():
            row[i] = row[i] + v
        for i in banned_tokens(tb, text, words):
            row[i] = float("-inf")
        v = torch.topk(row, 2)
        t = int(torch.argmax(row))
        m = float(v.values[0] - v.values[1])
        margin = m if margin is None else min(margin, m)
        out.append(t)
        seq.append(t)
        text += tb[t]
    return out, margin


def first_word(tb, tokens):
    """A word to ban from the tokens' text: the first run of 3+ ASCII letters at a word
    start (not preceded by a word byte), cut to its first 4 letters."""
    text = b"".join(tb[i] for i in tokens)
    for p in range(len(text)):
        if p > 0 and is_word_byte(text[p - 1]):
            continue
        e = p
        while e < len(text) and (0x61 <= text[e] <= 0x7A or 0x41 <= text[e] <= 0x5A):
            e += 1
        if e - p >= 3:
            return text[p:min(e, p + 4)].decode("ascii")
    return None


def ban_cases(ref, tok, tb):
    cases = []
    n = 16
    for name, text, special in CASE_TEXTS:
        if name not in ("english", "digits_punct_newlines"):
            continue
        ids = tok.encode(text, allow_special=special)
        plain, pm = greedy_controlled(ref, tb, ids, n)
        banned_id = plain[3]  # ban the 4th greedy token outright
        g1, m1 = greedy_controlled(ref, tb, ids, n, bias={banned_id: float("-inf")})
        # a finite bias strong enough to force a token that is not the argmax
        forced = plain[0] + 1 if plain[0] + 1 < ref.cfg["vocab_size"] else plain[0] - 1
        g2, m2 = greedy_controlled(ref, tb, ids, n, bias={forced: 1e9})
        cases.append({"name": name + "_bias", "text": text, "ids": ids, "plain": plain,
                      "logit_bias": {str(banned_id): "-Infinity"}, "greedy": g1, "min_margin": m1})
        cases.append({"name": name + "_force", "text": text, "ids": ids, "plain": plain,
                      "logit_bias": {str(forced): 1e9}, "greedy": g2, "min_margin": m2})
        word = first_word(tb, plain)
        if word:
            g3, m3 = greedy_controlled(ref, tb, ids, n, words=[word])
            cases.append({"name": name + "_word", "text": text, "ids": ids, "plain": plain,
                          "banned_words": [word], "greedy": g3, "min_margin": m3})
    return cases


def build_features(out):
    summary = []
    for fx in FIXTURES:
        folder = os.path.join(out, fx["name"])
        tok = bpe.BPE.load(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
        tb = token_bytes_table(tok)
        ref = Reference(folder)
        texts = FEATURE_SCORE_TEXTS + [("fill_ctx", text_with_n_tokens(tok, ref.cfg["n_ctx"]), False)]
        score = [score_case(ref, tok, tb, n, t, sp) for n, t, sp in texts]
        rank = [rank_case(ref, tok, n, p, c) for n, p, c in RANK_CASES]
        bans = ban_cases(ref, tok, tb)
        gaps = [p["top_min_gap"] for c in score for p in c["positions"]]
        doc = {
            "generator": "/usr/bin/python3 tools/gpt2_reference.py features --out tests/fixtures",
            "model": fx["name"], "top_k": SCORE_TOPK, "eot_id": tok.vocab[bpe.EOT],
            "score": score, "rank": rank, "bans": bans,
        }
        with open(os.path.join(folder, "expected_score.json"), "w", encoding="utf-8") as f:
            f.write(dump_json(doc) + "\n")
        summary.append((fx["name"], min(gaps), [(b["name"], b["min_margin"]) for b in bans]))
    return summary



# --------------------------------------------------------------------------------------
# training reference: gradients and optimiser steps (float64, autograd)
# --------------------------------------------------------------------------------------

TRAIN_FIXTURES = ("tiny-f32", "tiny-f16", "tiny-bf16")
TRAIN_SAMPLES = 24
MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class TrainReference:
    """The model of Reference with its parameters as float64 leaves (Hugging Face layout)."""

    def __init__(self, folder):
        ref = Reference(folder)
        self.cfg = ref.cfg
        self.params = {k: v.clone().requires_grad_(True) for k, v in ref.w.items()}
        self.tied = "lm_head.weight" not in self.params

    def decayed(self, name):
        return name in ("wte.weight", "lm_head.weight") or name.endswith(MATRICES)

    def loss(self, inputs, targets, mask=None):
        """inputs, targets: [B, T] ints; mask [B, T] 0/1 or None. Mean over counted targets."""
        c, w = self.cfg, self.params
        B, T = len(inputs), len(inputs[0])
        C, H = c["n_embd"], c["n_head"]
        D = C // H
        idx = torch.tensor(inputs, dtype=torch.long)
        x = w["wte.weight"][idx] + w["wpe.weight"][:T]            # [B, T, C]
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        ln = Reference.layer_norm
        for i in range(c["n_layer"]):
            p = "h.%d." % i
            a = ln(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], c["eps"])
            qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = (qkv[..., j * C:(j + 1) * C].reshape(B, T, H, D).transpose(1, 2) for j in range(3))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
            s = torch.softmax(s.masked_fill(future, float("-inf")), dim=-1)
            y = (s @ v).transpose(1, 2).reshape(B, T, C)
            x = x + (y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"])
            m = ln(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], c["eps"])
            m = Reference.gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
            x = x + (m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"])
        x = ln(x, w["ln_f.weight"], w["ln_f.bias"], c["eps"])
        head = w["wte.weight"] if self.tied else w["lm_head.weight"]
        logits = x @ head.T
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(targets).unsqueeze(-1)).squeeze(-1)
        msk = torch.ones(B, T, dtype=torch.float64) if mask is None else torch.tensor(mask, dtype=torch.float64)
        return (nll * msk).sum() / msk.sum()

    def zero_grad(self):
        for t in self.params.values():
            t.grad = None


def train_batch(ids, T, windows):
    inputs = [ids[w * T: w * T + T] for w in windows]
    targets = [ids[w * T + 1: w * T + T + 1] for w in windows]
    return inputs, targets


def grad_stats(params):
    """Per tensor: shape, max |g|, L2 norm, and TRAIN_SAMPLES entries (flat index in Hugging
    Face's layout, value): the argmax of |g| and evenly spread indices."""
    out = {}
    for name in sorted(params):
        g = params[name].grad.detach().reshape(-1)
        n = g.numel()
        am = int(torch.argmax(g.abs()))
        idx = sorted(set([am] + [(k * 7919 + 13) % n for k in range(TRAIN_SAMPLES - 1)]))
        out[name] = {"shape": list(params[name].shape), "max_abs": float(g.abs().max()),
                     "l2": float(torch.sqrt((g * g).sum())),
                     "samples": [[i, float(g[i])] for i in idx]}
    return out


def train_run(folder, ids, opt, steps, B, T, lr, wd, clip, betas=(0.9, 0.999), eps=1e-8):
    """Losses of `steps` optimiser steps, windows (s*B + b) mod nWindows (shuffle off)."""
    ref = TrainReference(folder)
    nw = (len(ids) - 1) // T
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in ref.params.items()}
    losses = []
    for s in range(steps):
        inputs, targets = train_batch(ids, T, [(s * B + b) % nw for b in range(B)])
        ref.zero_grad()
        loss = ref.loss(inputs, targets)
        loss.backward()
        losses.append(float(loss))
        with torch.no_grad():
            norm = math.sqrt(sum(float((p.grad * p.grad).sum()) for p in ref.params.values()))
            scale = clip / norm if clip > 0 and norm > clip else 1.0
            for name, p in ref.params.items():
                g = p.grad * scale
                d = wd if ref.decayed(name) else 0.0
                if opt == "sgd":
                    p -= lr * (g + d * p)
                else:
                    m, v = state[name]
                    p -= lr * d * p
                    m.mul_(betas[0]).add_((1 - betas[0]) * g)
                    v.mul_(betas[1]).add_((1 - betas[1]) * g * g)
                    mh = m / (1 - betas[0] ** (s + 1))
                    vh = v / (1 - betas[1] ** (s + 1))
                    p -= lr * mh / (torch.sqrt(vh) + eps)
    return losses


TRAIN_RUNS = {
    "sgd": dict(opt="sgd", steps=20, B=2, T=16, lr=0.05, wd=0.0, clip=0.0),
    "adamw": dict(opt="adamw", steps=20, B=2, T=16, lr=1e-3, wd=0.1, clip=1.0),
}


def build_train(out):
    summary = []
    for name in TRAIN_FIXTURES:
        folder = os.path.join(out, name)
        tok = bpe.BPE.load(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
        ids = tok.encode(LONG_TEXT)
        ref = TrainReference(folder)
        T = ref.cfg["n_ctx"]
        cases = []
        for cname, mask in (("full_context", None), ("masked", True)):
            inputs, targets = train_batch(ids, T, [0, 1])
            if mask:  # drop the first 5 targets of sequence 0 and the last 9 of sequence 1
                mask = [[0 if t < 5 else 1 for t in range(T)], [0 if t >= T - 9 else 1 for t in range(T)]]
            ref.zero_grad()
            loss = ref.loss(inputs, targets, mask)
            loss.backward()
            case = {"name": cname, "batch": 2, "seq": T, "windows": [0, 1], "loss": float(loss)}
            if mask:
                case["mask"] = mask
            case["grads"] = grad_stats(ref.params)
            cases.append(case)
        runs = {}
        for rname, r in TRAIN_RUNS.items():
            runs[rname] = dict(r, betas=[0.9, 0.999], eps=1e-8, losses=train_run(folder, ids, **r))
        doc = {"generator": "/usr/bin/python3 tools/gpt2_reference.py train --out tests/fixtures",
               "model": name, "tied_head": ref.tied, "ids": ids, "cases": cases, "runs": runs}
        with open(os.path.join(folder, "expected_train.json"), "w", encoding="utf-8") as f:
            f.write(dump_json(doc) + "\n")
        summary.append((name, len(ids), cases[0]["loss"], runs["sgd"]["losses"][-1], runs["adamw"]["losses"][-1]))
    return summary


def cmd_trainbench(a):
    """PyTorch float32 training speed for the same model, batch and sequence (AdamW steps on
    random windows of token ids), for comparison with `gpt2 finetune`."""
    torch.set_num_threads(a.threads)
    ref = TrainReference(a.model)
    for p in ref.params.values():
        p.data = p.data.float()
    params = list(ref.params.values())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    V = ref.cfg["vocab_size"]
    g = torch.Generator().manual_seed(0)
    times = []
    for s in range(a.steps + 1):
        ids = torch.randint(0, V, (a.batch, a.seq + 1), generator=g).tolist()
        inputs = [r[:-1] for r in ids]
        targets = [r[1:] for r in ids]
        t0 = time.time()
        opt.zero_grad()
        loss = ref.loss(inputs, targets)
        loss.backward()
        opt.step()
        if s:  # the first step warms up
            times.append(time.time() - t0)
    per = sorted(times)[len(times) // 2]
    print(json.dumps({"threads": a.threads, "batch": a.batch, "seq": a.seq, "step_s": per,
                      "tokens_per_second": a.batch * a.seq / per, "torch": torch.__version__}))


def cmd_train(a):
    for s in build_train(a.out):
        print("%s: %d ids, loss %.6f, after 20 SGD %.6f, after 20 AdamW %.6f" % s)

# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def cmd_fixtures(a):
    for name, mm, cases in build_fixtures(a.out, a.models):
        print("%s: min margin %.6g" % (name, mm))
        for c in cases:
            print("   %-22s T=%-3d greedy=%-2d margin=%s" % c)
    cmd_q8fixture(a)  # tiny-q8 is tiny-f32 quantized


def cmd_features(a):
    for name, gap, bans in build_features(a.out):
        print("%s: smallest top-k logit gap %.6g" % (name, gap))
        for b in bans:
            print("   %-28s min margin %s" % b)


def cmd_q8fixture(a):
    mm, cases = build_q8_fixture(a.out)
    print("tiny-q8: min margin %.6g" % mm)
    for c in cases:
        print("   %-22s T=%-3d margin=%s" % c)


def cmd_quantize(a):
    quantize_checkpoint(a.src, a.out)
    print("wrote %s" % a.out)


def cmd_logits(a):
    ref = Reference(a.model)
    if a.ids is not None:
        ids = [int(t) for t in a.ids.replace(",", " ").split()]
    else:
        tok = bpe.BPE.load(os.path.join(a.model, "vocab.json"), os.path.join(a.model, "merges.txt"))
        ids = tok.encode(a.text, allow_special=a.allow_special)
    t0 = time.time()
    logits = ref.forward(ids)
    rows = logits if a.all else logits[-1:]
    print("forward: %d tokens, %.3f s" % (len(ids), time.time() - t0), file=sys.stderr)
    out = {"ids": ids}
    if a.top:
        out["top"] = [[[int(i), float(r[i])] for i in torch.topk(r, a.top).indices] for r in rows]
    else:
        out["logits"] = [[float(v) for v in r] for r in rows]
        if not a.all:
            out["logits"] = out["logits"][0]
    print(dump_json(out))


def cmd_make(a):
    t0 = time.time()
    masks = {"none": None, "bias": "bias", "both": "both"}[a.mask_kind] if a.masks else None
    cfg = make_checkpoint(a.out, a.layers, a.embd, a.heads, a.ctx, a.vocab_from,
                          dtype=a.dtype, prefix=a.prefix, masks=masks, lm_head=a.lm_head,
                          seed=a.seed, inner=a.inner, merges=a.merges, std=a.std,
                          ctx_key=a.ctx_key)
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print("wrote %s: vocab %d, %.1f MB, %.1f s" % (a.out, cfg["vocab_size"], size / 1e6,
                                                   time.time() - t0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fixtures", help="regenerate the committed test fixtures")
    p.add_argument("--out", default="tests/fixtures")
    p.add_argument("--models", default="models", help="folder with GPT-2's vocab.json/merges.txt")
    p.set_defaults(func=cmd_fixtures)

    p = sub.add_parser("features", help="expected values of scoring, ranking and bans")
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("q8fixture", help="regenerate tests/fixtures/tiny-q8 from tiny-f32")
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=cmd_q8fixture)

    p = sub.add_parser("quantize", help="write a q8_0 copy of a folder (Python implementation)")
    p.add_argument("src")
    p.add_argument("out")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("logits", help="float64 reference logits for an HF-layout folder")
    p.add_argument("--model", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ids", help='token ids, e.g. "1 2 3"')
    g.add_argument("--text", help="text, tokenized with the folder's vocab/merges")
    p.add_argument("--allow-special", action="store_true")
    p.add_argument("--all", action="store_true", help="all positions, not only the last")
    p.add_argument("--top", type=int, default=0, help="only print the top K (id, logit)")
    p.set_defaults(func=cmd_logits)

    p = sub.add_parser("train", help="expected gradients and optimiser losses for the fixtures")
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("trainbench", help="PyTorch float32 training tokens/s (AdamW) for a folder")
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_trainbench)

    p = sub.add_parser("make", help="write a random checkpoint of any shape")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--embd", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--ctx", type=int, required=True)
    p.add_argument("--inner", type=int, default=None, help="MLP width (default: null = 4*embd)")
    p.add_argument("--vocab-from", required=True, help="folder with vocab.json + merges.txt")
    p.add_argument("--merges", type=int, default=None,
                   help="keep only the first M merges (vocab 257+M); default: all")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--prefix", action="store_true", help="'transformer.' name prefix")
    p.add_argument("--masks", action="store_true", help="write attn.bias mask buffers")
    p.add_argument("--mask-kind", choices=["bias", "both"], default="bias",
                   help="with --masks: attn.bias only, or also attn.masked_bias")
    p.add_argument("--lm-head", action="store_true", help="also store lm_head.weight (= wte)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float, default=0.2, help="std of weights and wte")
    p.add_argument("--ctx-key", choices=["both", "n_positions", "n_ctx"], default="both")
    p.set_defaults(func=cmd_make)

    a = ap.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
