"""Reference procedure "floor": the tutorial's procedure with the data set as one in-memory tensor.

    python scripts/floor.py --data-dir ../shared/data

Batches are index slices of a [60000, 784] float tensor, in a bare PyTorch loop: what this machine
does with no framework at all. Used only by scripts/benchmark.py as a baseline; prints one JSON line.
"""

import argparse
import json

import torch
from torch import nn
from torchvision import datasets


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    train = datasets.MNIST(args.data_dir, train=True, download=False)
    test = datasets.MNIST(args.data_dir, train=False, download=False)
    x = train.data.reshape(-1, 784).float() / 255  # [60000, 784]
    y = train.targets
    xt = test.data.reshape(-1, 784).float() / 255  # [10000, 784]
    yt = test.targets
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.96)
    loss_fn = nn.CrossEntropyLoss()
    bs, it, acc = 100, 0, 0.0
    while it < args.iters:
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - bs + 1, bs):
            idx = perm[i : i + bs]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            it += 1
            if it % 500 == 0 or it == args.iters:
                with torch.no_grad():
                    acc = (model(xt).argmax(1) == yt).float().mean().item()
            if it == args.iters:
                break
        sched.step()  # per epoch
    print(json.dumps({"procedure": "floor", "test_acc": acc, "iters": it}))


if __name__ == "__main__":
    main()
