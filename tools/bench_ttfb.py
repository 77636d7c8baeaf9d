"""Time to first byte against time to the whole answer of `POST /v1/audio/speech`.

Starts `chatterbox-worker serve` (the binary given) on a free port with the environment it is
run with, waits for /ping, speaks one warm-up request (the model load and the voice's
conditioning are not what is measured), then times each format over several rounds, taking the formats in turn. Python's
standard library only, so it runs anywhere the binary does.

    python3 tools/bench_ttfb.py BINARY [--rounds 3] [--sentences 6] [--formats pcm,mp3]

For the tiny checkpoint: CHATTERBOX_CHECKPOINT_DIR=tests/fixtures/checkpoints/tiny
CHATTERBOX_MAX_NEW_TOKENS=40. Prints one JSON line per format (medians and ranges, seconds).
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, worker, limit_s=600):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            sys.exit(f"the worker exited with {worker.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("the worker never became ready")


def speak(port, text, fmt):
    """(seconds to the first body byte, seconds to the end, bytes) of one request."""
    body = json.dumps({"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/audio/speech", body, {"content-type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        sys.exit(f"{fmt}: {response.status} {response.read()[:300]!r}")
    first = response.read1(65536)
    ttfb = time.perf_counter() - start
    size = len(first)
    while chunk := response.read1(65536):
        size += len(chunk)
    return ttfb, time.perf_counter() - start, size


def summary(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--formats", default="pcm,mp3")
    args = parser.parse_args()
    text = " ".join(
        f"This is sentence number {i}, one of several that the worker speaks in turn."
        for i in range(1, args.sentences + 1)
    )
    port = free_port()
    env = dict(os.environ)
    volume = tempfile.mkdtemp(prefix="bench-ttfb-")
    env.setdefault("CHATTERBOX_VOLUME", volume)
    env.setdefault("CHATTERBOX_PRELOAD", "1")
    worker = subprocess.Popen([args.binary, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, worker)
        speak(port, text, "pcm")
        formats = args.formats.split(",")
        # Rounds alternate between the formats, so the machine's drift spreads over all.
        timings = {fmt: [] for fmt in formats}
        for _ in range(args.rounds):
            for fmt in formats:
                timings[fmt].append(speak(port, text, fmt))
        for fmt, rounds in timings.items():
            print(json.dumps({
                "format": fmt,
                "text_chars": len(text),
                "first_byte_s": summary([r[0] for r in rounds]),
                "whole_s": summary([r[1] for r in rounds]),
                "bytes": rounds[-1][2],
            }))
    finally:
        worker.terminate()
        worker.wait()


if __name__ == "__main__":
    main()
