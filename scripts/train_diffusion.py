"""Train the shipped class-conditional flow-matching U-Net on MNIST, evaluate it, write weights + card.

    GENLAB_DATA_DIR=/path/to/data python scripts/train_diffusion.py --steps 14000 --threads 1
    python scripts/train_diffusion.py --seconds 3600       # a wall-clock budget instead of steps
    python scripts/train_diffusion.py --evaluate-only      # export + card from the last checkpoint

Training (``genlab.tasks.FlowMatchingTask``, ``genlab.models.UNet``) runs through the
:class:`genlab.training.Trainer` with a checkpoint written atomically every ``--checkpoint-every``
steps; running the command again resumes it (the ``--steps``/``--seconds`` budget counts what is
already done), and on a CPU a resumed run is bit-identical to an uninterrupted one, so the card's
command (with the final ``--steps``) reproduces the shipped weights. Training data:
``load_mnist("train")`` (the 5,000 offline digits when the official files are absent). The test
split is used only after training, for the card: FID-MNIST of 1,000 samples (100 per class)
against 1,000 test digits, and the accuracy of genlab's classifier on the
requested digit, for each classifier-free guidance weight in ``--guidance``.

Writes ``<out>`` (EMA weights, float16), ``<out without .pt>.json`` (the card) and ``.md``.
See: book/07_diffusion/flow_matching.ipynb.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import time
from pathlib import Path

import torch

import genlab
from genlab.checkpoint import checkpoint_dir
from genlab.data import load_mnist
from genlab.metrics import classifier_features, frechet_distance, precision_recall
from genlab.models.unet import PRETRAINED_UNETS, UNet, save_unet_weights
from genlab.runtime import seed_everything
from genlab.tasks import FlowMatchingTask
from genlab.training import Trainer


def build_task(args) -> FlowMatchingTask:
    """The model and task of the shipped run (the chapter rebuilds nothing: it loads the weights)."""
    seed_everything(args.seed)
    model = UNet(base_channels=args.base_channels, channel_mults=(1, 2), num_res_blocks=args.res_blocks,
                 attention=True, num_classes=10)
    return FlowMatchingTask(model, lr=args.lr, ema_decay=args.ema, label_dropout=args.label_dropout,
                            warmup_steps=200)


@torch.no_grad()
def evaluate(task: FlowMatchingTask, guidance: list[float], steps: int, seed: int) -> list[dict]:
    """FID-MNIST, precision/recall and requested-digit accuracy on 1,000 samples per guidance weight."""
    from genlab.classifier import load_classifier

    test = load_mnist("test")
    real = test.images[:1000]
    labels = torch.arange(1000) % 10
    classifier = load_classifier()
    real_feats = classifier_features(real)
    rows = []
    for w in guidance:
        start = time.perf_counter()
        fake = torch.cat([task.sample(250, labels=labels[i:i + 250], steps=steps, guidance=w,
                                      generator=torch.Generator().manual_seed(seed + i))
                          for i in range(0, 1000, 250)])
        seconds = time.perf_counter() - start
        predicted = classifier(fake).argmax(1)
        fake_feats = classifier_features(fake)
        pr = precision_recall(real_feats, fake_feats)
        row = {"guidance": w, "fid_mnist": round(frechet_distance(fake_feats, real_feats), 2),
               "requested_digit_accuracy": round(float((predicted == labels).float().mean()), 4),
               "precision": round(pr["precision"], 3), "recall": round(pr["recall"], 3),
               "sample_seconds": round(seconds, 1)}
        print(row, flush=True)
        rows.append(row)
    return rows


def reproduce_command(args, steps: int) -> str:
    """The command that retrains this exact run (the final step count as the budget)."""
    options = ["--steps", str(steps), "--threads", str(args.threads), "--seed", str(args.seed)]
    for name in ("batch_size", "lr", "ema", "label_dropout", "base_channels", "res_blocks", "sample_steps",
                 "guidance"):
        options += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return "python scripts/train_diffusion.py " + " ".join(options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="total training steps")
    parser.add_argument("--seconds", type=float, default=None, help="total training seconds (wall)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--label-dropout", type=float, default=0.1)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--res-blocks", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="resumable training state (default: checkpoint_dir()/train_diffusion.pt)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    parser.add_argument("--sample-steps", type=int, default=20, help="Euler steps for the card's metrics")
    parser.add_argument("--guidance", type=str, default="0,0.25,0.5,1,2", help="guidance weights for the card")
    parser.add_argument("--out", type=Path, default=PRETRAINED_UNETS["mnist_flow"])
    parser.add_argument("--evaluate-only", action="store_true", help="no training: export the checkpoint")
    args = parser.parse_args(argv)
    if args.steps is None and args.seconds is None and not args.evaluate_only:
        parser.error("give a budget: --steps, --seconds or both")

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    checkpoint = args.checkpoint or checkpoint_dir() / "train_diffusion.pt"
    data = load_mnist("train")
    task = build_task(args)
    trainer = Trainer(task, data=data, batch_size=args.batch_size, seed=args.seed, progress=False)
    if args.evaluate_only:
        trainer.load(checkpoint)
    else:
        trainer.fit(steps=args.steps, seconds=args.seconds, checkpoint_path=checkpoint,
                    checkpoint_every=args.checkpoint_every, log_every=500)
        for step, loss in zip(trainer.history.steps[-5:], trainer.history.metrics["loss"][-5:]):
            print(f"step {step}: loss {loss:.4f}")
    print(f"trained {trainer.step} steps in {trainer.train_seconds:.0f} s", flush=True)

    rows = evaluate(task, [float(w) for w in args.guidance.split(",")], args.sample_steps, args.seed)
    best = max(rows, key=lambda r: (r["requested_digit_accuracy"] >= 0.98, -r["fid_mnist"]))
    model = task.network(use_ema=True)
    card = {
        "name": "mnist_flow",
        "weights_file": args.out.name,
        "method": "class-conditional flow matching (rectified flow), EMA weights, classifier-free guidance",
        "architecture": (f"UNet(base_channels={args.base_channels}, channel_mults=(1, 2), num_res_blocks="
                         f"{args.res_blocks}, attention=True, num_classes=10, pixel_unshuffle=True)"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images": len(data), "train_source": data.source,
        "steps": trainer.step, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": 200,
        "ema_decay": args.ema, "label_dropout": args.label_dropout, "grad_clip": 1.0,
        "training_seconds": round(trainer.train_seconds, 1),
        "seconds_note": ("wall-clock seconds on a shared 2-core machine (1 thread, low priority, other jobs "
                         "running): the same run alone would take less"),
        "seed": args.seed, "threads": args.threads, "torch_version": torch.__version__,
        "genlab_version": genlab.__version__, "date": datetime.date.today().isoformat(),
        "evaluation": {"samples": 1000, "real": "first 1,000 test digits", "sampler": "Euler",
                       "sampler_steps": args.sample_steps, "labels": "100 per digit", "rows": rows},
        "recommended_guidance": best["guidance"],
        "command": reproduce_command(args, trainer.step),
    }
    save_unet_weights(model, args.out, metadata={"recommended_guidance": best["guidance"], "steps": trainer.step,
                                                 "training_seconds": round(trainer.train_seconds, 1)})
    card["sha256"] = hashlib.sha256(args.out.read_bytes()).hexdigest()
    card["size_bytes"] = args.out.stat().st_size
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    table = "\n".join(f"| {r['guidance']:g} | {r['fid_mnist']:.1f} | {100 * r['requested_digit_accuracy']:.1f}% | "
                      f"{r['precision']:.3f} | {r['recall']:.3f} |" for r in rows)
    args.out.with_suffix(".md").write_text(f"""# {args.out.name}

