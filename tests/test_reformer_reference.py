"""The Reformer's LSH hashing and attention contractions against the reference
implementation's, measured independently (Hugging Face transformers' Reformer).

REFERENCE was measured once in a scratch environment (torch 2.13.0+cpu, transformers
5.25.0; the project does not depend on torch) by ``tests/reference/hf_reformer_flops.py``:
``torch.utils.flop_counter.FlopCounterMode`` over HF ``ReformerForMaskedLM`` (one LSH
layer, hidden 64, 2 heads of 32, chunks before/after 1/0, batch 1), its contractions
attributed to ``_hash_vectors`` (hash) and ``_attend`` (attention: the query-key and the
probabilities-value products, their recomputation in the reversible backward and their
gradient products).  Keys: (config, num_hashes, seq); values: (forward hash, forward
attention, training hash, training attention) FLOPs, 2 per multiply-add.  Configs:
null64 (num_buckets null, chunk 64, max_position_embeddings 4096), int32 (32), list8x16
([8, 16]), null32max64k (null, chunk 32, max_position_embeddings 65536).  HF chose the
buckets noted beside each row ("None": the sequence fits one chunk, no hashing).
"""
import pytest

from architectures import reformer as rf
from comparator.run.hfconfig import from_hf

CONFIGS = {"null64": dict(num_buckets=None, lsh_attn_chunk_length=64),
           "int32": dict(num_buckets=32, lsh_attn_chunk_length=64),
           "list8x16": dict(num_buckets=[8, 16], lsh_attn_chunk_length=64),
           "null32max64k": dict(num_buckets=None, lsh_attn_chunk_length=32,
                                max_position_embeddings=65536)}

