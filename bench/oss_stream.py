"""OSS streaming benchmark: upload and download one large object through the official SDK.

Starts an emulator process, writes a temp file of ``--size-mb`` MiB, uploads it with the SDK
uploader (multipart), downloads it with the SDK downloader (ranged GETs, CRC checked by the
SDK), and samples the emulator process's RSS in a thread. Constant memory means the peak RSS
grows by far less than the object size.

    .venv/bin/python bench/oss_stream.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulator.control import EmulatorProcess  # noqa: E402

MIB = 1024 * 1024


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(4 * MIB)
    with open(path, "wb") as fh:
        remaining = size
        while remaining > 0:
            n = min(remaining, len(block))
            fh.write(block[:n])
            remaining -= n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="object size in MiB (default 1024)")
    parser.add_argument("--part-mb", type=int, default=6, help="uploader/downloader part size in MiB")
    parser.add_argument("--parallel", type=int, default=3, help="parallel parts (SDK default 3)")
    args = parser.parse_args(argv)

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    import alibabacloud_oss_v2 as oss

    size = args.size_mb * MIB
    with tempfile.TemporaryDirectory(prefix="oss-bench-") as tmp, EmulatorProcess(time_scale=1) as emu:
        src, dst = Path(tmp) / "src.bin", Path(tmp) / "dst.bin"
        _write_file(src, size)
        assert emu.proc is not None
        emu_proc = psutil.Process(emu.proc.pid)
        cfg = oss.config.load_default()
        cfg.region, cfg.endpoint, cfg.use_path_style = "cn-hangzhou", emu.base_url, True
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(emu.access_key_id,
                                                                             emu.access_key_secret)
        client = oss.Client(cfg)
        client.put_bucket(oss.PutBucketRequest(bucket="bench"))
        rss_start = emu_proc.memory_info().rss
        sampler = RssSampler(emu.proc.pid)
        sampler.start()

        t0 = time.perf_counter()
        up = client.uploader(part_size=args.part_mb * MIB, parallel_num=args.parallel).upload_file(
            oss.PutObjectRequest(bucket="bench", key="big.bin"), str(src))
        t_up = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.downloader(part_size=args.part_mb * MIB, parallel_num=args.parallel).download_file(
            oss.GetObjectRequest(bucket="bench", key="big.bin"), str(dst))
        t_down = time.perf_counter() - t0
        peak = sampler.stop()
        rss_end = emu_proc.memory_info().rss
        ok = dst.stat().st_size == size

    rows = [
        ("object size", f"{args.size_mb} MiB ({args.part_mb} MiB parts, {args.parallel} parallel)"),
        ("upload", f"{t_up:.2f} s  {args.size_mb / t_up:.1f} MiB/s  (ETag {up.etag}, CRC {up.hash_crc64})"),
        ("download", f"{t_down:.2f} s  {args.size_mb / t_down:.1f} MiB/s  (SDK CRC check passed, size ok: {ok})"),
        ("emulator RSS after start", f"{rss_start / MIB:.1f} MiB"),
        ("emulator RSS peak", f"{peak / MIB:.1f} MiB  (+{(peak - rss_start) / MIB:.1f} MiB)"),
        ("emulator RSS at end", f"{rss_end / MIB:.1f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    print("OSS streaming benchmark (alibabacloud-oss-v2 uploader/downloader vs emulator)")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
