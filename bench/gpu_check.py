"""GPU readiness: each job kind's core briefly on the CPU and on CUDA, timed, with agreement checks.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/gpu_check.py

Without a CUDA device it prints {"cuda": false, "reason": "no CUDA device was found"} and exits 0.
With one (a few minutes), on 28-px PneumoniaMNIST: a DCGAN (tiny steps), SinGAN (few iterations),
GPNN's nearest-neighbour search (indices equal on both devices?), the classifier (logits of the
same weights on both devices), ten classifiers batched and ten seeds' GANs stacked against one at a time
(CUDA only), Inception features and the five image-quality metrics (largest
difference between devices). The last line of output is one JSON object.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEVICES = ("cpu", "cuda")


def timed(work) -> tuple[float, object]:
    began = time.perf_counter()
    result = work()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return round(time.perf_counter() - began, 3), result


def gan(images) -> dict:
    from gans.config import make_config
    from gans.train import train

    figures = {}
    for device in DEVICES:
        config = make_config("dcgan", "quick", steps=50, device=device, per_class=False)
        seconds, model = timed(lambda: train(config, images))
        samples = model.sample(256, seed=0).float().cpu()
        figures[device] = {"seconds": seconds, "sample_mean": round(samples.mean().item(), 4),
                           "sample_std": round(samples.std().item(), 4)}
    return figures


def singan(image: np.ndarray) -> dict:
    from gans.singan_train import build_model, singan_config, train

    figures = {}
    for device in DEVICES:
        config = singan_config("tiny", device=device, dataset={"name": "pneumoniamnist", "size": 28}, image_index=0,
                               iters_coarse=40, iters=20)  # a tenth of the preset: seconds, not minutes, on a CPU
        model = build_model(image, config)
        seconds, _ = timed(lambda: train(model))
        figures[device] = {"seconds": seconds}
    return figures


def gpnn(image: np.ndarray) -> dict:
    from gans.gpnn import GpnnSettings, PatchIndex, match, patches
    from data.imageset import to_tensor

    source = to_tensor(image[None])
    found = {}
    for device in DEVICES:
        x = source.to(device)
        keys = patches(x, 7)[0]
        index = PatchIndex(keys, GpnnSettings())
        seconds, best = timed(lambda: match(index, patches(x, 7), (x.shape[2] - 6, x.shape[3] - 6), 1))
        found[device] = (seconds, best.cpu())
    return {"cpu_seconds": found["cpu"][0], "cuda_seconds": found["cuda"][0],
            "indices_equal_share": round((found["cpu"][1] == found["cuda"][1]).float().mean().item(), 4)}


def classifier(data) -> dict:
    from classifier.evaluate import to_input
    from classifier.train import TrainConfig, train_classifier

    subset = data.train.stratified_subset(0.05, 0)
    figures, logits = {}, {}
    for device in DEVICES:
        config = TrainConfig(steps=20, batch_size=32, eval_every=20, device=device)
        seconds, result = timed(lambda: train_classifier(subset.images, subset.labels, data.val.images,
                                                         data.val.labels, len(data.class_names), config))
        figures[f"{device}_seconds"] = seconds
    model = result.model.eval()
    batch = torch.from_numpy(data.test.images[:256])
    with torch.no_grad():
        for device in DEVICES:
            model = model.to(device)
            logits[device] = model(to_input(batch, torch.device(device))).float().cpu()
    figures["logits_max_abs_diff"] = float((logits["cpu"] - logits["cuda"]).abs().max())
    return figures


def batched(data, members: int = 10) -> dict:
    """On CUDA only: `members` classifiers of one budget as one batched computation (what a study's batched arms
    do: classifier/batched.py) against the same classifiers one after another. `batched_vs_one_at_a_time` below 1
    means batching pays, as StudyConfig.batched "auto" assumes on CUDA."""
    from classifier.batched import Member, train_classifiers
    from classifier.train import TrainConfig, train_classifier

    config = TrainConfig(steps=40, batch_size=64, eval_every=20, device="cuda")
    subsets = [data.train.stratified_subset(0.1, seed) for seed in range(members)]
    group = [Member(s.images, s.labels, seed) for seed, s in enumerate(subsets)]
    val = data.val.images, data.val.labels
    classes = len(data.class_names)
    together_s, together = timed(lambda: train_classifiers(group, *val, classes, config))
    alone_s, alone = timed(lambda: [train_classifier(m.images, m.labels, *val, classes, config, seed=m.seed)
                                    for m in group])
    gaps = [abs(a.best_val["balanced_accuracy"] - b.best_val["balanced_accuracy"]) for a, b in zip(together, alone)]
    return {"members": members, "batched_seconds": together_s, "one_at_a_time_seconds": alone_s,
            "batched_vs_one_at_a_time": round(together_s / alone_s, 3), "val_balanced_accuracy_max_gap": max(gaps)}


def gan_stack() -> dict:
    """On CUDA only: ten seeds' recipe GANs (DermaMNIST 10%, per-class DCGAN quick, 150 steps) as one stack against
    one after another (bench/gan_stack.py). `stack_vs_one_at_a_time` below 1 means stacking pays, as
    StudyConfig.batched "auto" assumes on CUDA."""
    from bench.gan_stack import compare

    return compare(members=10, steps=150, device="cuda")


def inception(images: np.ndarray) -> dict:
    from metrics.inception import inception_features

    found = {device: timed(lambda: inception_features(images, device=device)) for device in DEVICES}
    cpu, cuda = (torch.as_tensor(np.asarray(found[d][1])) for d in DEVICES)
    return {"cpu_seconds": found["cpu"][0], "cuda_seconds": found["cuda"][0],
            "features_max_rel_diff": float((cpu - cuda).abs().max() / cpu.abs().max())}


def quality(synthetic: np.ndarray, real: np.ndarray) -> dict:
    from metrics.quality import score_pairs

    found = {device: timed(lambda: score_pairs(synthetic, real, device=device)) for device in DEVICES}
    return {"cpu_seconds": found["cpu"][0], "cuda_seconds": found["cuda"][0],
            "metrics_max_abs_diff": {key: float(np.nanmax(np.abs(found["cpu"][1][key] - found["cuda"][1][key])))
                                     for key in found["cpu"][1]}}


def encoder(data) -> dict:
    from metrics.encoder import EncoderConfig, train_encoder

    found = {device: timed(lambda: train_encoder(data.train, data.val, EncoderConfig(min_steps=100, epochs=1,
                                                                                     device=device), cache=False))
             for device in DEVICES}
    accuracy = {device: found[device][1].info["val_balanced_accuracy"] for device in DEVICES}
    return {"cpu_seconds": found["cpu"][0], "cuda_seconds": found["cuda"][0], "val_balanced_accuracy": accuracy}


def pairing(synthetic, real) -> dict:
    from metrics.pairing import nearest_neighbours

    found = {device: timed(lambda: nearest_neighbours(synthetic, real, device=device)) for device in DEVICES}
    cpu, cuda = found["cpu"][1], found["cuda"][1]
    return {"cpu_seconds": found["cpu"][0], "cuda_seconds": found["cuda"][0],
            "same_nearest_share": float((cpu.any_index == cuda.any_index).mean()),
            "distance_max_abs_diff": float(np.abs(cpu.any_distance - cuda.any_distance).max())}


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "reason": "no CUDA device was found"}))
        return 0
    from data.datasets import DatasetSpec, load_dataset

    data = load_dataset(DatasetSpec(name="pneumoniamnist", size=28))
    images = data.train.stratified_subset(0.05, 0)
    figures = {"cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name, check in (("gan", lambda: gan(images)), ("singan", lambda: singan(data.train.images[0])),
                        ("gpnn", lambda: gpnn(data.train.images[0])), ("classifier", lambda: classifier(data)),
                        ("batched", lambda: batched(data)), ("gan_stack", gan_stack),
                        ("inception", lambda: inception(data.test.images[:64])),
                        ("pairing", lambda: pairing(data.test, data.train)), ("encoder", lambda: encoder(data)),
                        ("quality", lambda: quality(data.test.images[:200], data.test.images[200:400]))):
        figures[name] = check()
        print(name, figures[name], flush=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
