#!/usr/bin/env python3
"""Reference FLOP counts for Hugging Face transformers' Reformer LSH attention.

Measured with torch.utils.flop_counter.FlopCounterMode (a subclass that also
attributes every counted contraction to a phase):

  hash : the rotation einsum inside LSHSelfAttention._hash_vectors
  attn : the matmuls inside LSHSelfAttention._attend (QK^T and P.V), plus, in
         the training step, their recomputation in ReformerLayer.backward_pass
         and their gradient matmuls
  proj : the query_key and value nn.Linear projections of LSHSelfAttention
         (forward, recomputation, gradient matmuls)
  other: everything else (feed-forward, attention output dense, LM head, ...)

Attribution of gradient matmuls: every region (hash / attn / proj) records the
range of autograd sequence numbers of the graph nodes created while it ran.
During backward, torch._C._current_autograd_node() names the node whose
backward is executing; its _sequence_nr() tells which region created it.
Forward ops (including the recomputation inside backward_pass) are attributed
by an explicit phase stack set by wrappers around the region functions.

Usage:  python hf_reformer_flops.py [--only CONFIG] [--seqs 64,1024] [--hashes 2,4]
                                    [--out hf_reformer_counts.json] [--decoder-check]
"""
import argparse
import contextlib
import json
import math
import sys
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

import transformers
from transformers import ReformerConfig, ReformerForMaskedLM, ReformerModelWithLMHead
from transformers.models.reformer import modeling_reformer as mr

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()

B = 1
HIDDEN = 64
HEADS = 2
DH = 32
FF = 64
VOCAB = 32
NB_BEFORE = 1
NB_AFTER = 0
HASH_SEED = 1234

CONFIGS = {
    "null64": dict(num_buckets=None, chunk=64, max_pos=4096),
    "int32": dict(num_buckets=32, chunk=64, max_pos=4096),
    "list8x16": dict(num_buckets=[8, 16], chunk=64, max_pos=4096),
    "null32max64k": dict(num_buckets=None, chunk=32, max_pos=65536),
}
SEQS = [64, 1024, 3072, 4096, 8192, 16384, 65536]
SEQS_CHUNK32_EXTRA = [32]


# --------------------------------------------------------------------------- counting

