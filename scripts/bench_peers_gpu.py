#!/usr/bin/env python3
"""Peer benchmark on one GPU, in one run: HF transformers (MambaForCausalLM / Mamba2ForCausalLM /
FalconMambaForCausalLM with random bf16 weights of the same published shapes), the official mamba_ssm
if importable, and our `ssm bench --shape`, printed as one markdown table with ratios.

Measures decode at batch 1 (tok/s over --gen tokens, greedy, with the model's recurrent cache) and
prefill of --prompt tokens (tok/s, one sequence). Peers that are missing are skipped with a note.

  python3 scripts/bench_peers_gpu.py --ssm build-gpu/bin/ssm --shapes mamba-2.8b,mamba2-2.7b \
      --prompts 2048,8192 --batches 1,64
mamba_ssm is imported from --mamba-ssm-path (a source checkout; its Triton kernels need no build;
its Mamba-1 path needs the compiled selective_scan_cuda extension and is reported as missing without
it: scripts/build_mamba_ssm_scan.py builds the forward bf16 part of it from the same checkout, and
--scan-ext DIR puts that build on the mamba_ssm peer's import path). Each peer runs in its own process: transformers picks up mamba_ssm's kernels when it can import
them, and we want it measured as shipped (without them).
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


def bench_hf(shape, prompts, gen, batches, reps):
    """transformers without the optional CUDA kernels: slow, so only the smallest prompt and batch 1."""
    import torch
    try:
        m = hf_model(shape)
    except Exception as e:  # noqa: BLE001 - report any construction failure as a skipped peer
        note(f"transformers {shape}: cannot build model ({e})")
        return None
    v = SHAPES[shape][3]
    prompt = min(prompts)
    ids = torch.randint(0, v - 8, (1, prompt), device="cuda")

    @torch.inference_mode()
    def pp():
        m(ids, use_cache=False)
        return prompt

    @torch.inference_mode()
    def tg():
        m.generate(ids[:, :1], max_new_tokens=gen, min_new_tokens=gen, do_sample=False, use_cache=True)
        return gen

    r = {f"pp{prompt}": time_it(pp, reps), f"tg{gen} b1": time_it(tg, reps)}
    del m
    torch.cuda.empty_cache()
    return r


def bench_mamba_ssm(shape, prompts, gen, batches, reps):
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
    if fam == "mamba2":
        try:
            import causal_conv1d  # noqa: F401
        except ImportError:
            # Its fused prefill path needs causal_conv1d's CUDA kernels; without that package the
            # module's other path runs the conv in PyTorch and the SSD scan in its Triton kernels.
            ssm_cfg["use_mem_eff_path"] = False
            note("causal_conv1d not installed: mamba_ssm Mamba-2 prefill runs with use_mem_eff_path=False")
    cfg = MambaConfig(d_model=d, n_layer=n, vocab_size=v, ssm_cfg=ssm_cfg, rms_norm=True, residual_in_fp32=True,
                      fused_add_norm=True, pad_vocab_size_multiple=16 if fam == "mamba2" else 8)
    m = MambaLMHeadModel(cfg, device="cuda", dtype=torch.bfloat16).eval()
    r = {}
    for prompt in prompts:
        ids = torch.randint(0, v - 8, (1, prompt), device="cuda")

        @torch.inference_mode()
        def pp():
            m(ids)
            return prompt

        try:
            r[f"pp{prompt}"] = time_it(pp, reps)
        except Exception as e:  # noqa: BLE001 - e.g. Mamba-1 prefill without the compiled selective_scan_cuda
            note(f"mamba_ssm {shape} pp{prompt}: {e.__class__.__name__}: {str(e).splitlines()[0]}")
    for b in batches:
        ids = torch.randint(0, v - 8, (b, 1), device="cuda")

        @torch.inference_mode()
        def tg():
            m.generate(ids, max_length=1 + gen, cg=True, temperature=0.0, top_k=1)
            return gen * b

        try:
            r[f"tg{gen} b{b}"] = time_it(tg, reps)
        except Exception as e:  # noqa: BLE001
            note(f"mamba_ssm {shape} tg b{b}: {e.__class__.__name__}: {str(e).splitlines()[0]}")
    del m
    torch.cuda.empty_cache()
    return r


def bench_ssm(binary, shape, prompts, gen, batches, reps, state="f32"):
    cmd = [binary, "bench", "--device", "cuda", "--dtype", "bf16", "--shape", shape, "-p", ",".join(map(str, prompts)),
           "-n", str(gen), "-b", ",".join(map(str, batches)), "-r", str(reps), "--state-dtype", state]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        note(f"ssm bench failed: {out.stderr.strip()}")
        return None
    print(out.stdout, file=sys.stderr)
    r = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\|.*\| (pp\d+|tg\d+) \| (\d+) \| ([\d.]+) ±", line)
        if m:
            key = m.group(1) if m.group(1).startswith("pp") else f"{m.group(1)} b{m.group(2)}"
            if m.group(1).startswith("tg") or m.group(2) == "1":
                r[key] = float(m.group(3))
    return r


def run_child(peer, shape, a, mamba_path, scan_ext=None):
    cmd = [sys.executable, __file__, "--child", peer, "--child-shape", shape, "--prompts", a.prompts, "--gen",
           str(a.gen), "--batches", a.batches, "--reps", str(a.reps)]
    if mamba_path:
        cmd += ["--mamba-ssm-path", mamba_path]
    if scan_ext:
        cmd += ["--scan-ext", scan_ext]
    out = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(out.stderr[-3000:])
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    note(f"{peer} {shape}: no result (exit {out.returncode})")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ssm", default="build-gpu/bin/ssm", help="our CLI binary")
    ap.add_argument("--shapes", default="mamba-130m,mamba-2.8b,mamba2-130m,mamba2-2.7b")
    ap.add_argument("--prompts", default="2048,8192", help="prefill lengths (batch 1)")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--batches", default="1,64", help="decode batch sizes")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--ssm-state", default="f32",
                    help="ssm's state storage, f32 or bf16 (mamba_ssm keeps its states in the model dtype, bf16 here)")
    ap.add_argument("--mamba-ssm-path", help="directory holding the mamba_ssm package (source checkout)")
    ap.add_argument("--scan-ext", help="directory holding a selective_scan_cuda build (scripts/build_mamba_ssm_scan.py)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-shape", help=argparse.SUPPRESS)
    a = ap.parse_args()
    prompts = [int(x) for x in a.prompts.split(",")]
    batches = [int(x) for x in a.batches.split(",")]
    try:
        import torch
        if not torch.cuda.is_available():
            sys.exit("no CUDA device visible to torch")
        gpu = torch.cuda.get_device_name()
    except ImportError:
        sys.exit("torch is required for the peers")
    if a.child:  # one peer, one shape, in this process; prints its results as JSON
        if a.mamba_ssm_path:
            sys.path.insert(0, a.mamba_ssm_path)
        if a.scan_ext:
            sys.path.insert(0, a.scan_ext)
        fn = bench_hf if a.child == "transformers" else bench_mamba_ssm
        print("RESULT " + json.dumps(fn(a.child_shape, prompts, a.gen, batches, a.reps)), flush=True)
        return
    if a.mamba_ssm_path:
        sys.path.insert(0, a.mamba_ssm_path)
    versions = {"torch": torch.__version__}
    for mod in ("transformers", "mamba_ssm", "triton"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            versions[mod] = f"unavailable ({e.__class__.__name__})"
    rows = []
    for shape in a.shapes.split(","):
        if shape not in SHAPES:
            sys.exit(f"unknown shape {shape}; known: {', '.join(SHAPES)}")
        res = {"ssm": bench_ssm(a.ssm, shape, prompts, a.gen, batches, a.reps, a.ssm_state),
               "transformers": run_child("transformers", shape, a, None),
               "mamba_ssm": run_child("mamba_ssm", shape, a, a.mamba_ssm_path, a.scan_ext)}
        rows.append((shape, res))
        note(f"partial {shape}: {json.dumps(res)}")  # survives a run cut short before the table
    clocks = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem",
                             "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    print(f"\nGPU: {gpu} (clocks now / max: {clocks}); {versions}; bf16 weights; state: ssm {a.ssm_state}, "
          f"peers their own (mamba_ssm: the model dtype); tok/s, mean of "
          f"{a.reps} after a warm-up; prefill batch 1; decode tg{a.gen} at batch b counts b·{a.gen} tokens\n")
    print("| shape | test | ssm | transformers | mamba_ssm | ssm / transformers | ssm / mamba_ssm |")
    print("|---|---|---|---|---|---|---|")
    fmt = lambda x: f"{x:,.0f}" if x else "—"  # noqa: E731
    for shape, res in rows:
        tests = [f"pp{p}" for p in prompts] + [f"tg{a.gen} b{b}" for b in batches]
        for test in tests:
            v = {k: (r or {}).get(test) for k, r in res.items()}
            ratio = lambda o: f"{v['ssm'] / v[o]:.2f}×" if v["ssm"] and v[o] else "—"  # noqa: E731
            print(f"| {shape} | {test} | {fmt(v['ssm'])} | {fmt(v['transformers'])} | {fmt(v['mamba_ssm'])} | "
                  f"{ratio('transformers')} | {ratio('mamba_ssm')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gpu": gpu, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
