"""Entry point: trains one model, or a grid with -m. Configs live in src/initlab/conf/ (also at conf/).

python train.py init=kaiming act=relu
python train.py -m init=normal,lecun,xavier,kaiming act=tanh,relu
python train.py data.data_dir=../shared/data   # offline: an existing MNIST copy
tensorboard --logdir outputs
"""

from initlab.run.cli import main

if __name__ == "__main__":
    main()
