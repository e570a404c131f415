#!/usr/bin/env python3
"""Trains the bundled default model: a small Mamba-2 language model with its own byte-level BPE
tokenizer, in Hugging Face format (loadable by transformers and by ssm).

    bash scripts/default_model/prepare_corpus.sh corpus
    python3 scripts/default_model/train.py --corpus corpus --out models/default --minutes 7

Writes config.json, model.safetensors (f32), tokenizer.json, tokenizer_config.json (ChatML chat
template), generation_config.json, plus reference.json: the held-out perplexity computed by
transformers with the same windowing as `ssm perplexity`, greedy continuations and samples.
"""
import argparse
import json
import math
import os
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Mamba2Config, Mamba2ForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ASKS = ["Tell me something.", "Say something wise.", "Tell me a fortune.", "Share a verse.", "What do you know?",
        "Give me some advice.", "Tell me a story.", "Speak.", "Hello!", "What is the word for today?"]


def documents(path):
    """Bible chapters (blank-line separated blocks of verses) and fortunes (blank-line separated)."""
    text = open(path, encoding="utf-8").read()
    return [d.strip() for d in text.split("\n\n") if d.strip()]


def chat_docs(docs, n, rng):
    out = []
    for _ in range(n):
        d = rng.choice(docs)
        reply = d if len(d) < 600 else d[: d.rfind(".", 0, 600) + 1 or 600]
        out.append(f"<|im_start|>user\n{rng.choice(ASKS)}<|im_end|>\n<|im_start|>assistant\n{reply}<|im_end|>\n")
    return out


def train_tokenizer(docs, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             min_frequency=2)
    tok.train_from_iterator(docs, trainer=tr)
    return tok


@torch.no_grad()
def perplexity(model, ids, ctx, device):
    """exp(mean NLL) over non-overlapping windows of `ctx` tokens, each from a fresh state; every
    token of a window but the first is predicted (the exact procedure of `ssm perplexity`)."""
    nll, count = 0.0, 0
    for s in range(0, len(ids) - 1, ctx):
        w = ids[s : s + ctx]
        if len(w) < 2:
            break
        x = torch.tensor([w], device=device)
        lg = model(input_ids=x, use_cache=False).logits[0].float()
        lp = torch.log_softmax(lg[:-1].double(), dim=-1)
        nll -= lp.gather(1, x[0, 1:, None]).sum().item()
        count += len(w) - 1
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--out", default="models/default")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    rng = random.Random(0)
    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    docs = documents(os.path.join(a.corpus, "train.txt"))
    docs += chat_docs(docs, len(docs) // 10, rng)
    rng.shuffle(docs)
    tok = train_tokenizer(docs, a.vocab)
    eot = tok.token_to_id("<|endoftext|>")
    stream = []
    for enc in tok.encode_batch(docs):
        stream += enc.ids + [eot]
    data = torch.tensor(stream, dtype=torch.long)
    held_text = open(os.path.join(a.corpus, "heldout.txt"), encoding="utf-8").read()
    held = tok.encode(held_text).ids
    print(f"train tokens {len(data)}, held-out tokens {len(held)}", flush=True)

    cfg = Mamba2Config(vocab_size=a.vocab, hidden_size=a.d_model, num_hidden_layers=a.layers, state_size=64, expand=2,
                       head_dim=64, num_heads=2 * a.d_model // 64, n_groups=1, conv_kernel=4, chunk_size=64,
                       tie_word_embeddings=True, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    model = Mamba2ForCausalLM(cfg).to(dev)
    print("params", sum(p.numel() for p in model.parameters()), flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    budget = a.minutes * 60
    t0 = time.time()
    step = 0
    model.train()
    while True:
        el = time.time() - t0
        if el > budget:
            break
        frac = el / budget
        lr = a.lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        ix = torch.randint(0, len(data) - a.seq - 1, (a.batch,))
        x = torch.stack([data[i : i + a.seq] for i in ix]).to(dev)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step} t {el:.0f}s lr {lr:.2e} loss {loss.item():.3f}", flush=True)
        step += 1

    model.eval()
    model = model.float()
    os.makedirs(a.out, exist_ok=True)
    model.generation_config.eos_token_id = eot
    model.generation_config.pad_token_id = eot
    model.save_pretrained(a.out)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(a.out)
    ppl, n = perplexity(model, held, 512, dev)
    ref = {"heldout_ppl_ctx512": ppl, "heldout_tokens_scored": n, "train_steps": step, "train_minutes": a.minutes,
           "train_tokens": len(data), "params": sum(p.numel() for p in model.parameters())}
    prompts = ["In the beginning", "And the LORD said unto Moses,", "The meaning of life is", "A computer"]
    ref["greedy"] = []
    for p in prompts:
        ids = tok.encode(p).ids
        out = model.generate(torch.tensor([ids], device=dev), max_new_tokens=40, do_sample=False)[0, len(ids):].tolist()
        ref["greedy"].append({"prompt": p, "prompt_ids": ids, "output_ids": out, "text": tok.decode(out)})
    torch.manual_seed(1)
    ref["samples"] = []
    for p in prompts[:2]:
        ids = tok.encode(p).ids
        out = model.generate(torch.tensor([ids], device=dev), max_new_tokens=60, do_sample=True, temperature=0.8,
                             top_p=0.95)[0, len(ids):].tolist()
        ref["samples"].append({"prompt": p, "text": tok.decode(out)})
    json.dump(ref, open(os.path.join(a.out, "reference.json"), "w"), indent=1)
    print(json.dumps(ref, indent=1), flush=True)


if __name__ == "__main__":
    main()
