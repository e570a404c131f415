#!/usr/bin/env python3
"""Writes a Hugging Face-format Mamba checkpoint of random weights with a published shape.

The result is a directory with config.json (the keys transformers writes for MambaConfig /
Mamba2Config) and model.safetensors (f32, f16 or bf16), loadable by `ssm` and convertible to GGUF
with scripts/hf_to_gguf.py. It exists for speed comparisons: the weights are random but sane
(matrices ~N(0, 0.02), A_log = log(1..N), D = 1, dt biases with softplus in [1e-3, 1e-1], norm
weights 1), so no NaN/Inf shows up and timings match those of real weights of the same shape.

Python standard library only. To stay fast for billions of parameters, every large matrix is cut
from one pool of ~1M pre-encoded random values, starting at a random offset and wrapping around.

    python3 scripts/write_random_checkpoint.py --shape mamba-130m --dtype f16 --out DIR
    python3 scripts/write_random_checkpoint.py --list
"""
import argparse
import array
import json
import math
import os
import random
import struct
import sys

# Published shapes (state-spaces/*-hf configs; mamba2: mamba_ssm defaults, headdim 64, ngroups 1).
SHAPES = {
    "mamba-130m": dict(arch="mamba", d_model=768, n_layer=24, dt_rank=48, vocab=50280),
    "mamba-370m": dict(arch="mamba", d_model=1024, n_layer=48, dt_rank=64, vocab=50280),
    "mamba-790m": dict(arch="mamba", d_model=1536, n_layer=48, dt_rank=96, vocab=50280),
    "mamba-1.4b": dict(arch="mamba", d_model=2048, n_layer=48, dt_rank=128, vocab=50280),
    "mamba-2.8b": dict(arch="mamba", d_model=2560, n_layer=64, dt_rank=160, vocab=50280),
    "mamba2-130m": dict(arch="mamba2", d_model=768, n_layer=24, vocab=50288),
    "mamba2-370m": dict(arch="mamba2", d_model=1024, n_layer=48, vocab=50288),
    "mamba2-780m": dict(arch="mamba2", d_model=1536, n_layer=48, vocab=50288),
    "mamba2-1.3b": dict(arch="mamba2", d_model=2048, n_layer=48, vocab=50288),
    "mamba2-2.7b": dict(arch="mamba2", d_model=2560, n_layer=64, vocab=50288),
}

DTYPES = {"f32": ("F32", 4, "float32"), "f16": ("F16", 2, "float16"), "bf16": ("BF16", 2, "bfloat16")}

POOL_VALUES = 1 << 20


def encode(values, dtype):
    """Little-endian bytes of a list of floats in the given safetensors dtype."""
    f32 = array.array("f", values)
    if sys.byteorder != "little":
        f32.byteswap()
    if dtype == "f32":
        return f32.tobytes()
    if dtype == "f16":
        return struct.pack("<%de" % len(values), *values)
    # bf16: round-to-nearest-even of the f32 bit pattern, keep the top half.
    words = array.array("I", f32.tobytes())
    out = array.array("H", (((w + 0x7FFF + ((w >> 16) & 1)) >> 16) & 0xFFFF for w in words))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def build_config(name, s):
    D, L, V = s["d_model"], s["n_layer"], s["vocab"]
    common = {
        "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
        "conv_kernel": 4, "expand": 2, "hidden_act": "silu", "hidden_size": D, "initializer_range": 0.1,
        "layer_norm_epsilon": 1e-05, "num_hidden_layers": L, "rescale_prenorm_residual": False,
        "residual_in_fp32": True, "time_step_floor": 0.0001, "time_step_max": 0.1, "time_step_min": 0.001,
        "use_bias": False, "use_cache": True, "use_conv_bias": True, "vocab_size": V,
    }
    if s["arch"] == "mamba":
        cfg = dict(common, architectures=["MambaForCausalLM"], model_type="mamba", intermediate_size=2 * D,
                   state_size=16, time_step_rank=s["dt_rank"], time_step_init_scheme="random",
                   time_step_scale=1.0, tie_word_embeddings=True, use_mambapy=False)
    else:
        E = 2 * D
        cfg = dict(common, architectures=["Mamba2ForCausalLM"], model_type="mamba2", state_size=128,
                   num_heads=E // 64, head_dim=64, n_groups=1, chunk_size=256,
                   time_step_rank=math.ceil(D / 16), time_step_limit=[0.0, {"__float__": "Infinity"}],
                   tie_word_embeddings=True, norm_before_gate=False, rms_norm=True)
    cfg["_random_weights"] = "shape of %s; random weights for benchmarking" % name
    return dict(sorted(cfg.items()))


