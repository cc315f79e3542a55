"""Writes a folder of 120 entries for `kiln infer`'s bad-file test: 100 good images (MNIST
digits from data/mnist5k as PNG and JPEG, in nested folders) and 20 bad ones, one or two of
each kind: empty, truncated, not an image, wrong extension, unsupported format or variant,
absurd dimensions, unreadable (or, when running as root, which reads everything, a PNG whose
header fails its CRC), dangling link, symbolic-link loop.

Usage: python bad_folder.py OUT_DIR   — prints the bad entries' names, one per line, to
OUT_DIR/../bad.txt.
"""
import gzip
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def digits(n):
    with gzip.open(os.path.join(root, "data/mnist5k/mnist5k-images-idx3-ubyte.gz"), "rb") as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)[:n]


def png_bytes(a):
    b = io.BytesIO()
    Image.fromarray(a).save(b, "PNG")
    return b.getvalue()


def jpeg_bytes(a, **kw):
    b = io.BytesIO()
    Image.fromarray(a).convert("RGB").save(b, "JPEG", quality=90, **kw)
    return b.getvalue()


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "a", "deep"), exist_ok=True)
    os.makedirs(os.path.join(out, "b"), exist_ok=True)
    images = digits(100)
    for i, a in enumerate(images):
        folder = ("a", "a/deep", "b")[i % 3]
        if i % 4 == 0:
            name, data = f"{folder}/digit{i:03d}.jpg", jpeg_bytes(a, progressive=(i % 8 == 0))
        else:
            name, data = f"{folder}/digit{i:03d}.png", png_bytes(a)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    good_png, good_jpeg = png_bytes(images[0]), jpeg_bytes(images[1])
    twelve_bit = bytearray(good_jpeg)
    sof = twelve_bit.find(b"\xff\xc0")
    twelve_bit[sof + 4] = 12  # sample precision 12: a variant libjpeg-turbo's 8-bit build refuses
    huge = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))  # 10^10 pixels claimed
    zero_width = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")
    bad_crc = bytearray(good_png)  # a flipped byte in the compressed pixel data
    idat = bad_crc.find(b"IDAT")
    bad_crc[idat + 8] ^= 0xFF
    bad = {
        "bad/empty.png": b"",
        "bad/truncated.png": good_png[: len(good_png) // 2],
        "bad/truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "bad/signature-only.png": good_png[:8],
        "bad/header-only.jpg": good_jpeg[:20],
        "bad/notes.jpg": b"these are my notes, not a picture\n" * 4,
        "bad/page.png": b"<!DOCTYPE html><html><body>404</body></html>\n",
        "bad/random.jpg": bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)),
        "bad/jpeg-named.png": good_jpeg,
        "bad/png-named.jpg": good_png,
        "bad/animation.gif": b"GIF89a" + bytes(20),
        "bad/picture.bmp": b"BM" + bytes(60),
        "bad/photo.webp": b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(8),
        "bad/twelve-bit.jpg": bytes(twelve_bit),
        "bad/huge.png": huge,
        "bad/zero-width.png": zero_width,
        "bad/corrupt-data.png": bytes(bad_crc),
    }
    for name, data in bad.items():
        os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    names = list(bad)
    locked = os.path.join(out, "bad/locked.png")
    with open(locked, "wb") as f:
        f.write(good_png)
    if os.geteuid() == 0:
        # root reads any file whatever its mode; make this one fail its IHDR CRC instead.
        data = bytearray(good_png)
        data[29] ^= 0xFF
        with open(locked, "wb") as f:
            f.write(bytes(data))
    else:
        os.chmod(locked, 0)
    names.append("bad/locked.png")
    os.symlink("does-not-exist.png", os.path.join(out, "bad/dangling.png"))
    names.append("bad/dangling.png")
    os.symlink("..", os.path.join(out, "a/deep/loop"))
    names.append("a/deep/loop")
    with open(os.path.join(out, "..", "bad.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"100 good, {len(names)} bad")


if __name__ == "__main__":
    main()
