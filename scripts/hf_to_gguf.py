#!/usr/bin/env python3
"""Converts a Hugging Face Mamba checkpoint (config.json + *.safetensors) to a GGUF file that
llama.cpp loads, for benchmarking llama.cpp on the same weights as `ssm`.

    python3 scripts/hf_to_gguf.py CHECKPOINT_DIR OUT.gguf --type f16      # f32 | f16 | bf16 | q8_0

Python standard library only. Supports model_type mamba and falcon_mamba (llama.cpp arch `mamba`)
and mamba2 (arch `mamba2`), in the HF layout (backbone.embeddings / backbone.layers.N.mixer.*).

What the file holds follows llama.cpp's conventions for these architectures:
- tensor names token_embd, output_norm, output (omitted when tied), blk.N.attn_norm,
  blk.N.ssm_{in,conv1d,x,dt,a,d,out} (+ ssm_norm for mamba2); ggml dimensions are the safetensors
  shape reversed, so the bytes keep their row-major order;
- ssm_a holds A = -exp(A_log); the conv1d weight (C, 1, K) is stored as (C, K); mamba2's A and D
  become (H, 1), its dt_bias is blk.N.ssm_dt.bias and its gated norm (G, E/G);
- 1-D tensors, norms, ssm_conv1d.weight and tensors whose name has no `.weight` suffix are f32;
  the other matrices get --type; q8_0 falls back to f16 for rows not a multiple of 32;
- the vocabulary is padded to pad_vocab_size_multiple (8 for mamba, 16 for mamba2) or to the
  embedding rows, whichever is larger.
Tokenizer: `tokenizer.ggml.model = "none"` plus `<arch>.vocab_size`, which makes llama.cpp create
dummy tokens. That is enough for llama-bench (random token ids); the file cannot turn text into
tokens. Q8_0: blocks of 32 values, one f16 scale d = max|x| / 127 and 32 int8 q = round(x / d)
(ties to even here, away from zero in ggml; only exact halves differ).
"""
import argparse
import array
import json
import itertools
import math
import operator
import os
import struct
import sys

GGUF_ALIGN = 32
# GGUF metadata value types
T_UINT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64 = 4, 6, 7, 8, 9, 10
# ggml tensor types
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
# llama_ftype values for general.file_type
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}
QK8_0 = 32
CHUNK = 1 << 20  # elements converted at a time
MAGIC = 6755399441055744.0  # 1.5 * 2**52


# ----------------------------------------------------------------------------- safetensors input
class Source:
    """All tensors of a checkpoint directory: name -> (file, dtype, shape, byte offset, byte size)."""

    def __init__(self, d):
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        if not files:
            raise SystemExit("%s: no .safetensors files" % d)
        self.t = {}
        for fn in files:
            path = os.path.join(d, fn)
            with open(path, "rb") as f:
                (hlen,) = struct.unpack("<Q", f.read(8))
                hdr = json.loads(f.read(hlen))
            for name, info in hdr.items():
                if name == "__metadata__":
                    continue
                b, e = info["data_offsets"]
                self.t[name] = (path, info["dtype"], list(info["shape"]), 8 + hlen + b, e - b)

    def has(self, name):
        return name in self.t

    def shape(self, name):
        return self.t[name][2]

    def dtype(self, name):
        return self.t[name][1]

    def read(self, name):
        path, _, _, off, size = self.t[name]
        with open(path, "rb") as f:
            f.seek(off)
            return f.read(size)

    def chunks(self, name, esize):
        """Raw bytes in pieces of CHUNK elements (a multiple of QK8_0)."""
        path, _, _, off, size = self.t[name]
        with open(path, "rb") as f:
            f.seek(off)
            left = size
            while left > 0:
                b = f.read(min(left, CHUNK * esize))
                left -= len(b)
                yield b


SRC_ESIZE = {"F32": 4, "F16": 2, "BF16": 2}


def decode(raw, dtype):
    """Little-endian raw bytes -> list of Python floats."""
    if dtype == "F32":
        a = array.array("f", raw)
        if sys.byteorder != "little":
            a.byteswap()
        return a.tolist()
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype == "BF16":
        return decode(bf16_to_f32_bytes(raw), "F32")
    raise SystemExit("unsupported safetensors dtype %s" % dtype)


def bf16_to_f32_bytes(raw):
    out = bytearray(len(raw) * 2)
    out[2::4] = raw[0::2]
    out[3::4] = raw[1::2]
    return bytes(out)


def encode_f32(vals):
    a = array.array("f", vals)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def encode_f16(vals):
    return struct.pack("<%de" % len(vals), *vals)


