"""Regenerates the parity fixtures from the reference package.

    python tools/parity/generate.py                 # committed fixtures -> tests/fixtures/parity
    python tools/parity/generate.py --full          # full-size fixtures -> ~/.cache/chatterbox-parity/full
    python tools/parity/generate.py --only campplus # one case module

Every module in tools/parity/cases/ exposes `generate(out_dir: Path, full: bool)`.
"""

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size configs and longer inputs (not committed)")
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--only", nargs="*", help="case modules to run (default: all)")
    args = parser.parse_args()

    default_out = (Path(os.environ.get("PARITY_CACHE", Path.home() / ".cache" / "chatterbox-parity")) / "full"
                   if args.full else ROOT / "tests" / "fixtures" / "parity")
    out = args.out or default_out
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.manual_seed(0)

    names = args.only or sorted(p.stem for p in (HERE / "cases").glob("*.py") if not p.stem.startswith("_"))
    for name in names:
        print(f"{name}:")
        module = importlib.import_module(f"cases.{name}")
        with torch.no_grad():
            module.generate(out, args.full)


if __name__ == "__main__":
    main()
