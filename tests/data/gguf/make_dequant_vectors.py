#!/usr/bin/env python3
"""Writes tests/data/gguf/dequant_vectors.gguf: for each ggml type, random blocks (`<type>.q`,
stored in that type) and their dequantization (`<type>.f`, F32) by ggml's numpy reference.

The dequantize_blocks functions below are gguf-py's (llama.cpp gguf-py/gguf/quants.py, commit
150f157acf0fd4bd5379bdb3aae3dde1aa1397a5), reduced to dequantization; they are the oracle, not
dsv4's implementation (src/ops/ggml_types.cc is written independently, scalar, per block).
MXFP4 is not in that version of gguf-py: its values are tested against the official FP4
dequantization instead (tests/model/gguf_model_test.cc).

Run once (Debian python3 + python3-numpy): python3 make_dequant_vectors.py OUT_DIR
"""
import os, struct, sys
import numpy as np

QK_K = 256
SIZES = {"f16": (1, 2, 1), "bf16": (1, 2, 30), "q4_0": (32, 18, 2), "q4_1": (32, 20, 3), "q5_0": (32, 22, 6), "q5_1": (32, 24, 7),
         "q8_0": (32, 34, 8), "q2_K": (256, 84, 10), "q3_K": (256, 110, 11), "q4_K": (256, 144, 12), "q5_K": (256, 176, 13),
         "q6_K": (256, 210, 14), "iq4_nl": (32, 18, 20), "iq4_xs": (256, 136, 23)}
