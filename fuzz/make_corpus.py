"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/: small valid files of every
kind each reader accepts (NumPy writes the .npy files), and a few near misses. The files are
committed; rerun this after changing what a reader accepts (python3 fuzz/make_corpus.py)."""

import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent / "corpus"
rng = np.random.default_rng(0)


def put(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def npy(a, version=None):
    import io
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def vecs(a, fmt):
    out = b""
    for row in a:
        out += struct.pack("<i", len(row)) + np.asarray(row, dtype=fmt).tobytes()
    return out


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    # .npy: every type, order, rank and version the reader takes, and some it refuses.
    put("npy", "f4_2d.npy", npy(x))
    put("npy", "f4_1d.npy", npy(x[:, 0].copy()))
    put("npy", "f4_3d.npy", npy(rng.standard_normal((2, 3, 2)).astype(np.float32)))
    put("npy", "f4_fortran.npy", npy(np.asfortranarray(x)))
    put("npy", "f4_fortran_3d.npy", npy(np.asfortranarray(rng.standard_normal((2, 2, 3)).astype(np.float32))))
    put("npy", "f2.npy", npy(x.astype(np.float16)))
    put("npy", "u2_bfloat16.npy", npy((x.view(np.uint32) >> 16).astype(np.uint16)))
    put("npy", "f8.npy", npy(x.astype(np.float64)))
    put("npy", "i4.npy", npy(np.arange(6, dtype=np.int32)))
    put("npy", "empty.npy", npy(np.zeros((0, 4), np.float32)))
    put("npy", "empty_3d.npy", npy(np.zeros((0, 70000, 90000), np.float32)))
    put("npy", "v2.npy", npy(x, version=(2, 0)))
    put("npy", "v3.npy", npy(x, version=(3, 0)))
    put("npy", "big_endian.npy", npy(x.astype(">f4")))
    put("npy", "truncated.npy", npy(x)[:-5])
    # .fvecs, .bvecs, .ivecs (one target reads the same bytes as all three).
    put("vecs", "x.fvecs", vecs(x, "<f4"))
    put("vecs", "x.bvecs", vecs(rng.integers(0, 256, (4, 6)), "u1"))
    put("vecs", "x.ivecs", vecs(rng.integers(-100, 100, (3, 4)), "<i4"))
    put("vecs", "one.fvecs", vecs(x[:1], "<f4"))
    put("vecs", "ragged.fvecs", vecs(x[:2], "<f4") + vecs(x[:1, :2], "<f4"))
    # CSV: plain, header, CRLF, blank lines, spaces and signs, a bad field.
    put("csv", "plain.csv", b"1,2,3\n4,5,6\n")
    put("csv", "header.csv", b"a,b,c\n1.5,-2,3e4\n+4,5.25,-6e-3\n")
    put("csv", "crlf.csv", b"1,2\r\n\r\n3,4\r\n")
    put("csv", "spaces.csv", b"  1 ,\t2\n 3, 4 \n")
    put("csv", "special.csv", b"inf,-inf,nan\n1e39,0x10,1e-50\n")
    put("csv", "bad.csv", b"1,2\n3,,4\n")
    # raw: 8 bytes of shape (rows, cols as int32) then the float32 data.
    put("raw", "x.f32", struct.pack("<ii", 5, 3) + x.tobytes())
    put("raw", "row.f32", struct.pack("<ii", 1, 15) + x.tobytes())
    put("raw", "wrong_shape.f32", struct.pack("<ii", 4, 3) + x.tobytes())
    put("raw", "no_shape.f32", struct.pack("<ii", 0, 3) + x.tobytes())


if __name__ == "__main__":
    main()
