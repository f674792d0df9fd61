"""``cogsim sample RUN_DIR --prompt TEXT``: continue a prompt with the model of a trained run (its
tokenizer and checkpoint), printing the prompt and the generated text."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cogsim.data.tokenizer import EOT
from cogsim.errors import CogsimError
from cogsim.runs import load_run
from cogsim.sampling import generate
from cogsim.train.trainer import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by cogsim run")
    parser.add_argument("--prompt", default="", help="text to continue (default: the start of a new document)")
    parser.add_argument("--tokens", type=int, default=100, metavar="N", help="tokens to generate (default: 100)")
    parser.add_argument("--temperature", type=float, default=0.8, metavar="T",
                        help="0: always the most likely token; higher: more varied text (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=0, metavar="K",
                        help="draw only from the K most likely tokens (default: 0, all of them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> int:
    for flag, value, ok in (("--tokens", args.tokens, args.tokens >= 1),
                            ("--temperature", args.temperature, args.temperature >= 0),
                            ("--top-k", args.top_k, args.top_k >= 0)):
        if not ok:
            raise CogsimError(f"{flag} {value}: must be {'at least 1' if flag == '--tokens' else '≥ 0'}")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CogsimError(f"{run_dir}: no such run folder")
    loaded = load_run(run_dir, device=resolve_device(args.device))
    if loaded.spec.task is not None:
        raise CogsimError(f"{run_dir}: a run of the synthetic task '{loaded.spec.task.name}' has no text to "
                          "continue; sample works on runs trained on text")
    tok = loaded.tokenizer
    eot = tok.token_to_id(EOT)
    prompt = tok.encode(args.prompt, add_special_tokens=False).ids if args.prompt else []
    new = generate(loaded.model, prompt or [eot], args.tokens, temperature=args.temperature, top_k=args.top_k,
                   stop=eot, generator=torch.Generator().manual_seed(args.seed))
    sys.stdout.write(args.prompt + tok.decode(new) + "\n")
    return 0
