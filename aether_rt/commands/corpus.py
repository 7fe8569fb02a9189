"""``aether-rt corpus``: the synthetic training corpus, its families and examples."""

from __future__ import annotations

import argparse


def cmd_corpus(args: argparse.Namespace) -> int:
    """Print the families (weight and count in the first N IRs); draw examples; build the cache."""
    from aether_rt.commands.model import _corpus_progress, _image_path
    from aether_rt.data.datasets import SYNTHETIC_VERSION, load_dataset
    from aether_rt.data.examples import family_indices, save_examples
    from aether_rt.data.synthetic import family_weights

    counts = family_indices(args.n, args.seed)
    print(f"synthetic corpus v{SYNTHETIC_VERSION}, seed {args.seed}: {args.n} IRs")
    print("| family | weight | IRs |")
    print("|---|---|---|")
    for name, weight in family_weights().items():
        print(f"| {name} | {weight:.0%} | {len(counts[name])} |")
    if args.examples:
        out = _image_path(args.examples)
        save_examples(out, per_family=args.per_family, seed=args.seed)
        print(f"wrote {out}")
    if args.build:
        data = load_dataset(f"synthetic:{args.n}", seed=args.seed, progress=_corpus_progress)
        print(f"corpus ready: {len(data)} IRs (cached)")
    return 0