# byte offsets of the f16 scale fields in each block (made finite before dequantizing)
HALVES = {"q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q2_K": [80, 82], "q3_K": [108],
          "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208], "iq4_nl": [0], "iq4_xs": [0]}
KVALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


def f16(x):
    return x.view(np.float16).astype(np.float32)


def deq(name, blocks):
    n = blocks.shape[0]
    if name == "f16":
        return blocks.view(np.float16).astype(np.float32).reshape(-1)
    if name == "bf16":
        return (blocks.view(np.int16).astype(np.int32) << 16).view(np.float32).reshape(-1)
    if name == "q4_0":
        d, qs = np.hsplit(blocks, [2]); d = f16(d)
        qs = qs.reshape((n, -1, 1, 16)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qs = (qs & np.uint8(0x0F)).reshape((n, -1)).astype(np.int8) - np.int8(8)
        return d * qs.astype(np.float32)
    if name == "q4_1":
        d, rest = np.hsplit(blocks, [2]); m, qs = np.hsplit(rest, [2]); d = f16(d); m = f16(m)
        qs = qs.reshape((n, -1, 1, 16)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qs = (qs & np.uint8(0x0F)).reshape((n, -1)).astype(np.float32)
        return (d * qs) + m
    if name in ("q5_0", "q5_1"):
        d, rest = np.hsplit(blocks, [2]); d = f16(d)
        if name == "q5_1":
            m, rest = np.hsplit(rest, [2]); m = f16(m)
        qh, qs = np.hsplit(rest, [4])
        qh = qh.view(np.uint32)
        qh = qh.reshape((n, 1)) >> np.array([i for i in range(32)], dtype=np.uint32).reshape((1, 32))
        ql = qs.reshape((n, -1, 1, 16)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qh = (qh & np.uint32(0x01)).astype(np.uint8)
        ql = (ql & np.uint8(0x0F)).reshape((n, -1))
        if name == "q5_0":
            qs = (ql | (qh << np.uint8(4))).astype(np.int8) - np.int8(16)
            return d * qs.astype(np.float32)
        qs = (ql | (qh << np.uint8(4))).astype(np.float32)
        return (d * qs) + m
    if name == "q8_0":
        d, x = np.split(blocks, [2], axis=1); d = f16(d); x = x.view(np.int8).astype(np.float32)
        return x * d
    if name == "q2_K":
        scales, rest = np.hsplit(blocks, [QK_K // 16]); qs, rest = np.hsplit(rest, [QK_K // 4]); d, dmin = np.hsplit(rest, [2])
        d = f16(d); dmin = f16(dmin)
        dl = (d * (scales & 0xF).astype(np.float32)).reshape((n, QK_K // 16, 1))
        ml = (dmin * (scales >> 4).astype(np.float32)).reshape((n, QK_K // 16, 1))
        shift = np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4, 1))
        qs = (qs.reshape((n, -1, 1, 32)) >> shift) & np.uint8(3)
        qs = qs.reshape((n, QK_K // 16, 16)).astype(np.float32)
        return (dl * qs - ml).reshape((n, -1))
    if name == "q3_K":
        hmask, rest = np.hsplit(blocks, [QK_K // 8]); qs, rest = np.hsplit(rest, [QK_K // 4]); scales, d = np.hsplit(rest, [12])
        d = f16(d)
        lscales, hscales = np.hsplit(scales, [8])
        lscales = lscales.reshape((n, 1, 8)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 2, 1))
        lscales = lscales.reshape((n, 16))
        hscales = hscales.reshape((n, 1, 4)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 4, 1))
        hscales = hscales.reshape((n, 16))
        scales = (lscales & np.uint8(0x0F)) | ((hscales & np.uint8(0x03)) << np.uint8(4))
        scales = (scales.astype(np.int8) - np.int8(32)).astype(np.float32)
        dl = (d * scales).reshape((n, 16, 1))
        ql = qs.reshape((n, -1, 1, 32)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4, 1))
        qh = hmask.reshape(n, -1, 1, 32) >> np.array([i for i in range(8)], dtype=np.uint8).reshape((1, 1, 8, 1))
        ql = ql.reshape((n, 16, QK_K // 16)) & np.uint8(3)
        qh = (qh.reshape((n, 16, QK_K // 16)) & np.uint8(1))
        qh = qh ^ np.uint8(1)
        q = (ql.astype(np.int8) - (qh << np.uint8(2)).astype(np.int8)).astype(np.float32)
        return (dl * q).reshape((n, QK_K))
    if name in ("q4_K", "q5_K"):
        d, rest = np.hsplit(blocks, [2]); dmin, rest = np.hsplit(rest, [2]); scales, rest = np.hsplit(rest, [12])
        d = f16(d); dmin = f16(dmin)
        s = scales.reshape((n, 3, 4)); sd, sm, smd = np.split(s, 3, axis=-2)
        sc = np.concatenate([sd & 0x3F, (smd & 0x0F) | ((sd >> 2) & 0x30)], axis=-1).reshape((n, 8))
        mn = np.concatenate([sm & 0x3F, (smd >> 4) | ((sm >> 2) & 0x30)], axis=-1).reshape((n, 8))
        d = (d * sc.astype(np.float32)).reshape((n, -1, 1))
        dm = (dmin * mn.astype(np.float32)).reshape((n, -1, 1))
        if name == "q4_K":
            qs = rest.reshape((n, -1, 1, 32)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
            qs = (qs & np.uint8(0x0F)).reshape((n, -1, 32)).astype(np.float32)
            return (d * qs - dm).reshape((n, QK_K))
        qh, qs = np.hsplit(rest, [QK_K // 8])
        ql = qs.reshape((n, -1, 1, 32)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qh = qh.reshape((n, -1, 1, 32)) >> np.array([i for i in range(8)], dtype=np.uint8).reshape((1, 1, 8, 1))
        ql = (ql & np.uint8(0x0F)).reshape((n, -1, 32))
        qh = (qh & np.uint8(0x01)).reshape((n, -1, 32))
        q = (ql | (qh << np.uint8(4))).astype(np.float32)
        return (d * q - dm).reshape((n, QK_K))
    if name == "q6_K":
        ql, rest = np.hsplit(blocks, [QK_K // 2]); qh, rest = np.hsplit(rest, [QK_K // 4]); scales, d = np.hsplit(rest, [QK_K // 16])
        scales = scales.view(np.int8).astype(np.float32); d = f16(d)
        d = (d * scales).reshape((n, QK_K // 16, 1))
        ql = ql.reshape((n, -1, 1, 64)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        ql = (ql & np.uint8(0x0F)).reshape((n, -1, 32))
        qh = qh.reshape((n, -1, 1, 32)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4, 1))
        qh = (qh & np.uint8(0x03)).reshape((n, -1, 32))
        q = (ql | (qh << np.uint8(4))).astype(np.int8) - np.int8(32)
        q = q.reshape((n, QK_K // 16, -1)).astype(np.float32)
        return (d * q).reshape((n, QK_K))
    if name == "iq4_nl":
        d, qs = np.hsplit(blocks, [2]); d = f16(d)
        qs = qs.reshape((n, -1, 1, 16)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qs = (qs & np.uint8(0x0F)).reshape((n, -1, 1))
        kv = np.array(KVALUES, dtype=np.int8).reshape(1, 1, 16)
        qs = np.take_along_axis(kv, qs, axis=-1).astype(np.float32).reshape((n, -1))
        return d * qs
    if name == "iq4_xs":
        d, rest = np.hsplit(blocks, [2]); scales_h, rest = np.hsplit(rest, [2]); scales_l, qs = np.hsplit(rest, [QK_K // 64])
        d = f16(d); scales_h = scales_h.view(np.uint16)
        scales_l = scales_l.reshape((n, -1, 1)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2))
        scales_h = scales_h.reshape((n, 1, -1)) >> np.array([2 * i for i in range(QK_K // 32)], dtype=np.uint16).reshape((1, -1, 1))
        scales_l = scales_l.reshape((n, -1)) & np.uint8(0x0F)
        scales_h = scales_h.reshape((n, -1)).astype(np.uint8) & np.uint8(0x03)
        scales = (scales_l | (scales_h << np.uint8(4))).astype(np.int8) - np.int8(32)
        dl = (d * scales.astype(np.float32)).reshape((n, -1, 1))
        qs = qs.reshape((n, -1, 1, 16)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2, 1))
        qs = qs.reshape((n, -1, 32, 1)) & np.uint8(0x0F)
        kv = np.array(KVALUES, dtype=np.int8).reshape((1, 1, 1, -1))
        qs = np.take_along_axis(kv, qs, axis=-1).astype(np.float32).reshape((n, -1, 32))
        return (dl * qs).reshape((n, -1))
    raise ValueError(name)


def random_half(rng, n):
    """Finite halves of all magnitudes (normal and subnormal), both signs."""
    exp = rng.integers(0, 31, n, dtype=np.uint16)  # never 31 (inf / NaN)
    man = rng.integers(0, 1024, n, dtype=np.uint16)
    sign = rng.integers(0, 2, n, dtype=np.uint16)
    return (sign << 15) | (exp << 10) | man


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20261206)
    tensors = []
    for name, (bs, tb, tid) in SIZES.items():
        n_blocks = 2048 // bs if bs == 1 else 16
        raw = rng.integers(0, 256, (n_blocks, tb), dtype=np.uint8)
        if name == "f16":
            raw = random_half(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        if name == "bf16":
            v = (rng.standard_normal(n_blocks) * 3.0 ** rng.integers(-20, 20, n_blocks)).astype(np.float32)
            raw = (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
        for off in HALVES.get(name, []):
            raw[:, off:off + 2] = random_half(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        # a few blocks with ordinary scales (the common case: |d| around 1e-3)
        for off in HALVES.get(name, []):
            raw[:4, off:off + 2] = np.array([0.001, -0.0007, 0.02, 6e-5], np.float16).view(np.uint8).reshape(4, 2)
        vals = deq(name, raw.copy()).astype(np.float32).reshape(-1)
        assert vals.size == n_blocks * bs
        tensors.append((name + ".q", tid, [n_blocks * bs], raw.tobytes()))
        tensors.append((name + ".f", 0, [n_blocks * bs], vals.tobytes()))
    # GGUF v3 image
    s = lambda x: struct.pack("<Q", len(x.encode())) + x.encode()
    buf = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1))
    buf += s("general.description") + struct.pack("<I", 8) + s("ggml dequantization vectors from gguf-py's numpy reference")
    off = 0
    offs = []
    for nm, tid, ne, data in tensors:
        buf += s(nm) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", e) for e in ne) + struct.pack("<IQ", tid, off)
        offs.append(off)
        off += (len(data) + 31) // 32 * 32
    buf += b"\0" * ((-len(buf)) % 32)
    for (nm, tid, ne, data) in tensors:
        buf += data
        buf += b"\0" * ((-len(buf)) % 32)
    path = os.path.join(out, "dequant_vectors.gguf")
    open(path + ".tmp", "wb").write(buf)
    os.replace(path + ".tmp", path)


main()
