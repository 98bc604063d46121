"""Why tuner keeps decoded images in memory and augments in groups, measured in one run.

1. One training epoch of a small model (``--family``: mlp width 16 or cnn width 8) over N images of SIZE x SIZE pixels, fed three ways:

   (a) tensor:  indexing an in-memory tensor per batch (tuner's path after the one-off decode);
   (b) loader:  ``DataLoader(TensorDataset)``, same tensors, default collate;
   (c) decode:  ``DataLoader`` over the PNG files, decoding and resizing every epoch
       (what an uncached ImageFolder does), with ``--workers`` processes.

   Prints (b)/(a) and (c)/(a); the one-off cost of tuner's decode (``load_imagefolder``) is
   printed as a multiple of one (a) epoch (it is paid once per process, not per epoch).

2. Augmentation of one batch (flip, rotation, resized crop, colour jitter): tuner's grouped
   call (16 v2 calls per batch) against a per-image loop of the same v2 transforms, and
   against one epoch's training step on that batch (forward + backward).

CPU only here (no GPU in this task); the machine is shared, so compare ratios, not times.
Run: ``python benchmarks/data_models.py [--n 2000] [--size 32] [--workers 2] [--family mlp|cnn]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--family", choices=("mlp", "cnn"), default="mlp")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, TensorDataset

    from objectives.augment import Augment, make_augmenter
    from objectives.images import _Decode, _pil_loader, load_imagefolder
    from objectives.models import ModelSpec, build_model
    from search_spaces.params import HParams

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imgs"
        for c in range(2):
            (root / f"class{c}").mkdir(parents=True)
        for i in range(args.n):
            arr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(arr, "RGB").save(root / f"class{i % 2}" / f"{i}.png")

        size = (args.size, args.size)
        ds = load_imagefolder(root, "imagefolder:bench", image_size=size, workers=args.workers)  # warm
        decode_once = _best(
            lambda: load_imagefolder(root, "imagefolder:bench", image_size=size, workers=args.workers),
            args.repeat,
        )
        X, y = torch.as_tensor(ds.X), torch.as_tensor(ds.y)
        hp = HParams(width=16 if args.family == "mlp" else 8, depth=2, batch_size=args.batch)
        model = build_model(
            ModelSpec(args.family, (3, *size), 2), hp, torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
        )
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()

        def tensor_epoch() -> None:
            perm = torch.randperm(len(X))
            for s in range(0, len(X), args.batch):
                rows = perm[s : s + args.batch]
                step(X[rows], y[rows])

        tensor_loader = DataLoader(TensorDataset(X, y), batch_size=args.batch, shuffle=True)

        def loader_epoch() -> None:
            for xb, yb in tensor_loader:
                step(xb, yb)

        from torchvision.datasets import DatasetFolder

        folder = DatasetFolder(str(root), loader=_pil_loader, extensions=(".png",))
        folder.transform = _Decode(size, "RGB")
        decode_loader = DataLoader(
            folder,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )

        def decode_epoch() -> None:
            for xb, yb in decode_loader:
                step(xb.float() / 255.0, yb)

        a = _best(tensor_epoch, args.repeat)
        b = _best(loader_epoch, args.repeat)
        c = _best(decode_epoch, args.repeat)
        print(
            f"1. one epoch of a {args.family} (width {hp.width}) on {args.n} images of {args.size}x{args.size}, batch {args.batch}:"
        )
        print(f"   (a) in-memory tensor      {a * 1000:8.1f} ms   (baseline)")
        print(f"   (b) DataLoader(tensors)   {b * 1000:8.1f} ms   ({b / a:.2f}x (a))")
        print(f"   (c) decode every epoch    {c * 1000:8.1f} ms   ({c / a:.2f}x (a), {args.workers} workers)")
        print(
            f"   tuner's one-off decode    {decode_once * 1000:8.1f} ms   ({decode_once / a:.2f} epochs of (a))"
        )

        batch = X[: args.batch]
        v2_aug = Augment(hflip=0.5, rotation=20, crop_scale=0.6, color_jitter=0.3)
        grouped = make_augmenter(v2_aug, (3, *size))
        from torchvision.transforms import v2

        per_image = v2.Compose(
            [
                v2.RandomHorizontalFlip(0.5),
                v2.RandomRotation(20),
                v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                v2.ColorJitter(0.3, 0.3, 0.3),
            ]
        )

        def loop() -> None:
            torch.stack([per_image(img) for img in batch])

        g = statistics.median([_best(lambda: grouped(batch), 1) for _ in range(args.repeat * 3)])
        p = statistics.median([_best(loop, 1) for _ in range(args.repeat)])
        s = statistics.median(
            [_best(lambda: step(batch, y[: args.batch]), 1) for _ in range(args.repeat * 3)]
        )
        print(f"2. augmenting one batch of {args.batch} ({args.size}x{args.size} RGB):")
        print(f"   grouped (16 v2 calls)     {g * 1000:8.2f} ms   (baseline)")
        print(f"   per-image v2 loop         {p * 1000:8.2f} ms   ({p / g:.2f}x grouped)")
        print(f"   training step, same batch {s * 1000:8.2f} ms   (grouped augment = {g / s:.2f}x a step)")


if __name__ == "__main__":
    main()