REFERENCE = {
    ('null64', 2, 64): (0, 1048576, 0, 4194304),  # buckets None
    ('null64', 2, 1024): (4194304, 67108864, 4194304, 268435456),  # buckets 32
    ('null64', 2, 3072): (25165824, 201326592, 25165824, 805306368),  # buckets 64
    ('null64', 2, 4096): (67108864, 268435456, 67108864, 1073741824),  # buckets 128
    ('null64', 2, 8192): (33554432, 536870912, 33554432, 2147483648),  # buckets [16, 16]
    ('null64', 2, 16384): (100663296, 1073741824, 100663296, 4294967296),  # buckets [16, 32]
    ('null64', 2, 65536): (805306368, 4294967296, 805306368, 17179869184),  # buckets [32, 64]
    ('null64', 4, 64): (0, 1048576, 0, 4194304),  # buckets None
    ('null64', 4, 1024): (8388608, 134217728, 8388608, 536870912),  # buckets 32
    ('null64', 4, 3072): (50331648, 402653184, 50331648, 1610612736),  # buckets 64
    ('null64', 4, 4096): (134217728, 536870912, 134217728, 2147483648),  # buckets 128
    ('null64', 4, 8192): (67108864, 1073741824, 67108864, 4294967296),  # buckets [16, 16]
    ('null64', 4, 16384): (201326592, 2147483648, 201326592, 8589934592),  # buckets [16, 32]
    ('null64', 4, 65536): (1610612736, 8589934592, 1610612736, 34359738368),  # buckets [32, 64]
    ('int32', 2, 64): (0, 1048576, 0, 4194304),  # buckets 32
    ('int32', 2, 1024): (4194304, 67108864, 4194304, 268435456),  # buckets 32
    ('int32', 2, 3072): (12582912, 201326592, 12582912, 805306368),  # buckets 32
    ('int32', 2, 4096): (16777216, 268435456, 16777216, 1073741824),  # buckets 32
    ('int32', 2, 8192): (33554432, 536870912, 33554432, 2147483648),  # buckets 32
    ('int32', 2, 16384): (67108864, 1073741824, 67108864, 4294967296),  # buckets 32
    ('int32', 2, 65536): (268435456, 4294967296, 268435456, 17179869184),  # buckets 32
    ('int32', 4, 64): (0, 1048576, 0, 4194304),  # buckets 32
    ('int32', 4, 1024): (8388608, 134217728, 8388608, 536870912),  # buckets 32
    ('int32', 4, 3072): (25165824, 402653184, 25165824, 1610612736),  # buckets 32
    ('int32', 4, 4096): (33554432, 536870912, 33554432, 2147483648),  # buckets 32
    ('int32', 4, 8192): (67108864, 1073741824, 67108864, 4294967296),  # buckets 32
    ('int32', 4, 16384): (134217728, 2147483648, 134217728, 8589934592),  # buckets 32
    ('int32', 4, 65536): (536870912, 8589934592, 536870912, 34359738368),  # buckets 32
    ('list8x16', 2, 64): (0, 1048576, 0, 4194304),  # buckets [8, 16]
    ('list8x16', 2, 1024): (3145728, 67108864, 3145728, 268435456),  # buckets [8, 16]
    ('list8x16', 2, 3072): (9437184, 201326592, 9437184, 805306368),  # buckets [8, 16]
    ('list8x16', 2, 4096): (12582912, 268435456, 12582912, 1073741824),  # buckets [8, 16]
    ('list8x16', 2, 8192): (25165824, 536870912, 25165824, 2147483648),  # buckets [8, 16]
    ('list8x16', 2, 16384): (50331648, 1073741824, 50331648, 4294967296),  # buckets [8, 16]
    ('list8x16', 2, 65536): (201326592, 4294967296, 201326592, 17179869184),  # buckets [8, 16]
    ('list8x16', 4, 64): (0, 1048576, 0, 4194304),  # buckets [8, 16]
    ('list8x16', 4, 1024): (6291456, 134217728, 6291456, 536870912),  # buckets [8, 16]
    ('list8x16', 4, 3072): (18874368, 402653184, 18874368, 1610612736),  # buckets [8, 16]
    ('list8x16', 4, 4096): (25165824, 536870912, 25165824, 2147483648),  # buckets [8, 16]
    ('list8x16', 4, 8192): (50331648, 1073741824, 50331648, 4294967296),  # buckets [8, 16]
    ('list8x16', 4, 16384): (100663296, 2147483648, 100663296, 8589934592),  # buckets [8, 16]
    ('list8x16', 4, 65536): (402653184, 8589934592, 402653184, 34359738368),  # buckets [8, 16]
    ('null32max64k', 2, 32): (0, 262144, 0, 1048576),  # buckets None
    ('null32max64k', 2, 64): (32768, 2097152, 32768, 8388608),  # buckets 4
    ('null32max64k', 2, 1024): (8388608, 33554432, 8388608, 134217728),  # buckets 64
    ('null32max64k', 2, 3072): (9437184, 100663296, 9437184, 402653184),  # buckets [8, 16]
    ('null32max64k', 2, 4096): (16777216, 134217728, 16777216, 536870912),  # buckets [16, 16]
    ('null32max64k', 2, 8192): (50331648, 268435456, 50331648, 1073741824),  # buckets [16, 32]
    ('null32max64k', 2, 16384): (134217728, 536870912, 134217728, 2147483648),  # buckets [32, 32]
    ('null32max64k', 2, 65536): (1073741824, 2147483648, 1073741824, 8589934592),  # buckets [64, 64]
    ('null32max64k', 4, 32): (0, 262144, 0, 1048576),  # buckets None
    ('null32max64k', 4, 64): (65536, 4194304, 65536, 16777216),  # buckets 4
    ('null32max64k', 4, 1024): (16777216, 67108864, 16777216, 268435456),  # buckets 64
    ('null32max64k', 4, 3072): (18874368, 201326592, 18874368, 805306368),  # buckets [8, 16]
    ('null32max64k', 4, 4096): (33554432, 268435456, 33554432, 1073741824),  # buckets [16, 16]
    ('null32max64k', 4, 8192): (100663296, 536870912, 100663296, 2147483648),  # buckets [16, 32]
    ('null32max64k', 4, 16384): (268435456, 1073741824, 268435456, 4294967296),  # buckets [32, 32]
    ('null32max64k', 4, 65536): (2147483648, 4294967296, 2147483648, 17179869184),  # buckets [64, 64]
}


