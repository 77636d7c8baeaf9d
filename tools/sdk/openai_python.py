"""The official openai Python SDK against `chatterbox-worker serve`.

Run by tests/sdk.rs with OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (the key the worker was started
with) and SDK_OUT (a folder for the audio it receives, which the test decodes with ffprobe).
Every check raises on failure; the last line printed is a JSON summary.
"""

import base64
import json
import os
import pathlib

import openai
from openai._streaming import SSEDecoder

OUT = pathlib.Path(os.environ["SDK_OUT"])
SENTENCES = " ".join(f"This is sentence number {i} of the streamed answer." for i in range(1, 9))
client = openai.OpenAI()
summary = {"sdk": f"openai-python {openai.__version__}"}


def speak(**extra):
    request = {"model": "tts-1", "voice": "alloy", "input": "Hello there.", **extra}
    return client.audio.speech.create(**request)


# Every format, whole.
for fmt in ["mp3", "opus", "aac", "flac", "wav", "pcm"]:
    audio = speak(response_format=fmt).content
    assert len(audio) > 0, fmt
    (OUT / f"python_whole.{fmt}").write_bytes(audio)

# Streamed: the first piece arrives while the answer is still open, and more pieces follow.
with client.audio.speech.with_streaming_response.create(
    model="tts-1", voice={"id": "nova"}, input=SENTENCES, response_format="mp3"
) as response:
    assert response.headers.get("content-type") == "audio/mpeg", response.headers
    assert "content-length" not in response.headers, "a streamed answer has no length up front"
    pieces = response.iter_bytes()
    first = next(pieces)
    assert not response.http_response.is_closed, "the answer ended with its first piece"
    rest = b"".join(pieces)
    assert rest, "nothing followed the first piece"
    (OUT / "python_streamed.mp3").write_bytes(first + rest)
    summary["streamed_first_bytes"] = len(first)
    summary["streamed_bytes"] = len(first) + len(rest)

# SSE: the SDK's own event parser; deltas put together are one file, the last event is done.
with client.audio.speech.with_streaming_response.create(
    model="tts-1", voice="alloy", input=SENTENCES, response_format="wav", stream_format="sse"
) as response:
    assert response.headers.get("content-type", "").startswith("text/event-stream")
    events = [event.json() for event in SSEDecoder().iter_bytes(response.iter_bytes())]
types = [event["type"] for event in events]
assert set(types[:-1]) == {"speech.audio.delta"} and types[-1] == "speech.audio.done", types
usage = events[-1]["usage"]
assert all(isinstance(usage[key], int) for key in ["input_tokens", "output_tokens", "total_tokens"])
assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0, usage
joined = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
(OUT / "python_sse.wav").write_bytes(joined)
summary["sse_deltas"] = len(events) - 1

# The longest input OpenAI takes is spoken; one character more is refused on `input`.
long_text = ("Every word of this input counts toward the limit. " * 100)[:4096]
(OUT / "python_4096.mp3").write_bytes(speak(input=long_text).content)
for body, param in [
    ({"input": long_text + "x"}, "input"),
    ({"voice": "nobody"}, "voice"),
    ({"response_format": "m4a"}, "response_format"),
    ({"speed": 10}, "speed"),
]:
    arguments = {"model": "tts-1", "voice": "alloy", "input": "Hi.", **body}
    try:
        client.audio.speech.create(**arguments)
    except openai.BadRequestError as error:
        assert error.param == param, (body, error.param, error.body)
    else:
        raise AssertionError(f"{body} was not refused")

# Listings and a route the worker lacks.
models = [model.id for model in client.models.list()]
assert "tts-1" in models and any(m.startswith("chatterbox") for m in models), models
try:
    client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"))
except openai.NotFoundError:
    pass
else:
    raise AssertionError("an unknown route answered")

# Without the key, or with a wrong one.
for client_of, headers in [(client, {"Authorization": openai.omit}), (openai.OpenAI(api_key="sk-wrong"), {})]:
    try:
        client_of.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_headers=headers)
    except openai.AuthenticationError as error:
        assert error.code in ("missing_api_key", "invalid_api_key", None), error.body
    else:
        raise AssertionError(f"{headers or 'a wrong key'} was let in")

summary["models"] = models
print(json.dumps(summary))
