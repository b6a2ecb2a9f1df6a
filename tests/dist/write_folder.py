"""write_folder.py DIR TRAIN TEST SEED: a labelled image folder for the multi-process tests:
DIR/{train,test}/c{0,1,2}/NN.png, TRAIN and TEST random 16x16 RGB images, class c darkened by
1/(c + 1) so the classes differ. Needs python3-numpy and python3-pil."""
import os
import sys

import numpy as np
from PIL import Image

root, n_train, n_test, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(seed)
for split, n in (("train", n_train), ("test", n_test)):
    for i in range(n):
        c = i % 3
        os.makedirs("%s/%s/c%d" % (root, split, c), exist_ok=True)
        img = (rng.integers(0, 256, (16, 16, 3)) // (c + 1)).astype(np.uint8)
        Image.fromarray(img).save("%s/%s/c%d/%02d.png" % (root, split, c, i))
