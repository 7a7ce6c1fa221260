"""Inference speed on CPU, all rows measured in one run: median latency per 512x512 image and images/s.

Rows: the paper's SkinNet (width 32, 512 px input) eager, channels_last and through ONNX Runtime; the
shipped model through the Segmenter (resize 512 -> its input size, network, resize back, threshold) eager
and ONNX Runtime; the shipped model end to end as ``skinnet predict`` does it on a folder of JPEGs (decode,
segment, write the mask PNG); baselines MONAI BasicUNet and our plain U-Net (width 32, 512 px) eager.
Ratios are latencies relative to SkinNet eager, so they hold across machines better than seconds do.

    python benchmarks/inference.py [--threads 2] [--repeats 10] [--model skinnet/weights/...safetensors]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skinnet.batch.run import predict_files
from skinnet.config import load_config
from skinnet.data.io import read_image
from skinnet.data.samples import SAMPLE_IMAGES
from skinnet.inference.onnx import OnnxBackend, export_onnx
from skinnet.inference.segmenter import Segmenter
from skinnet.networks import build_model
from skinnet.weights import default_model_path


def median_seconds(run: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def eager(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.eval()

    def run() -> object:
        with torch.inference_mode():
            return model(x)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--model", type=Path, default=default_model_path(), help="the shipped model by default")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 512, 512)
    rows: list[tuple[str, float]] = []

    paper = load_config(Path(__file__).resolve().parents[1] / "configs" / "isic2017_paper.yaml")
    skinnet = build_model(paper.model).eval()
    rows.append(("SkinNet w32 @512, PyTorch eager", median_seconds(eager(skinnet, x), args.repeats)))
    skinnet_cl = build_model(paper.model).eval().to(memory_format=torch.channels_last)
    skinnet_cl.load_state_dict(skinnet.state_dict())
    rows.append(("SkinNet w32 @512, channels_last",
                 median_seconds(eager(skinnet_cl, x.to(memory_format=torch.channels_last)), args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        session = OnnxBackend(export_onnx(skinnet, paper, Path(tmp) / "paper.onnx"), threads=args.threads)
        array = x.numpy()
        rows.append(("SkinNet w32 @512, ONNX Runtime", median_seconds(lambda: session(array), args.repeats)))

        if args.model is not None:
            image = read_image(sorted(SAMPLE_IMAGES.glob("*.jpg"))[0])
            image512 = np.asarray(Image.fromarray(image).resize((512, 512), Image.BILINEAR))
            for backend in ("torch", "onnx"):
                segmenter = Segmenter.from_file(args.model, device="cpu", backend=backend, threads=args.threads)
                size = segmenter.config.data.image_size
                rows.append((f"shipped model ({size} px), Segmenter, {backend}",
                             median_seconds(lambda s=segmenter: s.predict(image512), args.repeats)))
            folder = Path(tmp) / "images"
            folder.mkdir()
            count = 20
            for i, path in enumerate(sorted(SAMPLE_IMAGES.glob("*.jpg"))[:count]):
                Image.open(path).resize((512, 512), Image.BILINEAR).save(folder / f"img{i:02d}.jpg", quality=95)
            segmenter = Segmenter.from_file(args.model, backend="onnx", threads=args.threads)
            predict_files(segmenter, [folder], Path(tmp) / "warm")
            total = median_seconds(lambda: predict_files(segmenter, [folder], Path(tmp) / "out"), 3, warmup=0)
            rows.append((f"shipped model end to end: predict folder of {count} JPEGs, onnx", total / count))

    from monai.networks.nets import BasicUNet

    rows.append(("MONAI BasicUNet (default features) @512, eager",
                 median_seconds(eager(BasicUNet(spatial_dims=2, in_channels=3, out_channels=2), x), args.repeats)))
    unet = build_model(load_config(None, ["model.name=unet", "model.width=32"]).model)
    rows.append(("plain U-Net w32 @512, eager", median_seconds(eager(unet, x), args.repeats)))

    base = rows[0][1]
    print(f"CPU threads: {args.threads}; batch 1; 512x512 input; median of {args.repeats} runs\n")
    print(f"| {'what':<58} | {'s / image':>9} | {'images/s':>8} | {'x eager SkinNet':>15} |")
    print(f"|{'-' * 60}|{'-' * 11}:|{'-' * 9}:|{'-' * 16}:|")
    for name, seconds in rows:
        print(f"| {name:<58} | {seconds:9.4f} | {1 / seconds:8.2f} | {seconds / base:15.3f} |")


if __name__ == "__main__":
    main()
