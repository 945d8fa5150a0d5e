"""Data sets: a generic in-memory data module (datamodule.py), its batch loaders (batches.py), and one file per
family of files on disk (mnist.py, cifar10.py), each with the `load` function its data config names."""

MNIST_FAMILY = ("MNIST", "FashionMNIST", "KMNIST")  # torchvision's names (and folders) of the sets laid out alike
