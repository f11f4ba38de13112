#!/usr/bin/env python3
"""Writes tests/data/gguf/dequant_vectors.gguf: for each ggml type, random blocks (`<type>.q`,
stored in that type) and their dequantization (`<type>.f`, F32) by ggml's numpy reference.

The dequantize_blocks functions below are gguf-py's (llama.cpp gguf-py/gguf/quants.py, commit
150f157acf0fd4bd5379bdb3aae3dde1aa1397a5), reduced to dequantization; they are the oracle, not
dsv4's implementation (src/ops/ggml_types.cc is written independently, scalar, per block).
IQ2_XXS uses gguf-py's grid_hex / ksigns tables and init_grid decoding; the IQ2_XS, IQ2_S,
IQ3_XXS and IQ3_S grids (gguf-py's grid_hex of those classes) are in iq_grids.py. MXFP4 is not in that version of gguf-py: its values are tested against the official FP4
dequantization instead (tests/model/gguf_model_test.cc).

Run once (Debian python3 + python3-numpy): python3 make_dequant_vectors.py OUT_DIR
"""
import os, struct, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iq_grids import IQ2XS_HEX, IQ2S_HEX, IQ3XXS_HEX, IQ3S_HEX

QK_K = 256
SIZES = {"f16": (1, 2, 1), "bf16": (1, 2, 30), "q4_0": (32, 18, 2), "q4_1": (32, 20, 3), "q5_0": (32, 22, 6), "q5_1": (32, 24, 7),
         "q8_0": (32, 34, 8), "q2_K": (256, 84, 10), "q3_K": (256, 110, 11), "q4_K": (256, 144, 12), "q5_K": (256, 176, 13),
         "q6_K": (256, 210, 14), "iq4_nl": (32, 18, 20), "iq4_xs": (256, 136, 23), "iq2_xxs": (256, 66, 16),
         "iq2_xs": (256, 74, 17), "iq2_s": (256, 82, 22), "iq3_xxs": (256, 98, 18), "iq3_s": (256, 110, 21)}
# byte offsets of the f16 scale fields in each block (made finite before dequantizing)
HALVES = {"q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q2_K": [80, 82], "q3_K": [108],
          "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208], "iq4_nl": [0], "iq4_xs": [0], "iq2_xxs": [0],
          "iq2_xs": [0], "iq2_s": [0], "iq3_xxs": [0], "iq3_s": [0]}
GRID_HEX = (
        b"00000200050008000a00110014002000220028002a0041004400500058006100"
        b"6400800082008a00a20001010401100115014001840198010002020222028202"
        b"010404041004210424044004420448046004810484049004a404000502050805"
        b"200546056905800591050906100640068406a406000805080808140828084108"
        b"440850085208880804094009020a140a01100410101021104010601084109010"
        b"951000110811201150115a118011241245120014081420142514491480141815"
        b"6215001616160118041810184018811800190519a019511a002002200a204420"
        b"6120802082202921482100220222012404241024402456240025412564259026"
        b"082820289428442a014004401040184021402440404048405640604081408440"
        b"9040004120416141804185410142104248425642684200440844204480449944"
        b"124524450046014804481048404845480049584961498249454a904a00500850"
        b"1150195020508050885004514251a4519152905492540a550156545600581158"
        b"195864584059085a046010604060686000615561186260620064056410651265"
        b"84654268008002800a8041808280048118814081118201840484108415844084"
        b"608400854685948509864086608602880489118a0490109024904090a1901691"
        b"8091459200942294449451958198209902a050a085a009a100a218a450a804a9"
)
KSIGNS = (
        b"\x00\x81\x82\x03\x84\x05\x06\x87\x88\x09\x0a\x8b\x0c\x8d\x8e\x0f"
        b"\x90\x11\x12\x93\x14\x95\x96\x17\x18\x99\x9a\x1b\x9c\x1d\x1e\x9f"
        b"\xa0\x21\x22\xa3\x24\xa5\xa6\x27\x28\xa9\xaa\x2b\xac\x2d\x2e\xaf"
        b"\x30\xb1\xb2\x33\xb4\x35\x36\xb7\xb8\x39\x3a\xbb\x3c\xbd\xbe\x3f"
        b"\xc0\x41\x42\xc3\x44\xc5\xc6\x47\x48\xc9\xca\x4b\xcc\x4d\x4e\xcf"
        b"\x50\xd1\xd2\x53\xd4\x55\x56\xd7\xd8\x59\x5a\xdb\x5c\xdd\xde\x5f"
        b"\x60\xe1\xe2\x63\xe4\x65\x66\xe7\xe8\x69\x6a\xeb\x6c\xed\xee\x6f"
        b"\xf0\x71\x72\xf3\x74\xf5\xf6\x77\x78\xf9\xfa\x7b\xfc\x7d\x7e\xff"
)


