#!/usr/bin/env python3
"""Writes the reference fixtures under tests/fixtures/ with Hugging Face `transformers`.

Each fixture is a tiny random checkpoint (odd sizes, non-default settings) saved with
`save_pretrained`, a file of token-id sequences, the fp32 logits `transformers` computes for each
sequence (NaN-padded to the longest), and greedy continuations from `generate()`.
Run on a machine with torch + transformers (the GPU machine); CPU works too, only slower:

    python3 scripts/make_fixtures.py --out tests/fixtures

Weights are perturbed away from the library init so logits differ clearly between tokens.
Half-precision fixtures store bf16/f16 weights; their reference logits come from the same rounded
weights upcast to fp32, which is what the engine computes on CPU.
"""
import argparse
import json
import math
import os
import shutil
import traceback

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (FalconMambaConfig, FalconMambaForCausalLM, Mamba2Config, Mamba2ForCausalLM, MambaConfig,
                          MambaForCausalLM)


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("A_log"):
                p.copy_(p.float() + 0.3 * r)
            elif name.endswith("dt_bias") or name.endswith("dt_proj.bias"):
                p.copy_(p.float() + 0.5 * r)
            elif name.endswith(".D"):
                p.copy_(1.0 + 0.3 * r)
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * r)
            elif p.ndim >= 2:
                fan_in = p.shape[-1] * (p.shape[1] if p.ndim == 3 else 1)
                p.copy_(r * 1.2 / math.sqrt(max(fan_in, 1)) if "embed" not in name else r)
            else:
                p.copy_(0.2 * r)


