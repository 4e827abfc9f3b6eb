#!/usr/bin/python3
"""Train the small embedded default GPT-2 model shipped in models/.

Whole pipeline, deterministic (fixed seeds), CPU only:

  corpus    Jane Austen's six novels, read straight from the installed Debian package
            r-cran-janeaustenr (an R lazy-load database; parsed here with a small
            reader of R's XDR serialization format, R itself is not needed).
  tokenize  GPT-2's real byte-level BPE (models/vocab.json + models/merges.txt) via
            tools/bpe_reference.py; token ids cached in --work (default /tmp/train).
  split     the last --holdout fraction (default 5%) of every novel is held out.
  train     exact GPT-2 architecture (pre-LN, learned positions, gelu_new, LN eps 1e-5,
            tied LM head, Conv1D biases).  To save compute the softmax during training
            runs over the tokens that occur in the training text plus ONE extra class
            "other" that stands for all N unused tokens at once: its embedding row is
            e_other and its logit is h.e_other + log(N).  When every unused token gets
            the row e_other in the exported full-vocabulary checkpoint, the full
            50257-way softmax equals the training softmax exactly, so the shipped model
            is an ordinary GPT-2 checkpoint that gives unused tokens low probability.
  export    Hugging Face GPT-2 folder (config.json + F16 model.safetensors, HF tensor
            names, Conv1D [in, out] layouts, no lm_head, no mask buffers).
  report    loss-curve PNG, held-out loss/perplexity with the exported full-vocab F16
            model, greedy and sampled continuations.

Subcommands (all options have defaults; see --help of each):
  prepare   extract + tokenize + print corpus statistics
  bench     measure training tokens/s for a shape
  train     train (resumable from --work/ckpt.pt), periodic eval + checkpoint
  export    write --out/config.json + --out/model.safetensors from --work/ckpt.pt
  report    held-out evaluation of an exported folder, samples, loss.png
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bpe_reference  # noqa: E402  (colleague's GPT-2 BPE implementation)

REPO = os.path.dirname(HERE)
EOT_ID = 50256
VOCAB = 50257
JANE_DIR = "/usr/lib/R/site-library/janeaustenr/data"
BOOKS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma",
         "northangerabbey", "persuasion"]

# --------------------------------------------------------------------------------------
# Corpus: minimal reader of R's serialization format (XDR, versions 2 and 3)
# --------------------------------------------------------------------------------------


class RReader:
    """Reads the subset of R's serialize() format found in data packages: vectors,
    pairlists, symbols, strings, attributes, references, ALTREP wrappers."""

    def __init__(self, buf):
        self.b = buf
        self.p = 0
        self.refs = []

    def int(self):
        (v,) = struct.unpack_from(">i", self.b, self.p)
        self.p += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def read_file(self):
        fmt = self.b[:2]
        if fmt != b"X\n":
            raise ValueError("not an XDR R serialization: %r" % fmt)
        self.p = 2
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            n = self.int()
            self.p += n
        return self.item()

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr = flags & (1 << 9)
        has_tag = flags & (1 << 10)
        if t == 254 or t in (253, 242, 241, 251, 252, 250):  # NIL, envs, markers
            return None
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t in (247, 249, 248):  # PERSIST, NAMESPACE, PACKAGE: string vector info
            self.int()
            n = self.int()
            info = [self.item() for _ in range(n)]
            self.refs.append(("ns", info))
            return self.refs[-1]
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if t == 4:  # ENVSXP
            env = {}
            self.refs.append(env)
            self.int()
            self.item()
            frame = self.item()
            self.item()
            self.item()
            env["frame"] = frame
            return env
        if t in (2, 6, 3, 5, 17, 240, 239):  # pairlist-like
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            out = [(tag, car)]
            if isinstance(cdr, list):
                out.extend(cdr)
            return out
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.p:self.p + n]
            self.p += n
            return s.decode("utf-8", errors="replace")
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            v = struct.unpack_from(">%di" % n, self.b, self.p)
            self.p += 4 * n
            val = list(v)
        elif t == 14:  # REALSXP
            n = self.length()
            v = struct.unpack_from(">%dd" % n, self.b, self.p)
            self.p += 8 * n
            val = list(v)
        elif t == 16:  # STRSXP
            n = self.length()
            val = [self.item() for _ in range(n)]
        elif t in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            val = [self.item() for _ in range(n)]
        elif t == 238:  # ALTREP: info, state, attr
            self.item()
            state = self.item()
            self.item()
            return state
        else:
            raise ValueError("unsupported R SEXP type %d at %d" % (t, self.p))
        if has_attr:
            self.item()
        return val


def load_austen():
    """{book: list of lines} from r-cran-janeaustenr's installed data files."""
    # Rdata.rdx (gzip) is a serialized list [variables, references, compressed];
    # variables is a named list of (offset, length) into Rdata.rdb, where each object
    # is a 4-byte big-endian length followed by a zlib stream of a serialized object.
    with open(os.path.join(JANE_DIR, "Rdata.rdx"), "rb") as f:
        raw = gzip.decompress(f.read())
    variables = _vecsxp_names_first(raw)
    var_offsets = dict(zip(variables.names, variables))
    with open(os.path.join(JANE_DIR, "Rdata.rdb"), "rb") as f:
        db = f.read()
    out = {}
    for book in BOOKS:
        off, ln = var_offsets[book]
        off, ln = int(off), int(ln)
        blob = db[off:off + ln]
        data = zlib.decompress(blob[4:])
        out[book] = RReader(data).read_file()
    return out