A class-conditional flow-matching U-Net for MNIST digits, loaded by
`genlab.models.unet.load_unet_weights()` (never downloaded). See book/07_diffusion/flow_matching.ipynb.

- method: {card["method"]}
- architecture: {card["architecture"]}, {card["parameters"]:,} parameters, stored as float16
- training data: {card["train_images"]:,} digits from `{card["train_source"]}` (the test split is never used
  for training or model selection)
- recipe: {card["steps"]:,} steps, batch {args.batch_size}, Adam(lr={args.lr:g}, 200 warm-up steps), gradient
  clipping at 1.0, EMA decay {args.ema}, label dropout {args.label_dropout}
- {card["training_seconds"]:.0f} s of training: {card["seconds_note"]}
- seed {args.seed}, torch {torch.__version__}, {args.threads} CPU thread(s), {card["date"]}
- command: `{card["command"]}`

Evaluation: 1,000 samples (100 per digit, {args.sample_steps} Euler steps) against the first 1,000 test
digits, FID-MNIST and precision/recall with genlab's classifier features (real vs real: about 26);
accuracy = genlab's classifier agrees with the requested digit.

| guidance w | FID-MNIST | requested-digit accuracy | precision | recall |
|---|---|---|---|---|
{table}

Regenerate with `python scripts/train_diffusion.py` (see its docstring).
""")
    print(f"wrote {args.out.name} ({card['size_bytes']:,} bytes) and its card", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("GENLAB_OFFLINE", "1")
    main()