def encode_bf16(vals):
    words = array.array("I", encode_f32(vals))
    if sys.byteorder != "little":
        words.byteswap()
    out = array.array("H", (((w + 0x7FFF + ((w >> 16) & 1)) >> 16) & 0xFFFF for w in words))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def encode_q8_0(vals):
    # Whole-chunk map()/slice operations instead of a Python loop per block: ~10x faster.
    nb = len(vals) // QK8_0
    amax = list(map(max, zip(*[iter(map(abs, vals))] * QK8_0)))
    d = [a / 127.0 for a in amax]
    inv = [1.0 / x if x else 0.0 for x in d]
    inv_rep = [x for x in inv for _ in range(QK8_0)]
    # Adding 1.5 * 2**52 rounds x / d to an integer (ties to even) held in the low mantissa bits, so
    # the low byte of each little-endian double is q as int8: no Python int per value.
    scaled = array.array("d", map(operator.add, map(operator.mul, vals, inv_rep), itertools.repeat(MAGIC)))
    if sys.byteorder != "little":
        scaled.byteswap()
    qb = scaled.tobytes()[0::8]
    db = struct.pack("<%de" % nb, *d)
    bs = 2 + QK8_0
    out = bytearray(nb * bs)
    out[0::bs] = db[0::2]
    out[1::bs] = db[1::2]
    for j in range(QK8_0):
        out[2 + j::bs] = qb[j::QK8_0]
    return bytes(out)


ENCODERS = {GGML_F32: encode_f32, GGML_F16: encode_f16, GGML_BF16: encode_bf16, GGML_Q8_0: encode_q8_0}
SAME = {("F32", GGML_F32), ("F16", GGML_F16), ("BF16", GGML_BF16)}


def nbytes(ggml_type, n):
    if ggml_type == GGML_Q8_0:
        return n // QK8_0 * (2 + QK8_0)
    return n * (4 if ggml_type == GGML_F32 else 2)


# ----------------------------------------------------------------------------- model mapping
class Tensor:
    def __init__(self, name, src, shape, ggml_type, transform=None):
        self.name, self.src, self.shape, self.type, self.transform = name, src, shape, ggml_type, transform
        self.n = math.prod(shape)
        self.size = nbytes(ggml_type, self.n)


