"""The two plain-PyTorch reference procedures that scripts/benchmark.py times the project against.

    python scripts/references.py tutorial --data-dir ../shared/data
    python scripts/references.py floor --data-dir ../shared/data
    python scripts/references.py floor --data-dir ../shared/data --device cuda   # on a GPU
    python scripts/references.py cnn --data-dir ../shared/data --iters 2750      # model=cnn's net, floor's data

Both run the classic procedure: MLP 784-100-10 (kaiming init, zero biases), SGD 0.1/0.9 Nesterov, StepLR(1, 0.96)
per epoch, batch 100, 3000 iterations, test accuracy on the 10k test set every 500 iterations. They differ in
the data path, which is the point:
  tutorial  as tutorials write it: torchvision MNIST + ToTensor(), DataLoader(shuffle=True), per-sample work;
  floor     the data set as one in-memory tensor, batches by index slicing: what this machine does with no
            framework at all.
With --device cuda the model runs on the GPU; the tutorial copies each batch to it (`x.to(device)`), as
tutorials do, while the floor keeps the whole data set there.
  cnn       the floor's data path with model=cnn's LeNet-5 (initlab.models.CNN, kaiming/relu, lr 0.05): what
            the CNN costs with no framework around it.
Each prints one JSON line: {"procedure", "test_acc", "iters"}.
"""

import argparse
import json
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torchvision import datasets, transforms

Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def tutorial_data(data_dir: str, device: torch.device) -> tuple[Batches, Callable[[nn.Module], float]]:
    tf = transforms.ToTensor()
    train = datasets.MNIST(data_dir, train=True, transform=tf, download=False)
    test = datasets.MNIST(data_dir, train=False, transform=tf, download=False)
    train_loader = torch.utils.data.DataLoader(train, batch_size=100, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=100)

    def accuracy(model: nn.Module) -> float:
        correct = sum((model(x.flatten(1).to(device)).argmax(1) == y.to(device)).sum().item() for x, y in test_loader)
        return correct / len(test)

    return lambda: ((x.flatten(1).to(device), y.to(device)) for x, y in train_loader), accuracy


def floor_data(data_dir: str, device: torch.device) -> tuple[Batches, Callable[[nn.Module], float]]:
    train = datasets.MNIST(data_dir, train=True, download=False)
    test = datasets.MNIST(data_dir, train=False, download=False)
    x, y = train.data.reshape(-1, 784).to(device).float() / 255, train.targets.to(device)  # [60000, 784], [60000]
    xt, yt = test.data.reshape(-1, 784).to(device).float() / 255, test.targets.to(device)  # [10000, 784], [10000]

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(x), device=device)
        for i in range(0, len(x), 100):
            idx = perm[i : i + 100]
            yield x[idx], y[idx]

    return batches, lambda model: (model(xt).argmax(1) == yt).float().mean().item()


def train_classic(batches: Batches, accuracy: Callable[[nn.Module], float], iters: int, device: torch.device,
                  cnn: bool = False) -> float:  # fmt: skip
    if cnn:
        from initlab.models import CNN

        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), CNN(nn.ReLU)).to(device)  # [B, 784] -> [B, 1, 28, 28]
    else:
        model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)).to(device)
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05 if cnn else 0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.96)
    loss_fn = nn.CrossEntropyLoss()
    it, acc = 0, 0.0
    while it < iters:
        for x, y in batches():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            it += 1
            if it % 500 == 0 or it == iters:
                with torch.no_grad():
                    acc = accuracy(model)
            if it == iters:
                break
        sched.step()  # per epoch
    return acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("procedure", choices=["tutorial", "floor", "cnn"])
    p.add_argument("--data-dir", default="data")
    p.add_argument("--iters", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    data = tutorial_data if args.procedure == "tutorial" else floor_data
    device = torch.device(args.device)
    acc = train_classic(*data(args.data_dir, device), args.iters, device, cnn=args.procedure == "cnn")
    print(json.dumps({"procedure": args.procedure, "test_acc": acc, "iters": args.iters}))  # the benchmark parses it


if __name__ == "__main__":
    main()
