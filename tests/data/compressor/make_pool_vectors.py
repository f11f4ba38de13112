# Generates pool_vectors.safetensors: the official compressor pooling `(kv * softmax(score)).sum(dim)`
# computed by torch 1.13's CPU kernels (Debian python3-torch), the version the golden harness used.
# The softmax is evaluated in float64 and rounded once (as the golden harness does for every FP32
# transcendental); the product and the window sum are torch's own FP32 operations.
# Run once: /usr/bin/python3 tests/data/compressor/make_pool_vectors.py  (not run by the tests).
import json, struct, sys
import torch

torch.manual_seed(4)
out = {}
for rows, d in [(8, 64), (16, 64), (17, 64), (64, 128), (128, 128), (256, 64)]:
    kv = (torch.randn(rows, d) * 2.0).float()
    score = (torch.randn(rows, d) * 1.5).float()
    w = torch.softmax(score.double(), dim=0).float()
    pooled = (kv * w).sum(dim=0)  # [d], torch's CPU reduction over the window
    out[f"r{rows}.kv"] = kv
    out[f"r{rows}.score"] = score
    out[f"r{rows}.pooled"] = pooled

header, blobs, off = {}, [], 0
for name, t in out.items():
    b = t.contiguous().numpy().tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
path = sys.argv[1] if len(sys.argv) > 1 else __file__.replace("make_pool_vectors.py", "pool_vectors.safetensors")
with open(path + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
import os
os.replace(path + ".tmp", path)
