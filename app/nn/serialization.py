"""Arrays to and from bytes in NumPy's `.npz` format, never pickled.

Metadata travels as one JSON string inside the archive (a unicode array,
which NumPy stores without pickle). Loading always uses
allow_pickle=False, so an archive that holds an object array (the only
kind that would need pickle) is refused with ValueError before anything in
it is unpickled.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

META_KEY = "__meta__"


def dump_npz(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    for name, arr in arrays.items():
        if arr.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object, which cannot be stored")
    buf = io.BytesIO()
    savez: Any = np.savez  # NumPy's stubs mistype **arrays
    savez(buf, **arrays, **{META_KEY: np.array(json.dumps(meta))})
    return buf.getvalue()


def load_npz(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of dump_npz; ValueError for anything that is not such an archive."""
    if not data.startswith(b"PK\x03\x04"):  # anything else np.load would take for a pickle
        raise ValueError("not a valid .npz archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(f"not a valid .npz archive: {exc}") from None
    # np.load raises ValueError itself for object arrays ("allow_pickle=False")
    meta_arr = arrays.pop(META_KEY, None)
    if meta_arr is None or meta_arr.dtype.kind != "U" or meta_arr.shape != ():
        raise ValueError("archive has no metadata")
    meta = json.loads(str(meta_arr[()]))
    if not isinstance(meta, dict):
        raise ValueError("archive metadata must be a JSON object")
    return arrays, meta
