"""Does the fast path keep accuracy? netspec's defaults against fp32 with the usual per-image pipeline, on real data.

Fashion-MNIST (the idx files of Debian's `dataset-fashion-mnist` package, or --data-dir), the LeNet-5 of
`examples/lenet5.net` with RandomCrop(padding=2) and RandomHorizontalFlip added, 5 epochs on the full 60,000
training images, seeds 0, 1, 2:

- netspec: `netspec.train(...)` with its defaults (uint8 data, batched augmentation, channels_last, bf16 autocast
  where the hardware has native bf16, else fp32);
- the usual loop: a map-style data set of PIL images, torchvision's RandomCrop/RandomHorizontalFlip/ToTensor/
  Normalize per image, a DataLoader with 2 workers, fp32, the same network, optimizer, batch size and epochs.

Prints the test accuracy of each run, the mean and spread of each side, and the difference of the means.

    apt-get install dataset-fashion-mnist    # once
    python benchmarks/accuracy_fmnist.py [--epochs 5] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import netspec
from netspec.training.data import load_data

AUGMENT = "    augment     [RandomCrop(padding=2), RandomHorizontalFlip()]\n"


class PILDataset(Dataset):
    def __init__(self, images, labels, transform):
        self.images = images[:, 0].numpy()  # (N, 28, 28) uint8
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def usual_loop(spec_text: str, data, epochs: int, seed: int, batch: int, lr: float, momentum: float) -> float:
    torch.manual_seed(seed)
    norm = transforms.Normalize((0.2860,), (0.3530,))
    train_tf = transforms.Compose(
        [transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]
    )
    test_tf = transforms.Compose([transforms.ToTensor(), norm])
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(
        PILDataset(data.train_images, data.train_labels, train_tf),
        batch_size=batch,
        shuffle=True,
        num_workers=2,
        generator=g,
    )
    test = DataLoader(PILDataset(data.test_images, data.test_labels, test_tf), batch_size=1000, num_workers=2)
    model = netspec.loads(spec_text).module
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(epochs):
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(test.dataset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    spec_text = (ROOT / "examples" / "lenet5.net").read_text()
    spec_text = spec_text.replace("    normalize", AUGMENT + "    normalize", 1)
    train_spec = netspec.loads(spec_text).train
    data = load_data("fashion-mnist", args.data_dir, download=False)
    print(
        f"Fashion-MNIST: {len(data.train_labels)} train / {len(data.test_labels)} test images; "
        f"{args.epochs} epochs; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    ours, theirs = [], []
    tmp = Path(tempfile.mkdtemp(prefix="netspec-acc-"))
    for seed in args.seeds:
        spec_file = tmp / "lenet5_aug.net"
        spec_file.write_text(spec_text)
        t0 = time.perf_counter()
        r = netspec.train(
            str(spec_file),
            data="fashion-mnist",
            data_dir=args.data_dir,
            epochs=args.epochs,
            seed=seed,
            out=str(tmp / f"ours{seed}"),
            quiet=True,
            download=False,
        )
        t1 = time.perf_counter()
        acc = usual_loop(
            spec_text,
            data,
            args.epochs,
            seed,
            train_spec.batch_size,
            train_spec.optimizer.lr,
            train_spec.optimizer.momentum,
        )
        t2 = time.perf_counter()
        ours.append(100 * r["test_accuracy"])
        theirs.append(100 * acc)
        print(
            f"seed {seed}: netspec {ours[-1]:.2f}% ({t1 - t0:.0f} s), usual loop {theirs[-1]:.2f}% ({t2 - t1:.0f} s)",
            flush=True,
        )
    mo, mt = statistics.mean(ours), statistics.mean(theirs)
    so = statistics.stdev(ours) if len(ours) > 1 else 0.0
    st = statistics.stdev(theirs) if len(theirs) > 1 else 0.0
    print()
    print("| | netspec defaults | usual loop, fp32 |")
    print("| --- | --- | --- |")
    print(f"| mean test accuracy | {mo:.2f}% | {mt:.2f}% |")
    print(
        f"| spread (stdev; min..max) | {so:.2f} ({min(ours):.2f}..{max(ours):.2f}) | "
        f"{st:.2f} ({min(theirs):.2f}..{max(theirs):.2f}) |"
    )
    print(f"\ndifference of the means: {mo - mt:+.2f} points (target: within 0.5)")


if __name__ == "__main__":
    main()