def hf_config(name: str, num_hashes: int) -> rf.Config:
    """Our Config from the same Hugging Face config.json the reference counts ran."""
    data = {"model_type": "reformer", "attn_layers": ["lsh"], "hidden_size": 64,
            "num_attention_heads": 2, "attention_head_size": 32, "feed_forward_size": 64,
            "vocab_size": 32, "lsh_num_chunks_before": 1, "lsh_num_chunks_after": 0,
            "axial_pos_shape": [8, 8], "axial_pos_embds_dim": [32, 32],
            "num_hashes": num_hashes, **CONFIGS[name]}
    return from_hf(data, name)[2]


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_hash_and_attention_contractions_equal_the_reference(key):
    name, num_hashes, seq = key
    cfg = hf_config(name, num_hashes)
    f = rf.flops(cfg, seq, 1, "matmul")
    attn = lambda bd: bd.get("lsh/scores", 0) + bd.get("lsh/context", 0)
    got = (f.breakdown.get("lsh/hash", 0), attn(f.breakdown),
           f.train_breakdown.get("lsh/hash", 0), attn(f.train_breakdown))
    assert got == REFERENCE[key]


def test_the_traced_model_hashes_as_the_reference():
    """The traced step (not only the formula) at a factorised and a rounded length."""
    from helpers import traced
    for name, num_hashes, seq in [("null64", 2, 8192), ("null32max64k", 4, 3072),
                                  ("list8x16", 2, 1024), ("null64", 4, 64)]:
        fwd, train = traced(rf, hf_config(name, num_hashes), 1, seq)
        want = REFERENCE[name, num_hashes, seq]
        attn = lambda bd: bd.get("lsh/scores", 0) + bd.get("lsh/context", 0)
        assert (fwd.breakdown("matmul").get("lsh/hash", 0), attn(fwd.breakdown("matmul")),
                train.breakdown("matmul").get("lsh/hash", 0),
                attn(train.breakdown("matmul"))) == want


def test_the_rule_by_hand():
    cfg = hf_config("null64", 2)                     # chunk 64, max_position_embeddings 4096
    assert cfg.bucket_limit() == 2 * max(8, 64)      # isqrt(4096 // 64) = 8
    assert cfg.bucket_factors(3072) == (64,)         # 2 * 48 = 96, down to a power of two
    assert cfg.bucket_factors(4096) == (128,)        # 128 is not above the limit
    assert cfg.bucket_factors(8192) == (16, 16)      # 256 = 2^8 -> 2^4 x 2^4
    assert cfg.bucket_factors(65536) == (32, 64)     # 2048 = 2^11 -> 2^5 x 2^6
    assert cfg.rotation_size(65536) == 96 and cfg.buckets(65536) == 2048
    long = hf_config("null32max64k", 2)
    assert long.bucket_limit() == 2 * max(45, 32)    # isqrt(65536 // 32) = isqrt(2048) = 45
    assert long.bucket_factors(3072) == (8, 16)      # 2 * 96 = 192 -> 128 > 90


@pytest.mark.parametrize("rehash", [False, True])
def test_analytic_equals_traced_at_every_reference_length(rehash):
    """Forward and training, matmul scope term by term, both backward-hashing choices, at
    the issue's lengths (one-chunk, unfactorised, factorised) for a null and a list config."""
    import dataclasses

    from helpers import assert_counts_agree
    for name in ("null64", "list8x16"):
        cfg = dataclasses.replace(hf_config(name, 4), rehash_in_backward=rehash)
        for seq in (64, 1024, 4096, 8192, 16384, 65536):
            assert_counts_agree(rf, cfg, 1, seq, all_rtol=0)