def seqs_for(vocab, lengths, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


@torch.no_grad()
def reference_logits(model, seqs, vocab):
    L = max(len(s) for s in seqs)
    out = np.full((len(seqs), L, vocab), np.nan, dtype=np.float32)
    for i, s in enumerate(seqs):
        ids = torch.tensor([s], device=model.device)
        lg = model(input_ids=ids, use_cache=False).logits[0].float().cpu().numpy()
        out[i, : len(s)] = lg
    return out


@torch.no_grad()
def greedy(model, prompt, n):
    ids = torch.tensor([prompt], device=model.device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def write_ids(path, seqs):
    with open(path, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")


def save_fixture(out, name, model, vocab, lengths, seed, dtype="f32", shard=None, note=""):
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model = model.eval()
    model.generation_config.eos_token_id = None
    if dtype != "f32":
        tdt = torch.bfloat16 if dtype == "bf16" else torch.float16
        model = model.to(tdt)
        kwargs = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(d, **kwargs)
        ref = model.to(torch.float32)  # exact upcast of the stored half-precision weights
    else:
        kwargs = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(d, **kwargs)
        ref = model
    ref = ref.to("cuda" if torch.cuda.is_available() else "cpu")
    seqs = seqs_for(vocab, lengths, seed)
    write_ids(os.path.join(d, "ids.txt"), seqs)
    np.save(os.path.join(d, "logits.npy"), reference_logits(ref, seqs, vocab))
    g = {"prompt": seqs[0][:7], "new_tokens": 12}
    try:
        g["output"] = greedy(ref, g["prompt"], g["new_tokens"])
    except Exception as e:  # recorded, not fatal: the logits are the primary reference
        g["error"] = repr(e)
    meta = {"name": name, "dtype": dtype, "lengths": lengths, "note": note, "greedy": g,
            "transformers": transformers.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, "files:", sorted(os.listdir(d)))
    return d, seqs


def to_mamba_ssm_layout(src, dst, ssm_cfg, vocab_unpadded, pad_multiple, tie):
    """Rewrites an HF fixture in the original state-spaces/mamba layout (same weights)."""
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    from safetensors.torch import load_file
    sd = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(src, f)))
    renamed = {}
    for k, v in sd.items():
        k2 = k.replace("backbone.embeddings.", "backbone.embedding.")
        renamed[k2] = v.clone().contiguous()
    if "lm_head.weight" not in renamed:  # mamba_ssm state_dicts list the tied head too
        renamed["lm_head.weight"] = renamed["backbone.embedding.weight"].clone()
    save_file(renamed, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    hf_cfg = json.load(open(os.path.join(src, "config.json")))
    cfg = {"d_model": hf_cfg["hidden_size"], "d_intermediate": 0, "n_layer": hf_cfg["num_hidden_layers"],
           "vocab_size": vocab_unpadded, "ssm_cfg": ssm_cfg, "attn_layer_idx": [], "attn_cfg": {},
           "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
           "pad_vocab_size_multiple": pad_multiple, "tie_embeddings": tie}
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=1)
    for f in ("ids.txt", "logits.npy"):
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    meta = json.load(open(os.path.join(src, "meta.json")))
    meta["name"] = os.path.basename(dst)
    meta["note"] = "mamba_ssm layout of " + os.path.basename(src) + "; reference logits are transformers' on the same weights"
    json.dump(meta, open(os.path.join(dst, "meta.json"), "w"), indent=1)
    print(os.path.basename(dst), "files:", sorted(os.listdir(dst)))


def group_norm_patch(n_groups):
    """mamba_ssm's RMSNormGated normalises per group of E/G channels; transformers' over all E."""
    from transformers.models.mamba2 import modeling_mamba2 as mm

    def fwd(self, hidden_states, gate=None):
        dt = hidden_states.dtype
        h = hidden_states.float()
        if gate is not None:
            h = h * torch.nn.functional.silu(gate.float())
        shp = h.shape
        h = h.view(*shp[:-1], n_groups, shp[-1] // n_groups)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.view(shp).to(dt)

    old = mm.MambaRMSNormGated.forward
    mm.MambaRMSNormGated.forward = fwd
    return lambda: setattr(mm.MambaRMSNormGated, "forward", old)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", help="comma-separated fixture numbers to write (default: all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)

    failures = []
    def fixture_0():
        # Mamba-1: conv width 3, explicit dt rank, biases on, tied embeddings, fp32.
        c = MambaConfig(vocab_size=64, hidden_size=20, state_size=5, num_hidden_layers=3, conv_kernel=3, expand=2,
                        time_step_rank=3, use_bias=True, use_conv_bias=True, tie_word_embeddings=True,
                        layer_norm_epsilon=1e-5)
        m = MambaForCausalLM(c)
        perturb(m, 1)
        src, _ = save_fixture(a.out, "mamba1_bias_tied", m, 64, [37, 12, 1], 11, note="conv 3, dt_rank 3, biases, tied")
        to_mamba_ssm_layout(src, os.path.join(a.out, "mamba1_ssm_layout"),
                            {"d_state": 5, "d_conv": 3, "expand": 2, "dt_rank": 3, "conv_bias": True, "bias": True},
                            61, 8, True)

    def fixture_1():
        # Mamba-1: no conv bias, auto dt rank, untied, stored in bf16.
        c = MambaConfig(vocab_size=50, hidden_size=36, state_size=7, num_hidden_layers=2, conv_kernel=4, expand=2,
                        time_step_rank="auto", use_bias=False, use_conv_bias=False, tie_word_embeddings=False)
        m = MambaForCausalLM(c)
        perturb(m, 2)
        save_fixture(a.out, "mamba1_bf16_untied", m, 50, [29, 5], 12, dtype="bf16", note="bf16 weights, untied, no conv bias")

    def fixture_2():
        # FalconMamba: B/C/dt RMS norms, expand 16 next to the real intermediate_size, conv 2, untied, sharded.
        c = FalconMambaConfig(vocab_size=48, hidden_size=16, state_size=6, num_hidden_layers=2, conv_kernel=2, expand=16,
                              intermediate_size=40, time_step_rank=4, mixer_rms_eps=1e-3, tie_word_embeddings=False)
        m = FalconMambaForCausalLM(c)
        assert m.backbone.layers[0].mixer.in_proj.weight.shape[0] == 80, m.backbone.layers[0].mixer.in_proj.weight.shape
        perturb(m, 3)
        save_fixture(a.out, "falcon_mamba_sharded", m, 48, [23, 9], 13, shard="20KB",
                     note="mixer_rms_eps 1e-3, expand 16 with intermediate_size 40, sharded")

    def fixture_3():
        # Mamba-2: n_groups 2, sequences longer than chunk_size, untied, fp32.
        c = Mamba2Config(vocab_size=72, hidden_size=32, state_size=12, num_hidden_layers=2, conv_kernel=4, expand=2,
                         head_dim=8, num_heads=8, n_groups=2, chunk_size=16, use_bias=False, use_conv_bias=True,
                         tie_word_embeddings=False, layer_norm_epsilon=1e-5)
        m = Mamba2ForCausalLM(c)
        perturb(m, 4)
        save_fixture(a.out, "mamba2_groups", m, 72, [45, 16, 3], 14, note="n_groups 2, chunk 16 < length 45")

    def fixture_4():
        # Mamba-2: time_step_limit, biases, conv width 3, tied, f16 weights.
        c = Mamba2Config(vocab_size=40, hidden_size=24, state_size=8, num_hidden_layers=2, conv_kernel=3, expand=2,
                         head_dim=12, num_heads=4, n_groups=1, chunk_size=8, use_bias=True, use_conv_bias=False,
                         time_step_limit=(0.05, 0.6), tie_word_embeddings=True)
        m = Mamba2ForCausalLM(c)
        perturb(m, 5)
        save_fixture(a.out, "mamba2_limit_f16", m, 40, [21, 8], 15, dtype="f16",
                     note="time_step_limit (0.05, 0.6), biases, f16 weights")

    def fixture_5():
        # Mamba-2 in the mamba_ssm layout, n_groups 2: reference = transformers with mamba_ssm's group-wise gated norm.
        c = Mamba2Config(vocab_size=48, hidden_size=32, state_size=8, num_hidden_layers=2, conv_kernel=4, expand=2,
                         head_dim=16, num_heads=4, n_groups=2, chunk_size=8, tie_word_embeddings=True)
        m = Mamba2ForCausalLM(c)
        perturb(m, 6)
        restore = group_norm_patch(2)
        src, _ = save_fixture(a.out, "mamba2_groupnorm_hf_tmp", m, 48, [19, 6], 16, note="group-wise gated norm")
        restore()
        to_mamba_ssm_layout(src, os.path.join(a.out, "mamba2_ssm_layout"),
                            {"layer": "Mamba2", "d_state": 8, "d_conv": 4, "expand": 2, "headdim": 16, "ngroups": 2,
                             "chunk_size": 8}, 45, 16, True)
        shutil.rmtree(src)
    

    def fixture_6():
        # Mamba-1 with the sizes the GPU's single-pass scan and half-precision prefill take (d_state 16,
        # d_inner and dt_rank multiples of 8 and 4), bf16, a prompt longer than one 256-step scan tile.
        c = MambaConfig(vocab_size=64, hidden_size=64, state_size=16, num_hidden_layers=2, conv_kernel=4, expand=2,
                        time_step_rank=8, use_bias=False, use_conv_bias=True, tie_word_embeddings=True)
        m = MambaForCausalLM(c)
        perturb(m, 7)
        save_fixture(a.out, "mamba1_bf16_tiles", m, 64, [300, 40, 9], 12, dtype="bf16", note="bf16, d_state 16, 300-token prompt")

    for i, f in enumerate([fixture_0, fixture_1, fixture_2, fixture_3, fixture_4, fixture_5, fixture_6]):
        if a.only and str(i) not in a.only.split(","):
            continue
        try:
            f()
        except Exception:  # keep going: one broken fixture must not lose the others
            traceback.print_exc()
            failures.append(i)
    if failures:
        raise SystemExit(f'fixtures failed: {failures}')


if __name__ == "__main__":
    main()
