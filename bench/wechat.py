"""WeChat benchmarks. The transcode part: a 20 MB, 10 s, 1080p clip made to fit WeChat's 10 MB.

`bot.wechat._media.transcode_video` (PyAV: decode, scale to 720 lines, libx264 `veryfast` at the
bitrate the 10 MB budget leaves, AAC 64 kbit/s) against the `ffmpeg` command line doing the same
with the same settings: the same size, scaler (bilinear), preset, bitrate, VBV cap and buffer,
and audio. Both read the clip from and write the result to memory or a temp directory on the
same disk; each runs `--rounds` times (3), alternating, and the table shows the median and the
range. Ratio = ffmpeg's median seconds / ours (≥ 0.9 is the target: within 10 % of ffmpeg).
Without `ffmpeg` on PATH, it prints our seconds per second of video instead.

The clip: MPEG-4 at about 16 Mbit/s of a moving gradient under noise, with an AAC tone
(`tests.fakes.media.noise_clip`); making it takes half a minute, so `--clip PATH` keeps it
between runs (made there when missing).

    python bench/wechat.py transcode
    python bench/wechat.py transcode --rounds 5 --clip /tmp/clip1080.mp4

The messages part (`bench/_wechat_messages.py`, its docstring says what is measured): signed
`/balance` text messages from 100 users at once through `/wechat` against a bare aiohttp handler
that parses the XML and answers a fixed passive reply; messages/s and p99 of both, the ratio.

    python bench/wechat.py messages
    python bench/wechat.py messages --mode active --pg-url postgresql+asyncpg://…/bench

The profile part (`bench/_wechat_profile.py`): SQL statements and transactions, CPU, and the
event loop's cProfile per message through `/wechat`.

    python bench/wechat.py profile --users 1 --messages 200 --cprofile 25
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python bench/wechat.py`: the project root, not bench/, goes first on sys.path
    # (bench/wallet.py would otherwise shadow the `wallet` package).
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time

from bench import _wechat_messages, _wechat_profile
from bot.wechat._media import AUDIO_BPS, Plan, plan_video, transcode_video
from tests.fakes.media import noise_clip

MB = 1024 * 1024
LIMIT = 10 * MB


def make_clip(path: Path | None) -> bytes:
    """The 20 MB, 10 s, 1080p clip (from `path` when it is there)."""
    if path is not None and path.exists():
        return path.read_bytes()
    data = noise_clip(seconds=10, width=1920, height=1080, bit_rate=16_000_000, noise=60)
    if path is not None:
        path.write_bytes(data)
    return data


def time_pyav(data: bytes) -> tuple[float, int]:
    """Seconds for `transcode_video` and the result's size."""
    start = time.perf_counter()
    out = transcode_video(data, LIMIT)
    elapsed = time.perf_counter() - start
    if out is None:
        raise SystemExit("transcode_video declined the clip")
    return elapsed, len(out)


def ffmpeg_command(plan: Plan, src: Path, dst: Path) -> list[str]:
    """The command line that does what `transcode_video` does."""
    bps = str(plan.video_bps)
    return ["ffmpeg", "-v", "error", "-y", "-i", str(src),
            "-vf", f"scale={plan.width}:{plan.height}:flags=bilinear", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", bps, "-maxrate", bps,
            "-bufsize", str(plan.video_bps * 2),
            "-c:a", "aac", "-b:a", str(AUDIO_BPS), "-ar", "44100", "-ac", "2",
            "-f", "mp4", str(dst)]


def time_ffmpeg(plan: Plan, src: Path, dst: Path) -> tuple[float, int]:
    start = time.perf_counter()
    subprocess.run(ffmpeg_command(plan, src, dst), check=True)
    return time.perf_counter() - start, dst.stat().st_size


def _fmt(samples: list[float]) -> str:
    return f"{statistics.median(samples):6.2f} s [{min(samples):.2f}-{max(samples):.2f}]"


def transcode(rounds: int, clip: Path | None) -> int:
    """Runs the transcode comparison; prints the table; returns an exit code."""
    t0 = time.perf_counter()
    data = make_clip(clip)
    plan = plan_video(data, LIMIT)
    if plan is None:
        raise SystemExit("the clip cannot fit: nothing to measure")
    print(f"clip: {len(data) / MB:.1f} MB, {plan.seconds:.1f} s, 1920x1080 "
          f"(ready in {time.perf_counter() - t0:.1f} s); plan: {plan.width}x{plan.height}, "
          f"video {plan.video_bps / 1000:.0f} kbit/s, audio {AUDIO_BPS // 1000} kbit/s")
    ffmpeg = shutil.which("ffmpeg")
    ours: list[float] = []
    theirs: list[float] = []
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-wechat-") as tmp:
        src, dst = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        src.write_bytes(data)
        for i in range(rounds):
            order = ("ours", "ffmpeg") if i % 2 == 0 else ("ffmpeg", "ours")
            for who in order:
                if who == "ours":
                    seconds, sizes["ours"] = time_pyav(data)
                    ours.append(seconds)
                elif ffmpeg:
                    seconds, sizes["ffmpeg"] = time_ffmpeg(plan, src, dst)
                    theirs.append(seconds)
    print(f"pyav   {_fmt(ours)}  -> {sizes['ours'] / MB:.2f} MB")
    failed = sizes["ours"] > LIMIT
    if not theirs:
        per = statistics.median(ours) / plan.seconds
        print(f"ffmpeg not installed: {per:.2f} s per second of video")
        return int(failed)
    print(f"ffmpeg {_fmt(theirs)}  -> {sizes['ffmpeg'] / MB:.2f} MB")
    ratio = statistics.median(theirs) / statistics.median(ours)
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"ratio (ffmpeg seconds / ours) {ratio:.2f}  target >= 0.9  {verdict}; "
          f"result under 10 MB: {'no' if failed else 'yes'}")
    return int(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    tc = sub.add_parser("transcode", help="PyAV transcode vs the ffmpeg command line")
    tc.add_argument("--rounds", type=int, default=3)
    tc.add_argument("--clip", type=Path, default=None, help="keep the clip here between runs")
    ms = sub.add_parser("messages", help="signed messages/s through /wechat vs bare aiohttp")
    _wechat_messages.add_arguments(ms)
    pr = sub.add_parser("profile", help="SQL statements, CPU and a profile per /wechat message")
    _wechat_profile.add_arguments(pr)
    args = parser.parse_args(argv)
    if args.part == "transcode":
        return transcode(args.rounds, args.clip)
    if args.part == "messages":
        return asyncio.run(_wechat_messages.bench_messages(args))
    if args.part == "profile":
        return asyncio.run(_wechat_profile.bench_profile(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
