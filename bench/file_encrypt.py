"""Benchmark: FileSealer's throughput against one-shot AES-256-GCM on the same bytes.

FileSealer encrypts an upload in 64 KiB chunks as it arrives (one AES-256-GCM call per
chunk, counter nonces, last-chunk flag). Its floor is the AES-GCM work itself, so the
physical reference, measured in the same run on the same bytes, is a single
`AESGCM(key).encrypt` over the whole buffer. Measured:

* reference: one-shot AESGCM.encrypt of SIZE bytes (it also pays for faulting in a fresh
  SIZE-byte output buffer, which a chunked writer reusing small buffers does not);
* AES floor (for information): one-shot AESGCM.encrypt_into an output buffer allocated and
  touched beforehand, i.e. the AES-GCM work alone, the speed no writer can beat;
* plain file (for information): the plaintext itself written to a file in 64 KiB writes,
  no encryption: what the page cache and the disk cost on their own;
* null sink: FileSealer fed SIZE bytes in 64 KiB writes, ciphertext discarded;
* file: the same into a real file (buffered writes, then flush and fsync, as an upload
  is finished), and the share of that spent in the final fsync.

Each is repeated (default 3 times, interleaved) and the best run taken: throughput is a
capacity, and the best run is the one least disturbed by the rest of the machine. Exits 1
if the null-sink or file throughput, before fsync, is below TARGET times the reference.

    .venv/bin/python bench/file_encrypt.py [--mib 256] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.7
WRITE_SIZE = 64 * 1024
MiB = 1024 * 1024


class NullSink:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="plaintext size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--dir", default=None, help="folder for the real file (default: the system temp folder)")
    args = parser.parse_args()

    from whistle import crypto
    from whistle.crypto import AESGCM  # the name whistle.crypto imported from cryptography

    size = args.mib * MiB
    data = os.urandom(size)
    view = memoryview(data)
    key = AESGCM.generate_key(bit_length=256)
    expected = crypto.sealed_file_size(size)

    def reference() -> float:
        aead = AESGCM(key)
        start = time.perf_counter()
        out = aead.encrypt(os.urandom(12), data, b"whst")
        elapsed = time.perf_counter() - start
        assert len(out) == size + 16
        return elapsed

    floor_buffer = bytearray(size + 16)

    def aes_floor() -> float:
        aead = AESGCM(key)
        start = time.perf_counter()
        aead.encrypt_into(os.urandom(12), data, b"whst", floor_buffer)
        return time.perf_counter() - start

    def feed(sealer: crypto.FileSealer) -> None:
        for offset in range(0, size, WRITE_SIZE):
            sealer.write(view[offset : offset + WRITE_SIZE])
        sealer.close()

    def null_sink() -> float:
        sink = NullSink()
        start = time.perf_counter()
        feed(crypto.FileSealer(sink, [], data_key=key))
        elapsed = time.perf_counter() - start
        assert sink.written == expected, (sink.written, expected)
        return elapsed

    def real_file(folder: str) -> tuple[float, float]:
        fd, name = tempfile.mkstemp(prefix="whistle-bench-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                start = time.perf_counter()
                feed(crypto.FileSealer(fh, [], data_key=key))
                fh.flush()
                written = time.perf_counter()
                os.fsync(fh.fileno())
                synced = time.perf_counter()
            assert os.path.getsize(name) == expected
            return written - start, synced - start
        finally:
            os.unlink(name)

    def plain_file(folder: str) -> tuple[float, float]:
        fd, name = tempfile.mkstemp(prefix="whistle-bench-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                start = time.perf_counter()
                for offset in range(0, size, WRITE_SIZE):
                    fh.write(view[offset : offset + WRITE_SIZE])
                fh.flush()
                written = time.perf_counter()
                os.fsync(fh.fileno())
                synced = time.perf_counter()
            return written - start, synced - start
        finally:
            os.unlink(name)

    folder = args.dir or tempfile.gettempdir()
    refs, floors, nulls, files_written, files_synced, plain_written, plain_synced = [], [], [], [], [], [], []
    reference()  # warm-up: first touch of the output allocation
    for _ in range(args.repeat):
        refs.append(reference())
        floors.append(aes_floor())
        nulls.append(null_sink())
        w, s = real_file(folder)
        files_written.append(w)
        files_synced.append(s)
        w, s = plain_file(folder)
        plain_written.append(w)
        plain_synced.append(s)

    def rate(seconds: float) -> float:
        return size / seconds / MiB

    ref_rate = rate(min(refs))
    rows = [
        ("one-shot AESGCM.encrypt (reference)", refs),
        ("AES floor: encrypt_into, buffer ready", floors),
        ("FileSealer -> null sink", nulls),
        ("FileSealer -> file, before fsync", files_written),
        ("FileSealer -> file, with fsync", files_synced),
        ("plain write, no encryption, before fsync", plain_written),
        ("plain write, no encryption, with fsync", plain_synced),
    ]
    print(f"file_encrypt: {args.mib} MiB of random data in {WRITE_SIZE // 1024} KiB writes, "
          f"best of {args.repeat} runs; file in {folder}")
    for label, times in rows:
        raw = " ".join(f"{t * 1000:.0f}" for t in times)
        print(f"  {label:<42} {rate(min(times)):8.1f} MiB/s  {rate(min(times)) / ref_rate:5.2f}x   (ms: {raw})")
    ok = True
    for label, times in rows[2:4]:
        ratio = rate(min(times)) / ref_rate
        verdict = "OK" if ratio >= TARGET else "MISSED"
        ok &= ratio >= TARGET
        print(f"  ratio {label} / reference = {ratio:.3f} (target >= {TARGET}) {verdict}")
    floor_rate = rate(min(floors))
    print(f"  (against the AES floor: null sink {rate(min(nulls)) / floor_rate:.2f}x, "
          f"file before fsync {rate(min(files_written)) / floor_rate:.2f}x)")
    fsync_share = (min(files_synced) - min(files_written)) / min(files_synced)
    print(f"  (with fsync: {rate(min(files_synced)) / ref_rate:.3f}x; the fsync is {fsync_share:.0%} of that run: "
          "the disk's speed, not the sealer's, not held to the target)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
