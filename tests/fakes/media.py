"""Media files made on the spot, as a provider would deliver them (tests and bench/wechat.py).

`noise_clip` makes an MP4 whose size is set by its content, not by its length: noise defeats
compression, so a few seconds at a small size are tens of megabytes, quickly (MPEG-4 part 2 at
the finest quantiser encodes far faster than H.264). With `bit_rate` the encoder aims at that
rate instead, and `noise` (0..255) sets how much of each frame is noise over a moving gradient.
"""

from __future__ import annotations

import io
from fractions import Fraction

__all__ = ["noise_clip"]


def noise_clip(*, seconds: int, width: int, height: int, fps: int = 25, audio: bool = True,
               bit_rate: int | None = None, noise: int = 255, seed: int = 1) -> bytes:
    """An MP4 (MPEG-4 video, AAC tone if `audio`) of `seconds` × `fps` frames."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    ramp = (np.arange(width, dtype=np.uint16)[None, :, None] * 255 // max(1, width - 1))
    base = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    pool = [rng.integers(0, noise + 1, (height, width, 3), dtype=np.uint8)
            for _ in range(7 if noise < 255 else 0)]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if bit_rate is None:
            video.options = {"qscale": "1"}
            video.bit_rate = 200_000_000
        else:
            video.bit_rate = bit_rate
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=44_100)
            sound.layout = "mono"
        for i in range(seconds * fps):
            if noise >= 255:
                frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:  # wraps around past 255: more noise, which is the point
                frame = np.roll(base, i * 4, axis=1) + pool[i % len(pool)]
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            step = 1024
            for start in range(0, seconds * 44_100 - step + 1, step):
                t = (np.arange(step) + start) / 44_100
                samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
                chunk = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 44_100, start
                chunk.time_base = Fraction(1, 44_100)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return buffer.getvalue()
