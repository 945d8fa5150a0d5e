"""Reference procedure "tutorial": the classic MNIST run as plain-PyTorch tutorials write it.

    python scripts/tutorial.py --data-dir ../shared/data

torchvision MNIST + ToTensor, DataLoader(batch 100, shuffle), MLP 784-100-10, SGD 0.1/0.9 nesterov,
StepLR(1, 0.96) per epoch, 3000 iterations, test accuracy on the 10k test set every 500 iterations.
Used only by scripts/benchmark.py as a baseline; prints one JSON line.
"""

import argparse
import json

import torch
from torch import nn
from torchvision import datasets, transforms


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    tf = transforms.ToTensor()
    train = datasets.MNIST(args.data_dir, train=True, transform=tf, download=False)
    test = datasets.MNIST(args.data_dir, train=False, transform=tf, download=False)
    train_loader = torch.utils.data.DataLoader(train, batch_size=100, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=100)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.96)
    loss_fn = nn.CrossEntropyLoss()
    it, acc = 0, 0.0
    while it < args.iters:
        for x, y in train_loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            it += 1
            if it % 500 == 0 or it == args.iters:
                model.eval()
                with torch.no_grad():
                    correct = sum((model(xt).argmax(1) == yt).sum().item() for xt, yt in test_loader)
                acc = correct / len(test)
                model.train()
            if it == args.iters:
                break
        sched.step()  # per epoch
    print(json.dumps({"procedure": "tutorial", "test_acc": acc, "iters": it}))


if __name__ == "__main__":
    main()
