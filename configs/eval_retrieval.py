"""Patch retrieval on frozen embeddings: test patches query the training set (cosine similarity
of centred, L2-normalised embeddings); Acc@1/3/5, majority vote @5, and the paper's zero-shot
prototype retrieval (nearest class-mean embedding).

  python eval.py --config=configs/eval_retrieval.py:smoke --workdir=/tmp/eval_retrieval
  python eval.py --config=configs/eval_retrieval.py --workdir=runs/retrieval \\
      --config.checkpoint=runs/mvhybrid,random \\
      --config.data.train_path=nct100k.ar --config.data.test_path=crc_val_7k.ar
"""

import ml_collections

from configs import eval_cls


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = eval_cls.get_config(arg)
  c.task = "retrieval"
  del c["knn_k"]
  return c
