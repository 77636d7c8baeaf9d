// The official openai Node SDK against `chatterbox-worker serve`.
//
// Run by tests/sdk.rs with OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (the worker's key) and
// SDK_OUT (a folder for the audio it receives, which the test decodes with ffprobe). Every
// check throws on failure; the last line printed is a JSON summary.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Stream } from "openai/streaming";
import { VERSION } from "openai/version";

const out = process.env.SDK_OUT;
const client = new OpenAI({ maxRetries: 0 });
const sentences = Array.from({ length: 8 }, (_, i) => `This is sentence number ${i + 1} of the streamed answer.`).join(" ");
const summary = { sdk: `openai-node ${VERSION}` };
const speak = (extra) => client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "Hello there.", ...extra });

// Every format, whole.
for (const format of ["mp3", "opus", "aac", "flac", "wav", "pcm"]) {
  const audio = Buffer.from(await (await speak({ response_format: format })).arrayBuffer());
  assert.ok(audio.length > 0, format);
  writeFileSync(join(out, `node_whole.${format}`), audio);
}

// Streamed: the first piece is read while the body is still open, and more follow.
{
  const response = await speak({ input: sentences, voice: { id: "nova" }, response_format: "opus" });
  assert.equal(response.headers.get("content-type"), "audio/ogg");
  assert.equal(response.headers.get("content-length"), null);
  const reader = response.body.getReader();
  const first = await reader.read();
  assert.ok(!first.done && first.value.length > 0, "a first piece");
  const pieces = [Buffer.from(first.value)];
  for (let piece = await reader.read(); !piece.done; piece = await reader.read()) pieces.push(Buffer.from(piece.value));
  assert.ok(pieces.length > 1, "nothing followed the first piece");
  writeFileSync(join(out, "node_streamed.opus"), Buffer.concat(pieces));
  summary.streamed_pieces = pieces.length;
}

// SSE through the SDK's own stream parser.
{
  const response = await speak({ input: sentences, response_format: "mp3", stream_format: "sse" });
  assert.match(response.headers.get("content-type"), /^text\/event-stream/);
  const events = [];
  for await (const event of Stream.fromSSEResponse(response, new AbortController())) events.push(event);
  const types = events.map((e) => e.type);
  assert.ok(types.slice(0, -1).every((t) => t === "speech.audio.delta") && types.at(-1) === "speech.audio.done", types.join());
  const usage = events.at(-1).usage;
  for (const key of ["input_tokens", "output_tokens", "total_tokens"]) assert.ok(Number.isInteger(usage[key]), key);
  assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
  writeFileSync(join(out, "node_sse.mp3"), Buffer.concat(events.slice(0, -1).map((e) => Buffer.from(e.audio, "base64"))));
  summary.sse_deltas = events.length - 1;
}

// 4096 characters are spoken; 4097 are refused on `input`; other bad fields name themselves.
const long = "Every word of this input counts toward the limit. ".repeat(100).slice(0, 4096);
writeFileSync(join(out, "node_4096.mp3"), Buffer.from(await (await speak({ input: long })).arrayBuffer()));
for (const [body, param] of [
  [{ input: long + "x" }, "input"],
  [{ voice: "nobody" }, "voice"],
  [{ response_format: "m4a" }, "response_format"],
  [{ speed: 10 }, "speed"],
]) {
  await assert.rejects(speak(body), (error) => error instanceof OpenAI.BadRequestError && error.param === param, JSON.stringify(body));
}

const models = [];
for await (const model of client.models.list()) models.push(model.id);
assert.ok(models.includes("tts-1") && models.some((m) => m.startsWith("chatterbox")), models.join());

await assert.rejects(new OpenAI({ apiKey: "sk-wrong", maxRetries: 0 }).models.list(), (e) => e instanceof OpenAI.AuthenticationError);
summary.models = models;
console.log(JSON.stringify(summary));
