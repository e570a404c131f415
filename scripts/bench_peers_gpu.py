#!/usr/bin/env python3
"""Peer benchmark on one GPU, in one run: HF transformers (MambaForCausalLM / Mamba2ForCausalLM /
FalconMambaForCausalLM with random bf16 weights of the same published shapes), the official mamba_ssm
if importable, and our `ssm bench --shape`, printed as one markdown table with ratios.

Measures decode at batch 1 (tok/s over --gen tokens, greedy, with the model's recurrent cache) and
prefill of --prompt tokens (tok/s, one sequence). Peers that are missing are skipped with a note.

  python3 scripts/bench_peers_gpu.py --ssm build-gpu/bin/ssm --shapes mamba-130m,mamba-2.8b,mamba2-2.7b
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time

SHAPES = {  # name: (family, d_model, n_layer, vocab)
    "mamba-130m": ("mamba", 768, 24, 50280), "mamba-370m": ("mamba", 1024, 48, 50280),
    "mamba-790m": ("mamba", 1536, 48, 50280), "mamba-1.4b": ("mamba", 2048, 48, 50280),
    "mamba-2.8b": ("mamba", 2560, 64, 50280), "mamba2-130m": ("mamba2", 768, 24, 50288),
    "mamba2-370m": ("mamba2", 1024, 48, 50288), "mamba2-780m": ("mamba2", 1536, 48, 50288),
    "mamba2-1.3b": ("mamba2", 2048, 48, 50288), "mamba2-2.7b": ("mamba2", 2560, 64, 50288),
    "falcon-mamba-7b": ("falcon_mamba", 4096, 64, 65024),
}


def note(msg):
    print(f"note: {msg}", file=sys.stderr, flush=True)


def hf_model(shape):
    import torch
    import transformers as tf
    fam, d, n, v = SHAPES[shape]
    if fam == "mamba2":
        cfg = tf.Mamba2Config(hidden_size=d, num_hidden_layers=n, vocab_size=v, state_size=128, expand=2,
                              head_dim=64, num_heads=2 * d // 64, n_groups=1, chunk_size=256, tie_word_embeddings=True)
        cls = tf.Mamba2ForCausalLM
    elif fam == "falcon_mamba":
        cfg = tf.FalconMambaConfig(hidden_size=d, num_hidden_layers=n, vocab_size=v, state_size=16,
                                   intermediate_size=2 * d, time_step_rank=256, tie_word_embeddings=False)
        cls = tf.FalconMambaForCausalLM
    else:
        cfg = tf.MambaConfig(hidden_size=d, num_hidden_layers=n, vocab_size=v, state_size=16, expand=2,
                             intermediate_size=2 * d, time_step_rank=(d + 15) // 16, tie_word_embeddings=True)
        cls = tf.MambaForCausalLM
    with torch.device("cuda"):
        m = cls(cfg).to(torch.bfloat16).eval()
    return m


def time_it(fn, reps):
    import torch
    fn()  # warm-up (kernel compilation / autotuning)
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        n = fn()
        torch.cuda.synchronize()
        out.append(n / (time.perf_counter() - t0))
    return statistics.mean(out)


def bench_hf(shape, prompt, gen, reps):
    import torch
    try:
        m = hf_model(shape)
    except Exception as e:  # noqa: BLE001 - report any construction failure as a skipped peer
        note(f"transformers {shape}: cannot build model ({e})")
        return None
    v = SHAPES[shape][3]
    ids = torch.randint(0, v - 8, (1, prompt), device="cuda")

    @torch.inference_mode()
    def pp():
        m(ids[:, :prompt], use_cache=False)
        return prompt

    @torch.inference_mode()
    def tg():
        m.generate(ids[:, :1], max_new_tokens=gen, min_new_tokens=gen, do_sample=False, use_cache=True)
        return gen

    r = {"pp": time_it(pp, reps), "tg": time_it(tg, reps)}
    del m
    torch.cuda.empty_cache()
    return r


def bench_mamba_ssm(shape, prompt, gen, reps):
    try:
        import torch
        from mamba_ssm.models.config_mamba import MambaConfig
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    except Exception as e:  # noqa: BLE001
        note(f"mamba_ssm not importable ({e.__class__.__name__}: {e}); skipping that peer")
        return None
    fam, d, n, v = SHAPES[shape]
    if fam == "falcon_mamba":
        note("mamba_ssm has no FalconMamba B/C/dt norms; skipping falcon-mamba-7b for that peer")
        return None
    ssm_cfg = {"layer": "Mamba2"} if fam == "mamba2" else {}
    cfg = MambaConfig(d_model=d, n_layer=n, vocab_size=v, ssm_cfg=ssm_cfg, rms_norm=True, residual_in_fp32=True,
                      fused_add_norm=True, pad_vocab_size_multiple=16 if fam == "mamba2" else 8)
    m = MambaLMHeadModel(cfg, device="cuda", dtype=torch.bfloat16).eval()
    ids = torch.randint(0, v - 8, (1, prompt), device="cuda")

    @torch.inference_mode()
    def pp():
        m(ids)
        return prompt

    @torch.inference_mode()
    def tg():
        m.generate(ids[:, :1], max_length=1 + gen, cg=True, temperature=0.0, top_k=1)
        return gen

    r = {"pp": time_it(pp, reps), "tg": time_it(tg, reps)}
    del m
    torch.cuda.empty_cache()
    return r


def bench_ssm(binary, shape, prompt, gen, reps):
    cmd = [binary, "bench", "--device", "cuda", "--dtype", "bf16", "--shape", shape, "-p", str(prompt), "-n", str(gen),
           "-b", "1", "-r", str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        note(f"ssm bench failed: {out.stderr.strip()}")
        return None
    print(out.stdout, file=sys.stderr)
    r = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\|.*\| (pp|tg)\d+ \| \d+ \| ([\d.]+) ±", line)
        if m:
            r[m.group(1)] = float(m.group(2))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ssm", default="build-gpu/bin/ssm", help="our CLI binary")
    ap.add_argument("--shapes", default="mamba-130m,mamba-2.8b,mamba2-130m,mamba2-2.7b")
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    try:
        import torch
        if not torch.cuda.is_available():
            sys.exit("no CUDA device visible to torch")
        gpu = torch.cuda.get_device_name()
    except ImportError:
        sys.exit("torch is required for the peers")
    rows = []
    for shape in a.shapes.split(","):
        if shape not in SHAPES:
            sys.exit(f"unknown shape {shape}; known: {', '.join(SHAPES)}")
        res = {"ssm": bench_ssm(a.ssm, shape, a.prompt, a.gen, a.reps),
               "transformers": bench_hf(shape, a.prompt, a.gen, a.reps),
               "mamba_ssm": bench_mamba_ssm(shape, a.prompt, a.gen, a.reps)}
        rows.append((shape, res))
    print(f"\nGPU: {gpu}; bf16 weights; prefill = pp{a.prompt} (batch 1), decode = tg{a.gen} (batch 1), tok/s\n")
    print("| shape | test | ssm | transformers | mamba_ssm | ssm / transformers | ssm / mamba_ssm |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda x: f"{x:,.0f}" if x else "—"  # noqa: E731
    for shape, res in rows:
        for test in ("pp", "tg"):
            v = {k: (r or {}).get(test) for k, r in res.items()}
            ratio = lambda o: f"{v['ssm'] / v[o]:.2f}×" if v["ssm"] and v[o] else "—"  # noqa: E731
            name = f"{test}{a.prompt if test == 'pp' else a.gen}"
            print(f"| {shape} | {name} | {fmt(v['ssm'])} | {fmt(v['transformers'])} | {fmt(v['mamba_ssm'])} | "
                  f"{ratio('transformers')} | {ratio('mamba_ssm')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gpu": gpu, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
