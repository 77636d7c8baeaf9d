"""S3Gen's flow encoder (models/s3gen/transformer/upsample_encoder.py, `UpsampleConformerEncoder`)
built with the arguments s3gen.py passes: embedded tokens (B, T, 512) -> hidden states (B, 2T, 512).

The input stands in for `input_embedding(token) * mask` (flow.py): seeded uniforms with unit
variance that tests/parity/s3gen_encoder.rs regenerates from the config (`xs`: seed, shape, low,
high), so no input is stored. Outputs: the encoder's output and, for the cases that list them in
`stages`, the output of each stage (`embed`, `pre_lookahead_layer`, `encoders`: after the last
of them, `up_layer`: as (B, 2T, C)), so a failure points at the stage.

The committed cases shrink what the reference lets change: fewer `encoders`, a narrower FFN, and
the `up_encoders` list cut after construction (its 4 is hard-coded); widths stay 512, which
`PreLookaheadLayer(512)` and `Upsample1D(512)` hard-code. `--full` runs the real configuration
on 350 tokens and times the reference at 2 threads.
"""

import copy
import math
import time

import torch
from chatterbox.models.s3gen.transformer.upsample_encoder import UpsampleConformerEncoder

from common import seed_module, uniform, write_fixture

MODULE = "s3gen_encoder"
FULL = dict(input_size=512, output_size=512, attention_heads=8, linear_units=2048, num_blocks=6,
            num_up_blocks=4)
REDUCED = dict(FULL, linear_units=512, num_blocks=2, num_up_blocks=2)
STAGES = ("embed", "pre_lookahead_layer", "encoders", "up_layer")
UNIT = math.sqrt(3.0)


def build(config: dict, seed: int):
    model = UpsampleConformerEncoder(
        output_size=config["output_size"],
        attention_heads=config["attention_heads"],
        linear_units=config["linear_units"],
        num_blocks=config["num_blocks"],
        dropout_rate=0.1,
        positional_dropout_rate=0.1,
        attention_dropout_rate=0.1,
        normalize_before=True,
        input_layer="linear",
        pos_enc_layer_type="rel_pos_espnet",
        selfattention_layer_type="rel_selfattn",
        input_size=config["input_size"],
        use_cnn_module=False,
        macaron_style=False,
    ).eval()
    model.up_encoders = model.up_encoders[: config["num_up_blocks"]]
    # q, k and the positional projection at unit variance (±sqrt(3/fan_in)) instead of the
    # harness default: scores then spread by about 1 rather than 0.3, so attention is far from
    # uniform and a wrong relative shift moves the output visibly.
    ranges = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(("linear_q.weight", "linear_k.weight", "linear_pos.weight")):
            bound = math.sqrt(3.0 / tensor.shape[1])
            ranges[name] = (-bound, bound)
    manifest = seed_module(model, seed, ranges=ranges)
    return model, manifest


def run(model: UpsampleConformerEncoder, xs: torch.Tensor):
    """forward with full-length masks (flow.py's batch 1), capturing each stage with hooks."""
    seen = {}
    grab = {
        "embed": lambda out: out[0],
        "pre_lookahead_layer": lambda out: out,
        "encoders": lambda out: out[0],
        "up_layer": lambda out: out[0].transpose(1, 2),
    }
    modules = {"embed": model.embed, "pre_lookahead_layer": model.pre_lookahead_layer,
               "encoders": model.encoders[-1], "up_layer": model.up_layer}
    hooks = [modules[name].register_forward_hook(
        lambda _m, _i, out, name=name: seen.__setitem__(name, grab[name](out).detach().clone()))
        for name in STAGES]
    try:
        lens = torch.full((xs.shape[0],), xs.shape[1], dtype=torch.int64)
        out, masks = model(xs, lens)
    finally:
        for hook in hooks:
            hook.remove()
    assert bool(masks.all()), "full-length inputs must leave the masks all ones"
    return out, seen


def seeded_xs(seed: int, shape):
    spec = {"seed": seed, "shape": list(shape), "low": -UNIT, "high": UNIT}
    return torch.from_numpy(uniform(seed, "xs", list(shape), -UNIT, UNIT)), spec


def case(out_dir, name, config, shape, seed, stages=False, float64=False, timing=False):
    model, manifest = build(config, seed)
    xs, xs_spec = seeded_xs(seed + 1, shape)
    out, seen = run(model, xs)
    assert torch.isfinite(out).all(), f"{name}: non-finite output"
    assert out.shape == (shape[0], 2 * shape[1], config["output_size"])
    reference = copy.deepcopy(model).double()
    out64, _ = run(reference, xs.double())
    gap = float((out.double() - out64).norm() / out64.norm())
    print(f"  {name}: xs {tuple(shape)} -> {tuple(out.shape)}, reference f32 vs f64: rel L2 {gap:.2e}, "
          f"max abs {float((out.double() - out64).abs().max()):.2e}")
    outputs = {"encoded": out}
    meta = {"encoder": config, "xs": xs_spec, "stages": list(STAGES) if stages else [],
            "float64": float64}
    if stages:
        outputs.update(seen)
    if float64:
        outputs["encoded_float64"] = out64.float()
    write_fixture(out_dir, name, MODULE, meta, manifest, {}, outputs)
    if timing:
        time_reference(model, xs)


def time_reference(model, xs, runs=7):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    lens = torch.full((xs.shape[0],), xs.shape[1], dtype=torch.int64)
    times = []
    with torch.inference_mode():
        model(xs, lens)
        for _ in range(runs):
            started = time.perf_counter()
            model(xs, lens)
            times.append(time.perf_counter() - started)
    torch.set_num_threads(threads)
    times.sort()
    print(f"  reference forward, {tuple(xs.shape)}, 2 threads: best {times[0] * 1e3:.0f} ms, "
          f"median {times[len(times) // 2] * 1e3:.0f} ms over {runs} runs")


def generate(out_dir, full):
    if full:
        case(out_dir, "s3gen_encoder_full_350tok", FULL, (1, 350, 512), seed=31, stages=True,
             float64=True, timing=True)
        return
    case(out_dir, "s3gen_encoder_reduced_24tok", REDUCED, (1, 24, 512), seed=41, stages=True)
    # Batch rows of equal length, and the one-token edge where the reference skips rel_shift.
    case(out_dir, "s3gen_encoder_reduced_batch2_5tok", REDUCED, (2, 5, 512), seed=43)
    case(out_dir, "s3gen_encoder_reduced_1tok", REDUCED, (1, 1, 512), seed=45)