def tensor_specs(s):
    """(name, shape, kind) for every tensor; kind says how its values are made."""
    D, L, V = s["d_model"], s["n_layer"], s["vocab"]
    E, K = 2 * D, 4
    out = [("backbone.embeddings.weight", [V, D], "pool"), ("backbone.norm_f.weight", [D], "one")]
    for i in range(L):
        p = "backbone.layers.%d." % i
        out.append((p + "norm.weight", [D], "one"))
        m = p + "mixer."
        if s["arch"] == "mamba":
            N, R = 16, s["dt_rank"]
            out += [
                (m + "in_proj.weight", [2 * E, D], "pool"),
                (m + "conv1d.weight", [E, 1, K], "conv"),
                (m + "conv1d.bias", [E], "pool"),
                (m + "x_proj.weight", [R + 2 * N, E], "pool"),
                (m + "dt_proj.weight", [E, R], "pool"),
                (m + "dt_proj.bias", [E], "dt_bias"),
                (m + "A_log", [E, N], "a_log_rows"),
                (m + "D", [E], "one"),
                (m + "out_proj.weight", [D, E], "pool"),
            ]
        else:
            N, G, H = 128, 1, E // 64
            CC = E + 2 * G * N
            out += [
                (m + "in_proj.weight", [E + CC + H, D], "pool"),
                (m + "conv1d.weight", [CC, 1, K], "conv"),
                (m + "conv1d.bias", [CC], "pool"),
                (m + "dt_bias", [H], "dt_bias"),
                (m + "A_log", [H], "a_log_heads"),
                (m + "D", [H], "one"),
                (m + "norm.weight", [E], "one"),
                (m + "out_proj.weight", [D, E], "pool"),
            ]
    return out


def small_values(kind, shape, rng):
    n = math.prod(shape)
    if kind == "one":
        return [1.0] * n
    if kind == "conv":  # depthwise conv taps: larger than matrix weights so signals pass through
        return [rng.gauss(0.0, 0.3) for _ in range(n)]
    if kind == "dt_bias":  # inverse softplus of dt, log-uniform in [1e-3, 1e-1]
        out = []
        for _ in range(n):
            dt = math.exp(rng.uniform(math.log(1e-3), math.log(1e-1)))
            out.append(dt + math.log(-math.expm1(-dt)))
        return out
    if kind == "a_log_rows":  # Mamba-1: A = -(1..N) in every row
        E, N = shape
        return [math.log(j + 1) for _ in range(E) for j in range(N)]
    if kind == "a_log_heads":  # Mamba-2: one A per head, -uniform(1, 16)
        return [math.log(rng.uniform(1.0, 16.0)) for _ in range(n)]
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES))
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    ap.add_argument("--out", help="output directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list the known shapes")
    a = ap.parse_args()
    if a.list:
        for k, v in SHAPES.items():
            n = sum(math.prod(sh) for _, sh, _ in tensor_specs(v))
            print("%-12s %-6s d_model %-5d layers %-3d params %.0fM" % (k, v["arch"], v["d_model"], v["n_layer"], n / 1e6))
        return
    if not a.shape or not a.out:
        ap.error("--shape and --out are required")
    s = SHAPES[a.shape]
    st_dtype, esize, cfg_dtype = DTYPES[a.dtype]
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)

    cfg = build_config(a.shape, s)
    cfg["dtype"] = cfg_dtype
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    specs = tensor_specs(s)
    header, off = {}, 0
    for name, shape, _ in specs:
        nbytes = math.prod(shape) * esize
        header[name] = {"dtype": st_dtype, "shape": shape, "data_offsets": [off, off + nbytes]}
        off += nbytes
    header["__metadata__"] = {"format": "pt", "note": "random weights"}
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)

    pool = encode([rng.gauss(0.0, 0.02) for _ in range(POOL_VALUES)], a.dtype)
    pool2 = pool + pool  # so any window of up to POOL_VALUES elements is one slice

    path = os.path.join(a.out, "model.safetensors")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for name, shape, kind in specs:
            n = math.prod(shape)
            if kind != "pool":
                f.write(encode(small_values(kind, shape, rng), a.dtype))
                continue
            start = rng.randrange(POOL_VALUES)
            while n > 0:
                take = min(n, POOL_VALUES)
                f.write(pool2[start * esize:(start + take) * esize])
                n -= take
    os.replace(tmp, path)
    total = sum(math.prod(sh) for _, sh, _ in specs)
    print("%s: %s %s, %d tensors, %.1fM params, %.2f GB" % (a.out, a.shape, a.dtype, len(specs), total / 1e6,
                                                          (off + len(hbytes) + 8) / 1e9))


if __name__ == "__main__":
    main()
