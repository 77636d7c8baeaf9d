"""S3Gen's flow matching (chatterbox/models/s3gen/flow_matching.py CausalConditionalCFM) with its
estimator (decoder.py ConditionalDecoder): the original model's 10-step Euler solve with CFG and
Turbo's 2-step meanflow solve, run through the reference's own `forward` with the noise injected
(torch.randn_like patched) and every estimator call recorded (input state, t, r, raw output).

The committed fixtures use a reduced U-Net (1 transformer block per level, 2 mid blocks) on 50
frames and keep the estimator calls of a few steps; `--full` runs the real configuration on
T = 2·(250 + 100) = 700 frames (a 250-token prompt and 100 generated tokens), records every call
and prints the reference's timings."""

import time
from contextlib import contextmanager
from pathlib import Path

import torch

import chatterbox.models.s3gen.flow_matching as flow_matching
from chatterbox.models.s3gen.configs import CFM_PARAMS
from chatterbox.models.s3gen.decoder import ConditionalDecoder
from chatterbox.models.s3gen.flow_matching import CausalConditionalCFM

from common import seed_module, write_fixture

SEED = 0xCF3
INPUT_SEED = 77


def config(meanflow: bool, full: bool) -> dict:
    """The Rust `ConditionalDecoderConfig`; the values S3Gen passes (s3gen.py) unless reduced."""
    return {"in_channels": 320, "out_channels": 80, "channels": 256, "attention_head_dim": 64,
            "n_blocks": 4 if full else 1, "num_mid_blocks": 12 if full else 2, "num_heads": 8,
            "meanflow": meanflow}


def build(cfg: dict) -> tuple[CausalConditionalCFM, dict]:
    estimator = ConditionalDecoder(
        in_channels=cfg["in_channels"], out_channels=cfg["out_channels"], causal=True,
        channels=[cfg["channels"]], dropout=0.0, attention_head_dim=cfg["attention_head_dim"],
        n_blocks=cfg["n_blocks"], num_mid_blocks=cfg["num_mid_blocks"], num_heads=cfg["num_heads"],
        act_fn="gelu", meanflow=cfg["meanflow"])
    cfm = CausalConditionalCFM(spk_emb_dim=80, cfm_params=CFM_PARAMS, estimator=estimator).eval()
    # Keys as in the checkpoint under `flow.decoder.`: `estimator.*`.
    manifest = seed_module(cfm, SEED + int(cfg["meanflow"]))
    return cfm, manifest


def inputs(frames: int, prompt_frames: int, generator: torch.Generator) -> dict:
    """Stand-ins for the flow's conditioning: mu (encoder output), the projected speaker
    embedding, and the prompt mel (log-mel-like values) followed by zeros."""
    mu = torch.randn(1, 80, frames, generator=generator)
    spks = 0.5 * torch.randn(1, 80, generator=generator)
    cond = torch.zeros(1, 80, frames)
    cond[..., :prompt_frames] = torch.randn(1, 80, prompt_frames, generator=generator) - 4.0
    return {"mu": mu, "spks": spks, "cond": cond}


@contextmanager
def recorded(estimator: torch.nn.Module, calls: list):
    """Wraps `estimator.forward` (the solvers call it directly), recording copies of each call's
    state, times and output; solve_euler reuses its input buffers, hence the clones."""
    forward = estimator.forward

    def record(x, mask=None, mu=None, t=None, spks=None, cond=None, r=None):
        started = time.perf_counter()
        out = forward(x, mask=mask, mu=mu, t=t, spks=spks, cond=cond, r=r)
        calls.append({"x": x.clone(), "t": t.clone(), "r": None if r is None else r.clone(),
                      "dxdt": out.clone(), "seconds": time.perf_counter() - started})
        return out

    estimator.forward = record
    try:
        yield
    finally:
        del estimator.forward


@contextmanager
def injected_noise(noise: torch.Tensor):
    """The reference draws z = torch.randn_like(mu) inside `forward`; this hands it `noise`."""
    randn_like = flow_matching.torch.randn_like
    flow_matching.torch.randn_like = lambda like: noise.clone()
    try:
        yield
    finally:
        flow_matching.torch.randn_like = randn_like


def solve(cfm, data: dict, noise: torch.Tensor, steps: int, meanflow: bool, noised_mels=None):
    calls = []
    mask = torch.ones(1, 1, noise.shape[-1])
    started = time.perf_counter()
    with injected_noise(noise), recorded(cfm.estimator, calls):
        mel, _ = cfm(data["mu"], mask, n_timesteps=steps, spks=data["spks"], cond=data["cond"],
                     noised_mels=noised_mels, meanflow=meanflow)
    return mel, calls, time.perf_counter() - started


def case(out_dir: Path, name: str, meanflow: bool, full: bool):
    cfg = config(meanflow, full)
    cfm, manifest = build(cfg)
    frames, prompt_frames = (700, 500) if full else (50, 20)
    generator = torch.Generator().manual_seed(INPUT_SEED)
    data = inputs(frames, prompt_frames, generator)
    noise = torch.randn(1, 80, frames, generator=generator)
    steps = 2 if meanflow else 10
    noised_mels = None
    if meanflow:
        # Turbo's s3gen.flow_inference draws noise for the generated part too; forward writes
        # it over z[..., prompt:]. The port is handed the final z.
        noised_mels = torch.randn(1, 80, frames - prompt_frames, generator=generator)
    mel, calls, seconds = solve(cfm, data, noise, steps, meanflow, noised_mels)
    assert len(calls) == steps
    z = calls[0]["x"][:1].clone()
    if noised_mels is not None:
        assert torch.equal(z[..., prompt_frames:], noised_mels)
    assert torch.isfinite(mel).all(), f"{name}: non-finite mel"

    kept = range(steps) if full or meanflow else (0, 5, steps - 1)
    outputs = {"mel": mel}
    for k in kept:
        call = calls[k]
        # The CFG batch repeats x; one row is the state.
        outputs[f"step{k}.x"] = call["x"][:1]
        outputs[f"step{k}.t"] = call["t"][:1]
        if call["r"] is not None:
            outputs[f"step{k}.r"] = call["r"][:1]
        outputs[f"step{k}.dxdt"] = call["dxdt"]
    if not meanflow:
        # Random weights must leave the conditioning visible, or the CFG test proves little.
        dxdt = calls[0]["dxdt"]
        gap = float((dxdt[0] - dxdt[1]).norm() / dxdt[0].norm())
        print(f"  {name}: conditional vs unconditional velocity, relative gap {gap:.2f}")
        assert gap > 0.05, "the estimator barely depends on its conditioning"
    per_call = sum(c["seconds"] for c in calls) / len(calls)
    print(f"  {name}: reference {torch.get_num_threads()} threads, T = {frames}: "
          f"solve {seconds:.2f} s, estimator call {per_call:.2f} s (mean of {steps})")
    write_fixture(out_dir, name, "s3gen_flow",
                  {"decoder": cfg, "steps": steps, "kept_steps": list(kept)}, manifest,
                  inputs=data, outputs=outputs, noise={"z": z})


def generate(out_dir: Path, full: bool):
    suffix = "_full" if full else ""
    case(out_dir, f"s3gen_flow_cfg{suffix}", meanflow=False, full=full)
    case(out_dir, f"s3gen_flow_meanflow{suffix}", meanflow=True, full=full)
