"""The usual hand-written training loop, as the baseline of `train_speed.py`.

A map-style data set of PIL images with torchvision transforms (RandomCrop(32, padding=4), RandomHorizontalFlip,
ToTensor, Normalize), a DataLoader with worker processes, fp32, the same network and settings as netspec's run
(SGD lr 0.01 momentum 0.9, batch 256, one epoch, then a test pass with batch 10). The data is read from the same
CIFAR-10-format files with netspec's reader, then handed out one PIL image at a time, as torchvision's CIFAR10 does.

    python benchmarks/handwritten_loop.py --data-dir DIR --images 4096 --test 500
"""

from __future__ import annotations

import argparse
import time

import netspec
import torch
import torch.nn.functional as F
from netspec.training.data import load_data
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class PILDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) uint8, as torchvision keeps CIFAR
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        return self.transform(img), self.labels[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--spec", default="specs/cifar_best.net")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    data = load_data("cifar10", args.data_dir, train_limit=args.images, test_limit=args.test, download=False)
    norm = transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    train_tf = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]
    )
    test_tf = transforms.Compose([transforms.ToTensor(), norm])
    train_loader = DataLoader(
        PILDataset(data.train_images, data.train_labels, train_tf),
        batch_size=256,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=False,
    )
    test_loader = DataLoader(
        PILDataset(data.test_images, data.test_labels, test_tf), batch_size=10, num_workers=args.workers
    )
    model = netspec.load(args.spec, constants={"classes": data.num_classes}).module
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        total, loss_sum = 0, 0.0
        for x, y in train_loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            total += len(y)
        train_s = time.perf_counter() - t0
        model.eval()
        correct, test_loss, n = 0, 0.0, 0
        with torch.no_grad():
            for x, y in test_loader:
                logits = model(x)
                test_loss += F.cross_entropy(logits, y, reduction="sum").item()
                correct += int((logits.argmax(1) == y).sum())
                n += len(y)
        print(
            f"epoch {epoch + 1}: train_loss {loss_sum / total:.4f} test_loss {test_loss / n:.4f} "
            f"acc {correct}/{n} train {train_s:.1f}s {total / train_s:.1f} img/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