def iq2xxs_grid():
    """gguf-py's init_grid for IQ2_XXS: hex -> 2-bit indexes (LSB first) -> grid_map values."""
    grid = np.frombuffer(GRID_HEX, dtype=np.uint8).reshape((-1, 2))
    grid = (np.where(grid > 0x40, grid + 9, grid) & 0x0F) << np.array([4, 0], dtype=np.uint8).reshape((1, 2))
    grid = grid[..., 0] | grid[..., 1]
    grid = grid.reshape((-1, 1)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 4))
    grid = (grid & 3).reshape((-1, 1))
    grid_map = np.array((0x08, 0x19, 0x2b), dtype=np.float32).reshape((1, -1))
    grid = np.take_along_axis(grid_map, grid, axis=-1)
    return grid.reshape((1, 1, 256, 8))


def init_grid(grid_hex, grid_map, shape):
    """gguf-py's __Quant.init_grid: hex -> packed indexes (LSB first) -> grid_map values."""
    bits_per_elem = int(np.ceil(np.log2(len(grid_map))))
    elems_per_byte = 8 // bits_per_elem
    grid = np.frombuffer(grid_hex, dtype=np.uint8).reshape((-1, 2))
    grid = (np.where(grid > 0x40, grid + 9, grid) & 0x0F) << np.array([4, 0], dtype=np.uint8).reshape((1, 2))
    grid = grid[..., 0] | grid[..., 1]
    grid = grid.reshape((-1, 1)) >> np.array([i for i in range(0, 8, 8 // elems_per_byte)], dtype=np.uint8).reshape((1, elems_per_byte))
    grid = (grid & ((1 << bits_per_elem) - 1)).reshape((-1, 1))
    gm = np.array(grid_map, dtype=np.float32).reshape((1, -1))
    grid = np.take_along_axis(gm, grid, axis=-1)
    return grid.reshape((1, 1, *shape))


IQ2_MAP = (0x08, 0x19, 0x2b)


def unpack_signs(bytes_, n, shape):
    signs = bytes_.reshape((n, -1, 1)) >> np.array([i for i in range(8)], dtype=np.uint8).reshape((1, 1, 8))
    signs = signs & np.uint8(0x01)
    return np.where(signs == 0, np.float32(1), np.float32(-1)).reshape(shape)


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
    if name == "iq2_xxs":
        d, qs = np.hsplit(blocks, [2]); d = f16(d)
        qs = qs.view(np.uint32).reshape(n, -1, 2)
        db = d * (np.float32(0.5) + (qs[..., 1] >> 28).astype(np.float32)) * np.float32(0.25)
        db = db.reshape((n, -1, 1, 1))
        signs = qs[..., 1].reshape((n, -1, 1)) >> np.array([0, 7, 14, 21], dtype=np.uint32).reshape((1, 1, 4))
        ksigns = np.frombuffer(KSIGNS, dtype=np.uint8).reshape((1, 1, 1, 128))
        signs = (signs & np.uint32(0x7F)).reshape((n, -1, 4, 1))
        signs = np.take_along_axis(ksigns, signs, axis=-1)
        signs = signs.reshape((n, -1, 4, 1)) >> np.array([i for i in range(8)], dtype=np.uint8).reshape((1, 1, 1, 8))
        signs = signs & np.uint8(0x01)
        signs = np.where(signs == 0, np.float32(1), np.float32(-1))
        signs = signs.reshape((n, -1, 4, 8))
        grid = np.take_along_axis(iq2xxs_grid(), qs[..., 0].copy().view(np.uint8).reshape((n, -1, 1, 1)), axis=-2)
        grid = grid.reshape((n, -1, 4, 8))
        return (db * grid * signs).reshape((n, -1))
    if name == "iq2_xs":
        d, rest = np.hsplit(blocks, [2]); qs, scales = np.hsplit(rest, [2 * QK_K // 8])
        d = f16(d); qs = qs.view(np.uint16)
        scales = scales.reshape((n, -1, 1)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2))
        scales = (scales & 0x0F).reshape((n, -1))
        db = d * (np.float32(0.5) + scales) * np.float32(0.25)
        db = db.reshape((n, -1, 1, 1))
        signs = np.frombuffer(KSIGNS, dtype=np.uint8).reshape(1, 1, 128)
        signs = np.take_along_axis(signs, (qs >> 9).reshape((n, -1, 1)), axis=-1)
        signs = unpack_signs(signs, n, (n, -1, 2, 8))
        grid = np.take_along_axis(init_grid(IQ2XS_HEX, IQ2_MAP, (512, 8)), (qs & np.uint16(511)).reshape((n, -1, 1, 1)), axis=-2)
        grid = grid.reshape((n, -1, 2, 8))
        return (db * grid * signs).reshape((n, -1))
    if name == "iq2_s":
        d, rest = np.hsplit(blocks, [2]); qs, rest = np.hsplit(rest, [QK_K // 8]); signs, rest = np.hsplit(rest, [QK_K // 8])
        qh, scales = np.hsplit(rest, [QK_K // 32])
        d = f16(d)
        scales = scales.reshape((n, -1, 1)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2))
        scales = (scales & 0x0F).reshape((n, -1))
        db = d * (np.float32(0.5) + scales) * np.float32(0.25)
        db = db.reshape((n, -1, 1, 1))
        signs = unpack_signs(signs, n, (n, -1, 2, 8))
        qh = qh.reshape((n, -1, 1)) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape((1, 1, 4))
        qs = qs.astype(np.uint16) | ((qh & 0x03).astype(np.uint16) << 8).reshape((n, -1))
        grid = np.take_along_axis(init_grid(IQ2S_HEX, IQ2_MAP, (1024, 8)), qs.reshape((n, -1, 1, 1)), axis=-2)
        grid = grid.reshape((n, -1, 2, 8))
        return (db * grid * signs).reshape((n, -1))
    if name == "iq3_xxs":
        d, rest = np.hsplit(blocks, [2]); qs, scales = np.hsplit(rest, [QK_K // 4])
        d = f16(d); scales = scales.view(np.uint32)
        db = d * (np.float32(0.5) + (scales >> 28).astype(np.float32)) * np.float32(0.5)
        db = db.reshape((n, -1, 1, 1))
        signs = scales.reshape((n, -1, 1)) >> np.array([0, 7, 14, 21], dtype=np.uint32).reshape((1, 1, 4))
        ksigns = np.frombuffer(KSIGNS, dtype=np.uint8).reshape((1, 1, 1, 128))
        signs = (signs & np.uint32(0x7F)).reshape((n, -1, 4, 1))
        signs = np.take_along_axis(ksigns, signs, axis=-1)
        signs = unpack_signs(signs, n, (n, -1, 4, 8))
        grid3 = init_grid(IQ3XXS_HEX, (0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e), (256, 4))
        grid = np.take_along_axis(grid3, qs.reshape((n, -1, 1, 1)), axis=-2)
        grid = grid.reshape((n, -1, 4, 8))
        return (db * grid * signs).reshape((n, -1))
    if name == "iq3_s":
        d, rest = np.hsplit(blocks, [2]); qs, rest = np.hsplit(rest, [QK_K // 4]); qh, rest = np.hsplit(rest, [QK_K // 32])
        signs, scales = np.hsplit(rest, [QK_K // 8])
        d = f16(d)
        scales = scales.reshape((n, -1, 1)) >> np.array([0, 4], dtype=np.uint8).reshape((1, 1, 2))
        scales = (scales & 0x0F).reshape((n, -1))
        db = d * (1 + 2 * scales)
        db = db.reshape((n, -1, 1, 1))
        signs = unpack_signs(signs, n, (n, -1, 4, 8))
        qh = qh.reshape((n, -1, 1)) >> np.array([i for i in range(8)], dtype=np.uint8)
        qh = (qh & 0x01).astype(np.uint16).reshape((n, -1))
        qs = qs.astype(np.uint16) | (qh << 8)
        grid3 = init_grid(IQ3S_HEX, (0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f), (512, 4))
        grid = np.take_along_axis(grid3, qs.reshape((n, -1, 1, 1)), axis=-2)
        grid = grid.reshape((n, -1, 4, 8))
        return (db * grid * signs).reshape((n, -1))
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
