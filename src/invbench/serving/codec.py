"""Messages between a target's server and its clients: safetensors bytes, never pickle.

A message is one safetensors blob: named tensors plus a JSON object in the header's
``__metadata__`` (under the key ``invbench``). The same bytes travel over a process pipe
(:mod:`invbench.serving.pipe`) and as the body of an HTTP request or answer
(:mod:`invbench.serving.http`), so a deployed endpoint and a local worker speak one format.
Decoding reads the header as JSON and the tensors with ``safetensors`` — nothing is
unpickled, so a message from another process cannot run code here.

Example::

    blob = encode({"images": x}, {"op": "query"})
    tensors, meta = decode(blob)     # ({"images": x}, {"op": "query"})
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from invbench.errors import DataError

#: the largest message accepted (a batch of 4,096 RGB 224 px float32 images is ~2.5 GB; the
#: servers cap a query batch well below this)
MAX_MESSAGE_BYTES = 1 << 30


def encode(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> bytes:
    """One message: ``tensors`` (contiguous CPU copies) and the JSON-able ``meta``."""
    payload = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    text = json.dumps(dict(meta), sort_keys=True, allow_nan=False)
    return save(payload, metadata={"invbench": text})


def decode(data: bytes) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a message from :func:`encode`; :class:`DataError` if malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"message must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise DataError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    if len(data) < 8:
        raise DataError("message too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise DataError("message header runs past the end of the message")
    try:
        header = json.loads(data[8 : 8 + n])
        meta = json.loads(header.get("__metadata__", {}).get("invbench", "{}"))
        tensors = load(data)
    except (ValueError, TypeError, AttributeError, SafetensorError) as exc:
        raise DataError(f"malformed message: {' '.join(str(exc).split())}") from None
    if not isinstance(meta, dict):
        raise DataError("malformed message: metadata is not a JSON object")
    return tensors, meta