def plan(cfg, src, want):
    mt = cfg.get("model_type")
    if mt in ("mamba", "falcon_mamba"):
        arch = "mamba"
    elif mt == "mamba2":
        arch = "mamba2"
    else:
        raise SystemExit("model_type %r is not supported (mamba, falcon_mamba, mamba2)" % mt)
    D = cfg["hidden_size"]
    L = cfg["num_hidden_layers"]
    N = cfg.get("state_size", 16 if arch == "mamba" else 128)
    K = cfg.get("conv_kernel", 4)
    E = cfg.get("intermediate_size") if arch == "mamba" and cfg.get("intermediate_size") else round(cfg.get("expand", 2) * D)
    emb = "backbone.embeddings.weight" if src.has("backbone.embeddings.weight") else "backbone.embedding.weight"
    pad = cfg.get("pad_vocab_size_multiple", 8 if arch == "mamba" else 16)
    V = max(-(-cfg["vocab_size"] // pad) * pad, src.shape(emb)[0])
    if src.shape(emb)[0] != V:
        raise SystemExit("embedding has %d rows, padded vocab is %d: padding rows is not implemented"
                         % (src.shape(emb)[0], V))

    def mat_type(shape):
        if want == GGML_Q8_0 and shape[-1] % QK8_0 != 0:
            return GGML_F16
        return want

    out = []

    def add(gname, hname, shape=None, transform=None):
        shape = list(shape or src.shape(hname))
        f32 = len(shape) <= 1 or gname.endswith("_norm.weight") or not gname.endswith(".weight") \
            or ".ssm_conv1d." in gname
        out.append(Tensor(gname, hname, shape, GGML_F32 if f32 else mat_type(shape), transform))

    add("token_embd.weight", emb)
    add("output_norm.weight", "backbone.norm_f.weight")
    tied = cfg.get("tie_word_embeddings", True)
    if src.has("lm_head.weight") and not (tied and src.read("lm_head.weight") == src.read(emb)):
        add("output.weight", "lm_head.weight")
    neg_exp = lambda v: [-math.exp(x) for x in v]
    for i in range(L):
        p, b = "backbone.layers.%d." % i, "blk.%d." % i
        m = p + "mixer."
        add(b + "attn_norm.weight", p + "norm.weight")
        add(b + "ssm_in.weight", m + "in_proj.weight")
        cs = src.shape(m + "conv1d.weight")
        add(b + "ssm_conv1d.weight", m + "conv1d.weight", [cs[0], cs[-1]])
        if src.has(m + "conv1d.bias"):
            add(b + "ssm_conv1d.bias", m + "conv1d.bias")
        add(b + "ssm_out.weight", m + "out_proj.weight")
        if arch == "mamba":
            add(b + "ssm_x.weight", m + "x_proj.weight")
            add(b + "ssm_dt.weight", m + "dt_proj.weight")
            add(b + "ssm_dt.bias", m + "dt_proj.bias")
            add(b + "ssm_a", m + "A_log", transform=neg_exp)
            add(b + "ssm_d", m + "D")
        else:
            H = src.shape(m + "A_log")[0]
            G = cfg.get("n_groups", 1)
            add(b + "ssm_dt.bias", m + "dt_bias")
            add(b + "ssm_a", m + "A_log", [H, 1], transform=neg_exp)
            add(b + "ssm_d", m + "D", [H, 1])
            add(b + "ssm_norm.weight", m + "norm.weight", [G, E // G])
    for t in out:
        if t.n != math.prod(src.shape(t.src)):
            raise SystemExit("%s: shape %s does not fit %s" % (t.src, src.shape(t.src), t.shape))

    kv = [("general.architecture", T_STRING, arch),
          ("general.name", T_STRING, cfg.get("_name_or_path") or os.path.basename(os.path.normpath(src_dir_of(src)))),
          ("%s.vocab_size" % arch, T_UINT32, V),
          ("%s.context_length" % arch, T_UINT32, 1 << 20),
          ("%s.embedding_length" % arch, T_UINT32, D),
          ("%s.feed_forward_length" % arch, T_UINT32, 0),
          ("%s.attention.head_count" % arch, T_UINT32, 0),
          ("%s.block_count" % arch, T_UINT32, L),
          ("%s.ssm.conv_kernel" % arch, T_UINT32, K),
          ("%s.ssm.inner_size" % arch, T_UINT32, E),
          ("%s.ssm.state_size" % arch, T_UINT32, N),
          ("%s.attention.layer_norm_rms_epsilon" % arch, T_FLOAT32, cfg.get("layer_norm_epsilon", 1e-5))]
    if arch == "mamba":
        R = cfg.get("time_step_rank", "auto")
        R = -(-D // 16) if R == "auto" else R
        kv += [("%s.ssm.time_step_rank" % arch, T_UINT32, R),
               ("%s.ssm.dt_b_c_rms" % arch, T_BOOL, mt == "falcon_mamba")]
    else:
        kv += [("%s.ssm.time_step_rank" % arch, T_UINT32, E // cfg.get("head_dim", 64)),
               ("%s.ssm.group_count" % arch, T_UINT32, cfg.get("n_groups", 1))]
    kv += [("tokenizer.ggml.model", T_STRING, "none"),
           ("general.alignment", T_UINT32, GGUF_ALIGN)]
    return kv, out


def src_dir_of(src):
    return os.path.dirname(next(iter(src.t.values()))[0])


# ----------------------------------------------------------------------------- GGUF output
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, typ, val):
    out = gguf_str(key) + struct.pack("<I", typ)
    if typ == T_STRING:
        return out + gguf_str(val)
    if typ == T_UINT32:
        return out + struct.pack("<I", val)
    if typ == T_FLOAT32:
        return out + struct.pack("<f", val)
    if typ == T_BOOL:
        return out + struct.pack("<B", 1 if val else 0)
    raise ValueError(typ)


def write_tensor(f, src, t):
    sdt = src.dtype(t.src)
    if (sdt, t.type) in SAME and t.transform is None:
        for b in src.chunks(t.src, SRC_ESIZE[sdt]):
            f.write(b)
        return
    if sdt == "BF16" and t.type == GGML_F32 and t.transform is None:
        for b in src.chunks(t.src, 2):
            f.write(bf16_to_f32_bytes(b))
        return
    enc = ENCODERS[t.type]
    for b in src.chunks(t.src, SRC_ESIZE[sdt]):
        v = decode(b, sdt)
        if t.transform:
            v = t.transform(v)
        f.write(enc(v))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="HF checkpoint directory (config.json + *.safetensors)")
    ap.add_argument("out", help="output .gguf path")
    ap.add_argument("--type", choices=["f32", "f16", "bf16", "q8_0"], default="f16")
    a = ap.parse_args()
    with open(os.path.join(a.checkpoint, "config.json")) as f:
        cfg = json.load(f)
    src = Source(a.checkpoint)
    want = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16, "q8_0": GGML_Q8_0}[a.type]
    kv, tensors = plan(cfg, src, want)
    kv.append(("general.file_type", T_UINT32, FILE_TYPE[a.type]))
    if want == GGML_Q8_0:
        kv.append(("general.quantization_version", T_UINT32, 2))

    head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)))
    for k in kv:
        head += gguf_kv(*k)
    off = 0
    for t in tensors:
        head += gguf_str(t.name) + struct.pack("<I", len(t.shape))
        head += struct.pack("<%dQ" % len(t.shape), *reversed(t.shape))
        head += struct.pack("<IQ", t.type, off)
        off += t.size + (-t.size % GGUF_ALIGN)
    head += b"\0" * (-len(head) % GGUF_ALIGN)

    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        for t in tensors:
            start = f.tell()
            write_tensor(f, src, t)
            if f.tell() - start != t.size:
                raise SystemExit("%s: wrote %d bytes, expected %d" % (t.name, f.tell() - start, t.size))
            f.write(b"\0" * (-t.size % GGUF_ALIGN))
    os.replace(tmp, a.out)
    counts = {}
    for t in tensors:
        counts[t.type] = counts.get(t.type, 0) + 1
    names = {GGML_F32: "f32", GGML_F16: "f16", GGML_BF16: "bf16", GGML_Q8_0: "q8_0"}
    print("%s: %d tensors (%s), %.2f GB" % (a.out, len(tensors),
                                           ", ".join("%d %s" % (c, names[k]) for k, c in sorted(counts.items())),
                                           os.path.getsize(a.out) / 1e9))


if __name__ == "__main__":
    main()
