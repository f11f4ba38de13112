#!/usr/bin/env python3
"""Writes tests/data/gguf/tiny-a.gguf (+ tiny-a-mtp.gguf) from the golden tiny-a checkpoint in
the layout of llama.cpp's deepseek4 converter (../shared/spec/gguf-deepseek4.md), independently
of dsv4's own writer: its own GGUF serialisation, FP8 dequantisation and MXFP4 repacking in
numpy. Lossless types: FP8 dense weights dequantized to BF16 (exact, checked), BF16 tensors as
BF16, F32 tensors (hc_*, ape, sinks, bias) as F32, norms as F32, FP4 experts repacked bit-exactly
into MXFP4 and stacked, tid2eid as I32. The MTP block goes to a sidecar with mtp.0.* names.

Run once (Debian python3 + python3-numpy): python3 make_tiny_gguf.py CHECKPOINT_DIR OUT_DIR
"""
import json, struct, sys, os
import numpy as np

ALIGN = 32
GGML = {"F32": 0, "F16": 1, "Q8_0": 8, "BF16": 30, "I32": 26, "MXFP4": 39}


def read_safetensors(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if not f.endswith(".safetensors"):
            continue
        b = open(os.path.join(d, f), "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        h = json.loads(b[8:8 + n])
        for k, v in h.items():
            if k == "__metadata__":
                continue
            s, e = v["data_offsets"]
            out[k] = (v["dtype"], v["shape"], b[8 + n + s:8 + n + e])
    return out


def e4m3_table():
    t = np.zeros(256, np.float64)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e = (c >> 3) & 0xF
        m = c & 7
        if e == 15 and m == 7:
            t[c] = np.nan
        elif e == 0:
            t[c] = s * m / 8 * 2.0 ** -6
        else:
            t[c] = s * (1 + m / 8) * 2.0 ** (e - 7)
    return t


E4M3 = e4m3_table()


def bf16_bytes(x):
    x = np.ascontiguousarray(x, np.float32)
    u = x.view(np.uint32)
    assert np.all((u & 0xFFFF) == 0), "value not exact in BF16"
    return (u >> 16).astype(np.uint16).tobytes()


def as_float(dtype, shape, raw):
    if dtype == "F32":
        return np.frombuffer(raw, np.float32).reshape(shape)
    if dtype == "BF16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    raise ValueError(dtype)


def dequant_fp8(w, s, block=128):
    codes = np.frombuffer(w[2], np.uint8).reshape(w[1])
    sc = np.frombuffer(s[2], np.uint8).reshape(s[1]).astype(np.float64)
    vals = E4M3[codes]
    scale = 2.0 ** (sc - 127)
    full = np.repeat(np.repeat(scale, block, 0), block, 1)[: codes.shape[0], : codes.shape[1]]
    out = (vals * full).astype(np.float32)
    assert np.all(out.astype(np.float64) == vals * full)
    return out


def mxfp4(w, s):
    packed = np.frombuffer(w[2], np.uint8).reshape(w[1])  # [out, in/2]
    scales = np.frombuffer(s[2], np.uint8).reshape(s[1])  # [out, in/32]
    rows, half = packed.shape
    codes = np.empty((rows, half * 2), np.uint8)
    codes[:, 0::2] = packed & 0xF
    codes[:, 1::2] = packed >> 4
    blocks = codes.reshape(rows, -1, 32)
    qs = blocks[:, :, :16] | (blocks[:, :, 16:] << 4)
    out = np.concatenate([scales.reshape(rows, -1, 1), qs], axis=2)  # 17 bytes per block
    return out.astype(np.uint8).tobytes()


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def tensor(self, name, gtype, ne, data):
        self.tensors.append((name, GGML[gtype], list(ne), data))

    @staticmethod
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def scalar(self, t, v):
        return {"u32": lambda: struct.pack("<I", v), "i32": lambda: struct.pack("<i", v), "f32": lambda: struct.pack("<f", v),
                "bool": lambda: struct.pack("<B", 1 if v else 0), "str": lambda: self.s(v)}[t]()

    def write(self, path):
        code = {"u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8}
        out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for key, t, v in self.kv:
            out += self.s(key)
            if t.startswith("arr_"):
                et = t[4:]
                out += struct.pack("<IIQ", 9, code[et], len(v))
                for x in v:
                    out += self.scalar(et, x)
            else:
                out += struct.pack("<I", code[t]) + self.scalar(t, v)
        off = 0
        offsets = []
        for name, gt, ne, data in self.tensors:
            out += self.s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", e) for e in ne)
            out += struct.pack("<IQ", gt, off)
            offsets.append(off)
            off += (len(data) + ALIGN - 1) // ALIGN * ALIGN
        out += b"\0" * ((-len(out)) % ALIGN)
        for (name, gt, ne, data), o in zip(self.tensors, offsets):
            out += data
            out += b"\0" * ((-len(out)) % ALIGN)
        tmp = path + ".tmp"
        open(tmp, "wb").write(out)
        os.replace(tmp, path)


def main():
    ckpt, outdir = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    T = read_safetensors(ckpt)
    L = cfg["num_hidden_layers"]
    hc = cfg["hc_mult"]
    D = cfg["hidden_size"]

    def meta(w, mtp=False):
        A = "deepseek4."
        w.add("general.architecture", "str", "deepseek4")
        w.add(A + "block_count", "u32", L)
        w.add(A + "context_length", "u32", cfg["max_position_embeddings"])
        w.add(A + "embedding_length", "u32", D)
        w.add(A + "vocab_size", "u32", cfg["vocab_size"])
        w.add(A + "attention.head_count", "u32", cfg["num_attention_heads"])
        w.add(A + "attention.head_count_kv", "u32", cfg["num_key_value_heads"])
        w.add(A + "attention.key_length", "u32", cfg["head_dim"])
        w.add(A + "attention.value_length", "u32", cfg["head_dim"])
        w.add(A + "attention.q_lora_rank", "u32", cfg["q_lora_rank"])
        w.add(A + "attention.output_lora_rank", "u32", cfg["o_lora_rank"])
        w.add(A + "attention.output_group_count", "u32", cfg["o_groups"])
        w.add(A + "attention.indexer.head_count", "u32", cfg["index_n_heads"])
        w.add(A + "attention.indexer.key_length", "u32", cfg["index_head_dim"])
        w.add(A + "attention.indexer.top_k", "u32", cfg["index_topk"])
        w.add(A + "attention.compress_ratios", "arr_i32", cfg["compress_ratios"])
        w.add(A + "attention.compress_rope_freq_base", "f32", cfg["compress_rope_theta"])
        w.add(A + "attention.sliding_window", "u32", cfg["sliding_window"])
        w.add(A + "attention.layer_norm_rms_epsilon", "f32", cfg["rms_norm_eps"])
        w.add(A + "nextn_predict_layers", "u32", cfg["num_nextn_predict_layers"])
        w.add(A + "hyper_connection.count", "u32", hc)
        w.add(A + "hyper_connection.sinkhorn_iterations", "u32", cfg["hc_sinkhorn_iters"])
        w.add(A + "hyper_connection.epsilon", "f32", cfg["hc_eps"])
        w.add(A + "hash_layer_count", "u32", cfg["num_hash_layers"])
        w.add(A + "swiglu_clamp_exp", "arr_f32", [cfg["swiglu_limit"]] * L)
        w.add(A + "expert_feed_forward_length", "u32", cfg["moe_intermediate_size"])
        w.add(A + "expert_shared_feed_forward_length", "u32", cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
        w.add(A + "expert_count", "u32", cfg["n_routed_experts"])
        w.add(A + "expert_used_count", "u32", cfg["num_experts_per_tok"])
        w.add(A + "expert_shared_count", "u32", cfg["n_shared_experts"])
        w.add(A + "expert_weights_scale", "f32", cfg["routed_scaling_factor"])
        w.add(A + "expert_weights_norm", "bool", cfg["norm_topk_prob"])
        w.add(A + "expert_gating_func", "u32", 4)
        w.add(A + "rope.dimension_count", "u32", cfg["qk_rope_head_dim"])
        w.add(A + "rope.freq_base", "f32", cfg["rope_theta"])
        rs = cfg["rope_scaling"]
        w.add(A + "rope.scaling.type", "str", "yarn")
        w.add(A + "rope.scaling.factor", "f32", rs["factor"])
        w.add(A + "rope.scaling.original_context_length", "u32", rs["original_max_position_embeddings"])
        w.add(A + "rope.scaling.yarn_beta_fast", "f32", rs["beta_fast"])
        w.add(A + "rope.scaling.yarn_beta_slow", "f32", rs["beta_slow"])
        w.add(A + "dense_fp8", "bool", True)
        w.add("general.file_type", "u32", 32)  # MOSTLY_BF16
        w.add("tokenizer.ggml.bos_token_id", "u32", cfg["bos_token_id"])
        w.add("tokenizer.ggml.eos_token_id", "u32", cfg["eos_token_id"])

    def put(w, gname, src):
        """One official tensor `src` as GGUF tensor `gname` (lossless type)."""
        dt, shape, raw = T[src]
        ne = list(reversed(shape))
        if dt == "F8_E4M3":
            x = dequant_fp8(T[src], T[src[: -len(".weight")] + ".scale"])
            w.tensor(gname, "BF16", ne, bf16_bytes(x))
        elif dt == "BF16" and len(shape) == 1:
            w.tensor(gname, "F32", ne, as_float(dt, shape, raw).astype(np.float32).tobytes())
        elif dt == "BF16":
            w.tensor(gname, "BF16", ne, raw)
        elif dt == "F32":
            w.tensor(gname, "F32", ne, raw)
        elif dt == "I64":
            w.tensor(gname, "I32", ne, np.frombuffer(raw, np.int64).astype(np.int32).tobytes())
        else:
            raise ValueError(src + " " + dt)

    def block(w, p, g):
        for o, n in [("hc_attn_fn", "hc_attn_fn.weight"), ("hc_attn_base", "hc_attn_base.weight"), ("hc_attn_scale", "hc_attn_scale.weight"),
                     ("hc_ffn_fn", "hc_ffn_fn.weight"), ("hc_ffn_base", "hc_ffn_base.weight"), ("hc_ffn_scale", "hc_ffn_scale.weight"),
                     ("attn_norm.weight", "attn_norm.weight"), ("ffn_norm.weight", "ffn_norm.weight"), ("attn.attn_sink", "attn_sinks.weight"),
                     ("attn.wq_a.weight", "attn_q_a.weight"), ("attn.q_norm.weight", "attn_q_a_norm.weight"), ("attn.wq_b.weight", "attn_q_b.weight"),
                     ("attn.wkv.weight", "attn_kv.weight"), ("attn.kv_norm.weight", "attn_kv_a_norm.weight"),
                     ("attn.wo_a.weight", "attn_output_a.weight"), ("attn.wo_b.weight", "attn_output_b.weight"),
                     ("attn.compressor.wkv.weight", "attn_compressor_kv.weight"), ("attn.compressor.wgate.weight", "attn_compressor_gate.weight"),
                     ("attn.compressor.ape", "attn_compressor_ape.weight"), ("attn.compressor.norm.weight", "attn_compressor_norm.weight"),
                     ("attn.indexer.wq_b.weight", "indexer.attn_q_b.weight"), ("attn.indexer.weights_proj.weight", "indexer.proj.weight"),
                     ("attn.indexer.compressor.wkv.weight", "indexer_compressor_kv.weight"),
                     ("attn.indexer.compressor.wgate.weight", "indexer_compressor_gate.weight"),
                     ("attn.indexer.compressor.ape", "indexer_compressor_ape.weight"),
                     ("attn.indexer.compressor.norm.weight", "indexer_compressor_norm.weight"),
                     ("ffn.gate.weight", "ffn_gate_inp.weight"), ("ffn.gate.bias", "exp_probs_b.bias"), ("ffn.gate.tid2eid", "ffn_gate_tid2eid.weight"),
                     ("ffn.shared_experts.w1.weight", "ffn_gate_shexp.weight"), ("ffn.shared_experts.w2.weight", "ffn_down_shexp.weight"),
                     ("ffn.shared_experts.w3.weight", "ffn_up_shexp.weight")]:
            if p + o in T:
                put(w, g + n, p + o)
        E = cfg["n_routed_experts"]
        for wi, n in [("w1", "ffn_gate_exps.weight"), ("w3", "ffn_up_exps.weight"), ("w2", "ffn_down_exps.weight")]:
            data = b""
            for e in range(E):
                pre = p + "ffn.experts.%d.%s." % (e, wi)
                data += mxfp4(T[pre + "weight"], T[pre + "scale"])
            out, half = T[p + "ffn.experts.0.%s.weight" % wi][1]
            w.tensor(g + n, "MXFP4", [half * 2, out, E], data)

    w = Writer()
    meta(w)
    put(w, "token_embd.weight", "embed.weight")
    for l in range(L):
        block(w, "layers.%d." % l, "blk.%d." % l)
    put(w, "output_norm.weight", "norm.weight")
    put(w, "output.weight", "head.weight")
    put(w, "output_hc_fn.weight", "hc_head_fn")
    put(w, "output_hc_base.weight", "hc_head_base")
    put(w, "output_hc_scale.weight", "hc_head_scale")
    w.write(os.path.join(outdir, "tiny-a.gguf"))

    m = Writer()
    meta(m, True)
    block(m, "mtp.0.", "mtp.0.")
    for o in ["e_proj.weight", "h_proj.weight", "enorm.weight", "hnorm.weight", "norm.weight"]:
        put(m, "mtp.0." + o, "mtp.0." + o)
    for o in ["hc_head_fn", "hc_head_base", "hc_head_scale"]:
        put(m, "mtp.0." + o + ".weight", "mtp.0." + o)
    m.write(os.path.join(outdir, "tiny-a-mtp.gguf"))


main()
