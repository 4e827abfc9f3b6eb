#!/usr/bin/python3
"""Independent Python reference of the GPT-2 byte-level BPE tokenizer.

Used by tools/gpt2_reference.py to produce token ids for the test fixtures and
to derive small vocabularies from GPT-2's real vocab.json / merges.txt.
Requires the `regex` module (Debian: python3-regex).
"""
import json
import regex

EOT = "<|endoftext|>"

# GPT-2 pre-tokenizer pattern.
PAT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_unicode_table():
    """Map every byte 0..255 to a printable unicode character (GPT-2 scheme):
    the printable Latin-1 bytes map to themselves, the other 68 bytes are mapped,
    in increasing byte order, to code points 256, 257, ..."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1))
            + list(range(0xAE, 0xFF + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_order():
    """Order of the 256 single-byte tokens in GPT-2's vocab (ids 0..255):
    the kept printable bytes first (ascending), then the remapped ones."""
    t = byte_unicode_table()
    return sorted(range(256), key=lambda b: ord(t[b]))


def read_merges(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0].startswith("#version"), lines[0]
    merges = []
    for ln in lines[1:]:
        if not ln.strip():
            continue
        a, b = ln.split(" ")
        merges.append((a, b))
    return merges


class BPE:
    def __init__(self, vocab, merges):
        self.vocab = dict(vocab)                      # token string -> id
        self.merges = list(merges)
        self.rank = {m: i for i, m in enumerate(self.merges)}
        self.b2u = byte_unicode_table()
        self.cache = {}

    @classmethod
    def load(cls, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        return cls(vocab, read_merges(merges_path))

    def _bpe(self, word):
        """word: string of byte-unicode chars. Repeatedly merge the adjacent pair
        with the lowest merge rank (all its occurrences, left to right)."""
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.rank.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best = r
            if best is None:
                break
            a, b = self.merges[best]
            out = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        self.cache[word] = parts
        return parts

    def encode_ordinary(self, text):
        ids = []
        for piece in PAT.findall(text):
            word = "".join(self.b2u[b] for b in piece.encode("utf-8"))
            for tok in self._bpe(word):
                ids.append(self.vocab[tok])
        return ids

    def encode(self, text, allow_special=False):
        if not allow_special:
            return self.encode_ordinary(text)
        ids = []
        chunks = text.split(EOT)
        for i, ch in enumerate(chunks):
            if i > 0:
                ids.append(self.vocab[EOT])
            ids.extend(self.encode_ordinary(ch))
        return ids

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        u2b = {u: b for b, u in self.b2u.items()}
        out = bytearray()
        for i in ids:
            s = inv[i]
            if s == EOT:
                out += s.encode()
            else:
                out += bytes(u2b[c] for c in s)
        return out.decode("utf-8", errors="replace")


def verify_gpt2_layout(vocab, merges):
    """Check that ids 0..255 are the byte tokens (in byte_order()) and that id
    256+r is the concatenation of merge r. Returns the number of merges checked."""
    t = byte_unicode_table()
    inv = {v: k for k, v in vocab.items()}
    for i, b in enumerate(byte_order()):
        assert inv[i] == t[b], (i, b, inv[i])
    for r, (a, b) in enumerate(merges):
        assert inv[256 + r] == a + b, (r, a, b, inv.get(256 + r))
    return len(merges)


def small_vocab(vocab, merges, m):
    """Vocab restricted to the first m merges, plus <|endoftext|> = 256+m."""
    verify_gpt2_layout(vocab, merges)
    inv = {v: k for k, v in vocab.items()}
    small = {inv[i]: i for i in range(256 + m)}
    assert EOT not in small
    small[EOT] = 256 + m
    return small, merges[:m]


def write_vocab_merges(folder, vocab, merges):
    import os
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="GPT-2 BPE reference tokenizer")
    ap.add_argument("--vocab", default="models/vocab.json")
    ap.add_argument("--merges", default="models/merges.txt")
    ap.add_argument("--allow-special", action="store_true")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("text", nargs="?")
    a = ap.parse_args()
    tok = BPE.load(a.vocab, a.merges)
    if a.selftest:
        n = verify_gpt2_layout(tok.vocab, tok.merges)
        print("layout ok: 256 bytes +", n, "merges, vocab size", len(tok.vocab))
        assert tok.encode("Hello world") == [15496, 995], tok.encode("Hello world")
        assert tok.encode(" Hello world") == [18435, 995], tok.encode(" Hello world")
        print("Hello world ok")
    if a.text is not None:
        print(json.dumps(tok.encode(a.text, a.allow_special)))