class _GlobalOnlyTracker:
    """Stand-in for FlopCounterMode's ModuleTracker.

    torch 2.13's ModuleTracker registers multi-grad hooks in a forward
    pre-hook; inside Reformer's _ReversibleFunction (forward run under
    no_grad, recomputation in backward_pass) this raises
    "AssertionError: Expected gradient function to be set" in
    torch.autograd.graph._get_grad_fn_or_grad_acc. The per-module table is
    not needed here, so all counts go to 'Global' only; the FLOP formulas
    and the dispatch mode are FlopCounterMode's own.
    """
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class PhaseCounter(FlopCounterMode):
    """FlopCounterMode that additionally buckets FLOPs by (phase, stage)."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnlyTracker()
        self.phase_stack = []
        self.ranges = []  # (lo, hi, phase): autograd seq numbers created inside a region
        self.by = defaultdict(int)  # (phase, stage) -> flops
        self.shapes = defaultdict(list)  # (phase, stage) -> [(op, shapes, flops)]
        self.recompute_node = None  # the _ReversibleFunctionBackward node, while in backward_pass
        self.in_backward_pass = False

    def classify(self):
        if self.phase_stack:
            stage = "recompute" if self.in_backward_pass else "fwd"
            return self.phase_stack[-1], stage
        node = torch._C._current_autograd_node()
        if node is None:
            return "other", "fwd"
        if self.recompute_node is not None and node is self.recompute_node:
            return "other", "recompute"
        seq = node._sequence_nr()
        for lo, hi, name in self.ranges:
            if lo < seq < hi:
                return name, "bwd"
        return "other", "bwd"

    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet in self.flop_registry:
            flops = self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            key = self.classify()
            self.by[key] += flops
            shp = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            self.shapes[key].append((str(func_packet), shp, flops))
        return super()._count_flops(func_packet, out, args, kwargs)


COUNTER = None
HASH_CALLS = 0


def _probe_seq():
    with torch.enable_grad():
        t = torch.zeros((), requires_grad=True)
        return (t * 1.0).grad_fn._sequence_nr()


@contextlib.contextmanager
def region(name):
    c = COUNTER
    if c is None:
        yield
        return
    lo = _probe_seq()
    c.phase_stack.append(name)
    try:
        yield
    finally:
        c.phase_stack.pop()
        hi = _probe_seq()
        c.ranges.append((lo, hi, name))


_orig_hash = mr.LSHSelfAttention._hash_vectors
_orig_attend = mr.LSHSelfAttention._attend
_orig_backward_pass = mr.ReformerLayer.backward_pass


def _hash_wrapper(self, *a, **k):
    global HASH_CALLS
    HASH_CALLS += 1
    with region("hash"):
        return _orig_hash(self, *a, **k)


def _attend_wrapper(self, *a, **k):
    with region("attn"):
        return _orig_attend(self, *a, **k)


def _backward_pass_wrapper(self, *a, **k):
    c = COUNTER
    if c is None:
        return _orig_backward_pass(self, *a, **k)
    prev = (c.in_backward_pass, c.recompute_node)
    c.in_backward_pass = True
    c.recompute_node = torch._C._current_autograd_node()
    try:
        return _orig_backward_pass(self, *a, **k)
    finally:
        c.in_backward_pass, c.recompute_node = prev


mr.LSHSelfAttention._hash_vectors = _hash_wrapper
mr.LSHSelfAttention._attend = _attend_wrapper
mr.ReformerLayer.backward_pass = _backward_pass_wrapper


def wrap_projection(linear):
    orig = linear.forward

    def fwd(x):
        with region("proj"):
            return orig(x)

    linear.forward = fwd


# --------------------------------------------------------------------------- model

def axial_shape(seq):
    a = int(math.isqrt(seq))
    while seq % a:
        a -= 1
    return (a, seq // a)


def build(cfg, num_hashes, seq, decoder=False):
    axial = axial_shape(seq)
    conf = ReformerConfig(
        attn_layers=["lsh"],
        num_hidden_layers=1,
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        attention_head_size=DH,
        feed_forward_size=FF,
        vocab_size=VOCAB,
        lsh_attn_chunk_length=cfg["chunk"],
        lsh_num_chunks_before=NB_BEFORE,
        lsh_num_chunks_after=NB_AFTER,
        num_buckets=(list(cfg["num_buckets"]) if isinstance(cfg["num_buckets"], list) else cfg["num_buckets"]),
        num_hashes=num_hashes,
        max_position_embeddings=cfg["max_pos"],
        is_decoder=decoder,
        axial_pos_embds=True,
        axial_pos_shape=axial,
        axial_pos_embds_dim=[32, 32],
        hash_seed=HASH_SEED,
        hidden_dropout_prob=0.0,
        lsh_attention_probs_dropout_prob=0.0,
        local_attention_probs_dropout_prob=0.0,
        chunk_size_lm_head=0,
        chunk_size_feed_forward=0,
        pad_token_id=0,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    model = (ReformerModelWithLMHead if decoder else ReformerForMaskedLM)(conf)
    patched = False
    if seq > cfg["max_pos"]:
        # ReformerEmbeddings.forward raises if seq > config.max_position_embeddings.
        # Raise only the embeddings' copy of the limit; LSHSelfAttention keeps
        # max_position_embeddings = cfg["max_pos"] for the num_buckets rule.
        model.reformer.embeddings.max_position_embeddings = seq
        patched = True
    attn = model.reformer.encoder.layers[0].attention.self_attention
    assert attn.max_position_embeddings == cfg["max_pos"]
    wrap_projection(attn.query_key)
    wrap_projection(attn.value)
    return model, attn, patched, axial


def rotation_size(nb):
    if nb is None:
        return None
    return nb if isinstance(nb, int) else sum(nb)


def summarize(counter, hash_calls):
    by = counter.by
    def s(phase, stages=("fwd", "recompute", "bwd")):
        return sum(by[(phase, st)] for st in stages)
    out = {
        "hash": s("hash"),
        "hash_calls": hash_calls,
        "attn": s("attn"),
        "proj": s("proj"),
        "other": s("other"),
        "total": counter.get_total_flops(),
        "split": {f"{p}_{st}": by[(p, st)] for p in ("hash", "attn", "proj", "other")
                  for st in ("fwd", "recompute", "bwd")},
    }
    assert out["hash"] + out["attn"] + out["proj"] + out["other"] == out["total"], (out, dict(by))
    return out


def run_one(cfg_name, num_hashes, seq, mode, decoder=False):
    global COUNTER, HASH_CALLS
    cfg = CONFIGS[cfg_name]
    model, attn, patched, axial = build(cfg, num_hashes, seq, decoder)
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, VOCAB, (B, seq), generator=g)
    HASH_CALLS = 0
    COUNTER = PhaseCounter()
    t0 = time.time()
    if mode == "fwd":
        model.eval()
        with torch.no_grad(), COUNTER:
            model(input_ids=ids)
    else:
        model.train()
        labels = torch.randint(0, VOCAB, (B, seq), generator=g)
        with COUNTER:
            out = model(input_ids=ids, labels=labels)
            out.loss.backward()
    dt = time.time() - t0
    res = summarize(COUNTER, HASH_CALLS)
    res["seconds"] = round(dt, 2)
    shapes = {f"{k[0]}_{k[1]}": v for k, v in COUNTER.shapes.items() if k[0] != "other"}
    COUNTER = None
    nb = attn.num_buckets
    return res, (list(nb) if isinstance(nb, (list, tuple)) else nb), patched, axial, shapes


def expected(cfg, num_hashes, seq, nb_chosen):
    """Closed-form contraction counts (2 FLOPs per multiply-add)."""
    c = cfg["chunk"]
    standard = seq <= c
    if standard:
        rounds, keys = 1, seq
    else:
        rounds, keys = num_hashes, c * (1 + NB_BEFORE + NB_AFTER)
    attn_fwd = 2 * (2 * B * HEADS * rounds * seq * keys * DH)  # QK^T + P.V
    proj_fwd = 2 * (2 * B * seq * HIDDEN * HEADS * DH)  # query_key + value
    if standard:
        hash_fwd = 0
    else:
        rot = rotation_size(nb_chosen)
        hash_fwd = 2 * B * HEADS * seq * DH * num_hashes * (rot // 2)
    return dict(attn_fwd=attn_fwd, proj_fwd=proj_fwd, hash_fwd=hash_fwd)


def check(rec, cfg):
    e = expected(cfg, rec["num_hashes"], rec["seq"], rec["num_buckets_chosen"])
    f, t = rec["fwd"], rec["train"]
    ok = {
        "fwd.attn == 2*2*B*H*rounds*S*K*dh": f["attn"] == e["attn_fwd"],
        "fwd.proj == 2*2*B*S*hidden*H*dh": f["proj"] == e["proj_fwd"],
        "fwd.hash == 2*B*H*S*dh*nh*rot/2": f["hash"] == e["hash_fwd"],
        "train.attn split fwd/recompute/bwd == 1:1:2 of fwd.attn": (
            t["split"]["attn_fwd"] == e["attn_fwd"]
            and t["split"]["attn_recompute"] == e["attn_fwd"]
            and t["split"]["attn_bwd"] == 2 * e["attn_fwd"]),
        "train.proj split fwd/recompute/bwd == 1:1:2 of fwd.proj": (
            t["split"]["proj_fwd"] == e["proj_fwd"]
            and t["split"]["proj_recompute"] == e["proj_fwd"]
            and t["split"]["proj_bwd"] == 2 * e["proj_fwd"]),
        "train.hash == fwd.hash (no re-hash in backward)": t["hash"] == e["hash_fwd"],
    }
    return e, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma list of config names")
    ap.add_argument("--seqs", default=None, help="comma list of sequence lengths")
    ap.add_argument("--hashes", default="2,4")
    ap.add_argument("--out", default="/work/ref/hf_reformer_counts.json")
    ap.add_argument("--decoder-check", action="store_true",
                    help="also run ReformerModelWithLMHead (is_decoder=True) and compare")
    ap.add_argument("--dump-shapes", action="store_true")
    args = ap.parse_args()

    names = args.only.split(",") if args.only else list(CONFIGS)
    hashes = [int(x) for x in args.hashes.split(",")]
    records = []
    for name in names:
        cfg = CONFIGS[name]
        seqs = [int(x) for x in args.seqs.split(",")] if args.seqs else (
            (SEQS_CHUNK32_EXTRA if cfg["chunk"] == 32 else []) + SEQS)
        for nh in hashes:
            for seq in seqs:
                rec = {"config": name, "num_hashes": nh, "seq": seq}
                try:
                    fwd, nb_f, patched, axial, shp_f = run_one(name, nh, seq, "fwd")
                    train, nb_t, _, _, shp_t = run_one(name, nh, seq, "train")
                except Exception as ex:  # record, don't guess
                    rec["error"] = f"{type(ex).__name__}: {ex}"
                    print(json.dumps(rec), flush=True)
                    records.append(rec)
                    continue
                assert nb_f == nb_t, (nb_f, nb_t)
                rec.update(
                    num_buckets_chosen=nb_f,
                    rotation_size=(rotation_size(nb_f) if seq > cfg["chunk"] else None),
                    standard_attention=seq <= cfg["chunk"],
                    axial_pos_shape=list(axial),
                    embeddings_max_pos_raised=patched,
                    fwd=fwd,
                    train=train,
                )
                e, ok = check(rec, cfg)
                rec["expected"] = e
                rec["checks"] = ok
                if args.decoder_check:
                    dfwd, dnb, _, _, _ = run_one(name, nh, seq, "fwd", decoder=True)
                    dtrain, _, _, _, _ = run_one(name, nh, seq, "train", decoder=True)
                    keys = ("hash", "hash_calls", "attn", "proj")
                    rec["decoder_same_hash_attn_proj"] = (
                        all(dfwd[k] == fwd[k] for k in keys) and all(dtrain[k] == train[k] for k in keys)
                        and dnb == nb_f)
                    rec["decoder_total"] = {"fwd": dfwd["total"], "train": dtrain["total"]}
                if args.dump_shapes:
                    rec["shapes"] = {"fwd": shp_f, "train": shp_t}
                print(json.dumps({k: rec[k] for k in rec if k not in ("shapes",)}), flush=True)
                records.append(rec)

    meta = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "command": " ".join([sys.executable] + sys.argv),
        "model_class": "ReformerForMaskedLM (is_decoder=False; ReformerModelWithLMHead asserts is_decoder=True)",
        "settings": dict(batch=B, hidden_size=HIDDEN, num_attention_heads=HEADS, attention_head_size=DH,
                         feed_forward_size=FF, vocab_size=VOCAB, lsh_num_chunks_before=NB_BEFORE,
                         lsh_num_chunks_after=NB_AFTER, hash_seed=HASH_SEED, num_hidden_layers=1,
                         dropouts=0.0, axial_pos_embds_dim=[32, 32], threads=torch.get_num_threads()),
        "fwd_mode": "model.eval(), torch.no_grad(), model(input_ids)",
        "train_mode": "model.train(), loss = model(input_ids, labels).loss; loss.backward()",
        "flop_convention": "torch.utils.flop_counter: 2 FLOPs per multiply-add, contractions only",
    }
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "records": records}, fh, indent=1)
    print_table(records)


def print_table(records):
    hdr = (f"{'config':<13}{'nh':>3}{'seq':>7} {'buckets':<9}{'rot':>4} | "
           f"{'fwd hash':>11}{'attn':>13}{'proj':>11}{'total':>13} | "
           f"{'trn hash':>11}{'calls':>6}{'attn':>13}{'proj':>11}{'total':>13}  ok")
    print(hdr)
    print("-" * len(hdr))
    for r in records:
        if "error" in r:
            print(f"{r['config']:<13}{r['num_hashes']:>3}{r['seq']:>7}  ERROR {r['error'][:90]}")
            continue
        f, t = r["fwd"], r["train"]
        nb = r["num_buckets_chosen"]
        nbs = "None" if nb is None else (str(nb) if isinstance(nb, int) else "x".join(map(str, nb)))
        rot = "-" if r["rotation_size"] is None else str(r["rotation_size"])
        print(f"{r['config']:<13}{r['num_hashes']:>3}{r['seq']:>7} {nbs:<9}{rot:>4} | "
              f"{f['hash']:>11}{f['attn']:>13}{f['proj']:>11}{f['total']:>13} | "
              f"{t['hash']:>11}{t['hash_calls']:>6}{t['attn']:>13}{t['proj']:>11}{t['total']:>13}  "
              f"{'Y' if all(r['checks'].values()) else 'N'}")


if __name__ == "__main__":
    main()
