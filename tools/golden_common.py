"""golden_common: the safetensors writer shared by relate's golden generators.

Not a general safetensors library: it writes little-endian tensors of the dtypes relate's
tests read (F32, F64, I64, I32, I8) with an optional string-to-string __metadata__ map.
"""
import json
import struct

import numpy as np
import torch

_DTYPES = {
    torch.float32: ("F32", np.float32),
    torch.float64: ("F64", np.float64),
    torch.int64: ("I64", np.int64),
    torch.int32: ("I32", np.int32),
    torch.int8: ("I8", np.int8),
    torch.uint8: ("U8", np.uint8),
}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (insertion order kept) to `path` in the safetensors format."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        dtype, npdt = _DTYPES[t.dtype]
        data = t.numpy().astype(npdt, copy=False).astype(np.dtype(npdt).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)  # keep tensor data 8-byte aligned
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    import os
    os.replace(path + ".tmp", path)
