"""The original code's side of `python -m mtlbench.bench --keras PYTHON`: Keras training speed.

Run by the interpreter of an environment that has TensorFlow (it is not a dependency of mtlbench,
and TensorFlow and the CUDA build of torch do not share one environment well), so this file
imports only numpy and tensorflow. It builds the SPEC's `mlp` and `cnn28` as the original code
does (Keras layers, Adam 1e-3 with epsilon 1e-7, batch 512, `model.fit`) and prints one JSON
line: images/s per model, the median of `repeats` timed epochs after an untimed one (tracing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

MODELS = ("mlp", "cnn28")  # the dedicated models of the original code (its RSN2 side is BeyondML)


def build(name: str):
    from tensorflow import keras

    layers = keras.layers
    if name == "mlp":
        body = [layers.Flatten(), *[layers.Dense(1000, activation="relu") for _ in range(6)]]
    else:
        body = [layers.Conv2D(32, 3, padding="same", activation="relu"), layers.Conv2D(32, 3, padding="same", activation="relu"),
                layers.MaxPool2D(2, strides=1),
                layers.Conv2D(64, 3, padding="same", activation="relu"), layers.Conv2D(64, 3, padding="same", activation="relu"),
                layers.MaxPool2D(2, strides=1), layers.Flatten(),
                layers.Dense(256, activation="relu"), layers.Dense(256, activation="relu")]
    model = keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-7), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def images_per_s(name: str, rows: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.random((rows, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    model = build(name)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model.fit(x, y, batch_size=512, epochs=1, shuffle=True, verbose=0)
        times.append(time.perf_counter() - start)
    return rows / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import tensorflow as tf

    rates = {name: images_per_s(name, args.rows, args.repeats) for name in args.models}
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")
    print(json.dumps({"tensorflow": tf.__version__, "onednn": onednn, "images_per_s": rates}))


if __name__ == "__main__":
    main()