def _vecsxp_names_first(raw):
    """The first element ('variables') of a lazy-load index, with its names."""
    # Re-parse keeping attributes of the inner VECSXP.
    class Keep(RReader):
        def item(self):
            start = self.p
            flags = struct.unpack_from(">i", self.b, self.p)[0]
            t = flags & 0xFF
            if t == 19 and (flags & (1 << 9)):
                self.p += 4
                n = self.length()
                val = [self.item() for _ in range(n)]
                attr = self.item()
                val = _Named(val)
                for tag, car in attr:
                    if tag == "names":
                        val.names = car
                return val
            self.p = start
            return RReader.item(self)

    idx = Keep(raw).read_file()
    return idx[0]


class _Named(list):
    names = None


def clean_book(lines):
    """Hard-wrapped Gutenberg lines -> paragraphs joined by blank lines; _italics_
    markers removed; runs of spaces collapsed."""
    paras, cur = [], []
    for ln in lines:
        ln = (ln or "").strip()
        if not ln:
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        cur.append(ln)
    if cur:
        paras.append(" ".join(cur))
    out = []
    for p in paras:
        p = p.replace("_", "")
        p = " ".join(p.split())
        if p:
            out.append(p)
    return "\n\n".join(out)


def package_version(pkg="r-cran-janeaustenr"):
    try:
        import subprocess
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                              capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"


def load_tokens(work, holdout):
    """Returns dict(train=np.int32[...], val=np.int32[...], stats=...) cached in work."""
    os.makedirs(work, exist_ok=True)
    books = load_austen()
    texts = {b: clean_book(books[b]) for b in BOOKS}
    h = hashlib.sha256()
    for b in BOOKS:
        h.update(texts[b].encode("utf-8"))
    key = h.hexdigest()[:16]
    cache = os.path.join(work, "tokens-%s.npz" % key)
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        per_book = {b: z[b] for b in BOOKS}
    else:
        tok = bpe_reference.BPE.load(os.path.join(REPO, "models/vocab.json"),
                                     os.path.join(REPO, "models/merges.txt"))
        assert tok.encode("Hello world") == [15496, 995], tok.encode("Hello world")
        per_book = {}
        for b in BOOKS:
            per_book[b] = np.array(tok.encode(texts[b]), dtype=np.int32)
        np.savez(cache + ".tmp.npz", **per_book)
        os.replace(cache + ".tmp.npz", cache)
    train, val = [], []
    for b in BOOKS:
        ids = per_book[b]
        cut = int(len(ids) * (1.0 - holdout))
        train.append(ids[:cut])
        train.append(np.array([EOT_ID], dtype=np.int32))
        val.append(ids[cut:])
        val.append(np.array([EOT_ID], dtype=np.int32))
    train = np.concatenate(train)
    val = np.concatenate(val)
    stats = {"chars": sum(len(texts[b]) for b in BOOKS), "cache": cache,
             "per_book": {b: int(len(per_book[b])) for b in BOOKS}}
    return train, val, texts, stats


# --------------------------------------------------------------------------------------
# Model: exact GPT-2 with a compact (used-token) softmax for training
# --------------------------------------------------------------------------------------


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class Conv1D(nn.Module):
    """GPT-2's Conv1D: y = x @ W + b with W stored [in, out]."""

    def __init__(self, nin, nout, std):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nin, nout) * std)
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(
            *x.shape[:-1], self.weight.shape[1])


class Block(nn.Module):
    def __init__(self, C, H, L, dropout):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = Conv1D(C, 3 * C, 0.02)
        self.attn_c_proj = Conv1D(C, C, 0.02 / math.sqrt(2 * L))
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = Conv1D(C, 4 * C, 0.02)
        self.mlp_c_proj = Conv1D(4 * C, C, 0.02 / math.sqrt(2 * L))
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x, mask):
        B, T, C = x.shape
        H = self.H
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
        att = att.masked_fill(mask[:T, :T], float("-inf"))
        att = self.drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.drop(self.attn_c_proj(y))
        x = x + self.drop(self.mlp_c_proj(gelu_new(self.c_fc(self.ln_2(x)))))
        return x


class GPT2(nn.Module):
    """n_tok rows of token embedding (compact vocab; the last row may be 'other')."""

    def __init__(self, n_tok, n_pos, C, H, L, dropout=0.0, other_logbias=None):
        super().__init__()
        self.wte = nn.Parameter(torch.randn(n_tok, C) * 0.02)
        self.wpe = nn.Parameter(torch.randn(n_pos, C) * 0.01)
        self.h = nn.ModuleList([Block(C, H, L, dropout) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.drop = nn.Dropout(dropout)
        mask = torch.triu(torch.ones(n_pos, n_pos, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        bias = torch.zeros(n_tok)
        if other_logbias is not None:
            bias[-1] = other_logbias
        self.register_buffer("logit_bias", bias, persistent=False)

    def hidden(self, idx):
        B, T = idx.shape
        x = self.drop(self.wte[idx] + self.wpe[:T])
        for blk in self.h:
            x = blk(x, self.mask)
        return self.ln_f(x)

    def forward(self, idx, targets=None):
        h = self.hidden(idx)
        logits = h @ self.wte.t() + self.logit_bias
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def build_vocab_map(train):
    """Compact ids: used tokens (sorted) then one 'other' row.  Returns (used, full2c)."""
    used = np.unique(train)
    full2c = np.full(VOCAB, len(used), dtype=np.int64)  # default: 'other'
    full2c[used] = np.arange(len(used))
    return used, full2c


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.dim() >= 2 and n != "wpe":
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def get_batch(data, B, T, gen):
    ix = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
    x = torch.stack([data[i:i + T] for i in ix.tolist()])
    y = torch.stack([data[i + 1:i + 1 + T] for i in ix.tolist()])
    return x, y


@torch.no_grad()
def evaluate(model, data, T, max_tokens=None):
    """Mean per-token loss over data (non-overlapping windows of T; first window
    tokens predicted with shorter context, as in standard chunked evaluation)."""
    model.eval()
    n = len(data) - 1
    if max_tokens:
        n = min(n, max_tokens)
    tot, cnt = 0.0, 0
    starts = list(range(0, n, T))
    for s in range(0, len(starts), 16):
        xs, ys = [], []
        chunk = starts[s:s + 16]
        for st in chunk:
            e = min(st + T, n)
            xs.append(data[st:e])
            ys.append(data[st + 1:e + 1])
        L = max(len(x) for x in xs)
        if any(len(x) != L for x in xs):
            for x, y in zip(xs, ys):
                lg = model(x[None])
                tot += F.cross_entropy(lg[0], y, reduction="sum").item()
                cnt += len(y)
            continue
        lg = model(torch.stack(xs))
        tot += F.cross_entropy(lg.view(-1, lg.shape[-1]), torch.stack(ys).view(-1),
                               reduction="sum").item()
        cnt += sum(len(y) for y in ys)
    model.train()
    return tot / cnt


def make_model(args, n_tok, n_other):
    torch.manual_seed(args.seed)
    return GPT2(n_tok, args.n_positions, args.n_embd, args.n_head, args.n_layer,
                dropout=args.dropout, other_logbias=math.log(n_other))


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    r = min(1.0, (step - args.warmup) / max(1, args.max_steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * r))


def setup_torch(threads):
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


def cmd_prepare(a):
    train, val, texts, st = load_tokens(a.work, a.holdout)
    used = np.unique(train)
    print(json.dumps({"package": "r-cran-janeaustenr", "version": package_version(),
                      "chars": st["chars"], "tokens_per_book": st["per_book"],
                      "train_tokens": int(len(train)), "val_tokens": int(len(val)),
                      "used_vocab": int(len(used)),
                      "val_tokens_unseen_in_train": int((~np.isin(val, used)).sum()),
                      "cache": st["cache"]}, indent=1))
    print(texts["prideprejudice"][:600])


def cmd_bench(a):
    setup_torch(a.threads)
    train, val, _, _ = load_tokens(a.work, a.holdout)
    used, full2c = build_vocab_map(train)
    data = torch.from_numpy(full2c[train])
    n_tok = len(used) + 1 if not a.full_vocab else VOCAB
    if a.full_vocab:
        data = torch.from_numpy(train.astype(np.int64))
    model = make_model(a, n_tok, VOCAB - len(used))
    opt = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    for i in range(a.steps + 2):
        if i == 2:
            t0 = time.time()
        x, y = get_batch(data, a.batch, a.n_positions, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt = time.time() - t0
    tps = a.steps * a.batch * a.n_positions / dt
    print("shape L%d C%d H%d T%d B%d vocab %d: %.0f tok/s, %.3f s/step, loss %.3f"
          % (a.n_layer, a.n_embd, a.n_head, a.n_positions, a.batch, n_tok, tps,
             dt / a.steps, loss.item()))


def save_ckpt(path, model, opt, step, args, used, log):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "args": {k: v for k, v in vars(args).items() if k != "fn"}, "used": used, "log": log}, tmp)
    os.replace(tmp, path)


def cmd_train(a):
    setup_torch(a.threads)
    os.makedirs(a.work, exist_ok=True)
    train, val, _, st = load_tokens(a.work, a.holdout)
    used, full2c = build_vocab_map(train)
    n_other = VOCAB - len(used)
    tdata = torch.from_numpy(full2c[train])
    vdata = torch.from_numpy(full2c[val])
    model = make_model(a, len(used) + 1, n_other)
    opt = torch.optim.AdamW(param_groups(model, a.weight_decay), lr=a.lr, betas=(0.9, 0.95))
    ckpt = os.path.join(a.work, "ckpt.pt")
    step, log = 0, []
    if os.path.exists(ckpt) and not a.fresh:
        c = torch.load(ckpt)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["opt"])
        step, log = c["step"], c["log"]
        print("resumed at step", step, flush=True)
    gen = torch.Generator().manual_seed(a.seed + step)
    n_params = sum(p.numel() for p in model.parameters())
    print("train %d tok, val %d tok, used vocab %d (+1 other for %d), compact params %d"
          % (len(train), len(val), len(used), n_other, n_params), flush=True)
    t_start = time.time() - (log[-1]["time"] if log else 0.0)
    tok_per_step = a.batch * a.n_positions
    model.train()
    run_loss, run_n = 0.0, 0
    t_log = time.time()
    while step < a.max_steps:
        lr = lr_at(step, a)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(tdata, a.batch, a.n_positions, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        step += 1
        run_loss += loss.item()
        run_n += 1
        if step % a.log_every == 0:
            now = time.time()
            print("step %d lr %.2e train %.4f  %.0f tok/s  %.1f min" % (
                step, lr, run_loss / run_n, a.log_every * tok_per_step / max(now - t_log, 1e-9),
                (now - t_start) / 60), flush=True)
            t_log = now
        if step % a.eval_every == 0 or step == a.max_steps:
            vl = evaluate(model, vdata, a.n_positions)
            el = time.time() - t_start
            log.append({"step": step, "tokens": step * tok_per_step,
                        "train": run_loss / max(run_n, 1), "val": vl, "time": el,
                        "epoch": step * tok_per_step / len(train)})
            run_loss, run_n = 0.0, 0
            print("EVAL step %d epoch %.2f train %.4f val %.4f (ppl %.1f) %.1f min" % (
                step, log[-1]["epoch"], log[-1]["train"], vl, math.exp(vl), el / 60),
                flush=True)
            save_ckpt(ckpt, model, opt, step, a, used, log)
            if a.stop_at and step >= a.stop_at:
                print("reached --stop-at %d, stopping" % a.stop_at, flush=True)
                break
            if a.stop_file and os.path.exists(a.stop_file):
                print("stop file found, stopping", flush=True)
                break
    save_ckpt(ckpt, model, opt, step, a, used, log)
    print("done", flush=True)


def f16_bytes(t):
    return t.detach().to(torch.float32).numpy().astype("<f2").tobytes()


def write_safetensors(path, tensors):
    """tensors: list of (name, float tensor); stored as F16, contiguous, no holes."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = f16_bytes(t)
        header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def full_vocab_wte(model, used, seed, noise):
    """Expand the compact embedding to 50257 rows: used tokens keep their rows, every
    other token gets the 'other' row (+ tiny seeded noise so rows stay distinct)."""
    C = model.wte.shape[1]
    other = model.wte[-1].detach()
    g = torch.Generator().manual_seed(seed)
    full = other.expand(VOCAB, C).clone() + noise * torch.randn(VOCAB, C, generator=g)
    full[torch.from_numpy(used.astype(np.int64))] = model.wte[:-1].detach()
    return full


def hf_tensors(model, used, args):
    wte = full_vocab_wte(model, used, args["seed"], args.get("other_noise", 0.0))
    out = [("wte.weight", wte), ("wpe.weight", model.wpe)]
    for i, b in enumerate(model.h):
        p = "h.%d." % i
        out += [(p + "ln_1.weight", b.ln_1.weight), (p + "ln_1.bias", b.ln_1.bias),
                (p + "attn.c_attn.weight", b.c_attn.weight), (p + "attn.c_attn.bias", b.c_attn.bias),
                (p + "attn.c_proj.weight", b.attn_c_proj.weight),
                (p + "attn.c_proj.bias", b.attn_c_proj.bias),
                (p + "ln_2.weight", b.ln_2.weight), (p + "ln_2.bias", b.ln_2.bias),
                (p + "mlp.c_fc.weight", b.c_fc.weight), (p + "mlp.c_fc.bias", b.c_fc.bias),
                (p + "mlp.c_proj.weight", b.mlp_c_proj.weight),
                (p + "mlp.c_proj.bias", b.mlp_c_proj.bias)]
    out += [("ln_f.weight", model.ln_f.weight), ("ln_f.bias", model.ln_f.bias)]
    return out


def hf_config(args):
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": args["dropout"],
        "bos_token_id": EOT_ID,
        "embd_pdrop": args["dropout"],
        "eos_token_id": EOT_ID,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": args["n_positions"],
        "n_embd": args["n_embd"],
        "n_head": args["n_head"],
        "n_inner": None,
        "n_layer": args["n_layer"],
        "n_positions": args["n_positions"],
        "resid_pdrop": args["dropout"],
        "scale_attn_weights": True,
        "torch_dtype": "float16",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def load_ckpt_model(work):
    c = torch.load(os.path.join(work, "ckpt.pt"))
    args = {k: v for k, v in c["args"].items() if k != "fn"}
    used = c["used"]
    ns = argparse.Namespace(**args)
    model = make_model(ns, len(used) + 1, VOCAB - len(used))
    model.load_state_dict(c["model"])
    model.eval()
    return model, used, args, c


def cmd_export(a):
    setup_torch(a.threads)
    model, used, args, c = load_ckpt_model(a.work)
    args["other_noise"] = a.other_noise
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), hf_tensors(model, used, args))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(hf_config(args), f, indent=2)
        f.write("\n")
    for name in ("vocab.json", "merges.txt"):
        src, dst = os.path.join(REPO, "models", name), os.path.join(a.out, name)
        if os.path.realpath(src) != os.path.realpath(dst):
            with open(src, "rb") as fi, open(dst, "wb") as fo:
                fo.write(fi.read())
    with open(os.path.join(a.work, "train_log.json"), "w") as f:
        json.dump({"args": args, "log": c["log"], "step": c["step"]}, f, indent=1)
    print("exported step %d -> %s (%d bytes)" % (
        c["step"], a.out, os.path.getsize(os.path.join(a.out, "model.safetensors"))))


# ---- evaluation of an exported HF folder (full 50257-way softmax, F16 weights) ----


def load_hf(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    sd = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        assert info["dtype"] == "F16"
        arr = np.frombuffer(data[b:e], dtype="<f2").astype(np.float32).reshape(info["shape"])
        sd[name] = torch.from_numpy(arr.copy())
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    model = GPT2(cfg["vocab_size"], cfg["n_positions"], C, H, L)
    model.wte.data = sd["wte.weight"]
    model.wpe.data = sd["wpe.weight"]
    for i, blk in enumerate(model.h):
        p = "h.%d." % i
        blk.ln_1.weight.data, blk.ln_1.bias.data = sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]
        blk.c_attn.weight.data = sd[p + "attn.c_attn.weight"]
        blk.c_attn.bias.data = sd[p + "attn.c_attn.bias"]
        blk.attn_c_proj.weight.data = sd[p + "attn.c_proj.weight"]
        blk.attn_c_proj.bias.data = sd[p + "attn.c_proj.bias"]
        blk.ln_2.weight.data, blk.ln_2.bias.data = sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]
        blk.c_fc.weight.data, blk.c_fc.bias.data = sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]
        blk.mlp_c_proj.weight.data = sd[p + "mlp.c_proj.weight"]
        blk.mlp_c_proj.bias.data = sd[p + "mlp.c_proj.bias"]
    model.ln_f.weight.data, model.ln_f.bias.data = sd["ln_f.weight"], sd["ln_f.bias"]
    model.eval()
    return model, cfg, header


@torch.no_grad()
def generate(model, ids, n, T, temperature=0.0, top_k=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = list(ids)
    for _ in range(n):
        ctx = torch.tensor([ids[-T:]])
        logits = model(ctx)[0, -1].double()
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k:
                v, _ = torch.topk(logits, top_k)
                logits[logits < v[-1]] = -float("inf")
            p = torch.softmax(logits, dim=-1)
            nxt = int(torch.multinomial(p, 1, generator=g))
        ids.append(nxt)
        if nxt == EOT_ID:
            break
    return ids


PROMPTS = ["It is a truth universally acknowledged", "The weather was fine, and",
           "\"My dear,\" said she,", "Once upon a time", "She had never"]


def cmd_report(a):
    setup_torch(a.threads)
    model, cfg, header = load_hf(a.out)
    T = cfg["n_positions"]
    train, val, _, _ = load_tokens(a.work, a.holdout)
    used = np.unique(train)
    vdata = torch.from_numpy(val.astype(np.int64))
    vl = evaluate(model, vdata, T)
    # probability mass that the full-vocab model puts on tokens never seen in training
    unused = torch.ones(VOCAB, dtype=torch.bool)
    unused[torch.from_numpy(used.astype(np.int64))] = False
    with torch.no_grad():
        lg = model(vdata[:T][None])[0]
        pm = torch.softmax(lg.double(), -1)[:, unused].sum(-1)
        top_unused = lg[:, unused].max(-1).values - lg.max(-1).values
    res = {"val_tokens": int(len(val)), "val_loss": vl, "val_ppl": math.exp(vl),
           "unused_tokens": int(unused.sum()),
           "unused_mass_mean": float(pm.mean()), "unused_mass_max": float(pm.max()),
           "best_unused_logit_minus_top_max": float(top_unused.max()),
           "size_bytes": os.path.getsize(os.path.join(a.out, "model.safetensors")),
           "params": int(sum(int(np.prod(v["shape"])) for v in header.values())),
           "samples": []}
    tok = bpe_reference.BPE.load(os.path.join(REPO, "models/vocab.json"),
                                 os.path.join(REPO, "models/merges.txt"))
    for pr in PROMPTS:
        ids = tok.encode(pr)
        gr = generate(model, ids, a.n_gen, T)
        sa = generate(model, ids, a.n_gen, T, temperature=0.8, top_k=40, seed=a.sample_seed)
        res["samples"].append({"prompt": pr, "prompt_ids": ids,
                               "greedy": tok.decode(gr[len(ids):]),
                               "greedy_ids": gr[len(ids):],
                               "sampled": tok.decode(sa[len(ids):])})
    with open(os.path.join(a.work, "report.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
    for s in res["samples"]:
        print("=== %r\n--- greedy: %s\n--- sampled: %s" % (s["prompt"], s["greedy"], s["sampled"]))
    if a.plot:
        plot(a.work, a.plot, [int(x) for x in a.mark_steps.split(",") if x])


def plot(work, png, mark_steps=()):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(os.path.join(work, "train_log.json")) as f:
        lg = json.load(f)["log"]
    ep = [r["epoch"] for r in lg]
    mid = [(a + b) / 2 for a, b in zip([0.0] + ep[:-1], ep)]  # train means: interval midpoints
    plt.figure(figsize=(7, 4.2), dpi=100)
    plt.plot(mid, [r["train"] for r in lg], marker=".", label="train (mean over each eval interval)")
    plt.plot(ep, [r["val"] for r in lg], marker=".", label="held-out (last 5% of each novel)")
    for st in mark_steps:
        e = [r["epoch"] for r in lg if r["step"] == st]
        if e:
            plt.axvline(e[0], color="gray", ls=":", lw=1)
            plt.text(e[0], plt.ylim()[1], " resumed, step %d" % st, va="top", fontsize=8,
                     color="gray")
    plt.xlabel("epochs over the training tokens")
    plt.ylabel("cross-entropy per token (nats)")
    plt.title("Embedded GPT-2 on Jane Austen's novels")
    plt.grid(alpha=0.3)
    plt.legend()
    plt.tight_layout()
    plt.savefig(png)
    print("wrote", png)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--work", default="/tmp/train", help="work dir (cache, ckpt, logs)")
        p.add_argument("--holdout", type=float, default=0.05,
                       help="fraction held out at the end of every novel")
        p.add_argument("--threads", type=int, default=2)

    def shape(p):
        p.add_argument("--n-layer", dest="n_layer", type=int, default=4)
        p.add_argument("--n-embd", dest="n_embd", type=int, default=128)
        p.add_argument("--n-head", dest="n_head", type=int, default=4)
        p.add_argument("--n-positions", dest="n_positions", type=int, default=256)
        p.add_argument("--batch", type=int, default=16)
        p.add_argument("--dropout", type=float, default=0.0)
        p.add_argument("--lr", type=float, default=3e-3)
        p.add_argument("--min-lr", dest="min_lr", type=float, default=1e-4)
        p.add_argument("--warmup", type=int, default=200)
        p.add_argument("--weight-decay", dest="weight_decay", type=float, default=0.1)
        p.add_argument("--grad-clip", dest="grad_clip", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=1234)

    p = sub.add_parser("prepare")
    common(p)
    p.set_defaults(fn=cmd_prepare)
    p = sub.add_parser("bench")
    common(p)
    shape(p)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--full-vocab", dest="full_vocab", action="store_true")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("train")
    common(p)
    shape(p)
    p.add_argument("--max-steps", dest="max_steps", type=int, default=4000)
    p.add_argument("--eval-every", dest="eval_every", type=int, default=200)
    p.add_argument("--log-every", dest="log_every", type=int, default=50)
    p.add_argument("--stop-file", dest="stop_file", default="/tmp/train/STOP",
                   help="if this file exists at an eval, training stops cleanly")
    p.add_argument("--stop-at", dest="stop_at", type=int, default=0,
                   help="stop (checkpoint saved) at the first eval at or after this step; "
                        "the lr schedule still follows --max-steps")
    p.add_argument("--fresh", action="store_true", help="ignore an existing ckpt.pt")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("export")
    common(p)
    p.add_argument("--out", default="/tmp/train/export")
    p.add_argument("--other-noise", dest="other_noise", type=float, default=0.01,
                   help="std of seeded noise added to the rows of unused tokens")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("report")
    common(p)
    p.add_argument("--out", default="/tmp/train/export")
    p.add_argument("--n-gen", dest="n_gen", type=int, default=60)
    p.add_argument("--sample-seed", dest="sample_seed", type=int, default=42)
    p.add_argument("--plot", default="", help="write the loss curve PNG here")
    p.add_argument("--mark-steps", dest="mark_steps", default="",
                   help="comma-separated steps to mark on the plot (e.g. a resume)")
    p.set_defaults(fn=cmd_report)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
