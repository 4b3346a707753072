"""Image budgets with the processor's meaning: max_pixels bounds the pixels after rounding to the 28-px grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from echoink.data.media import Geometry, MediaError, load_image, smart_resize

QWEN2_5 = Geometry()  # Qwen2.5-Omni's grid (the defaults of Geometry)


def _image_tokens(processor, image: Image.Image) -> int:
    """Image tokens the tiny model's real Qwen2-VL image processor gives this image (t * h * w / merge^2)."""
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod()) // processor.image_processor.merge_size**2


@pytest.mark.parametrize(("max_pixels", "cap"), [(200_704, 256), (401_408, 512)])
def test_budget_caps_image_tokens(tmp_path: Path, tiny_model_dir: Path, max_pixels: int, cap: int):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (1920, 1440), (10, 120, 200)).save(path)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    image = load_image(path, max_pixels, QWEN2_5)
    assert image.width % 28 == 0 and image.height % 28 == 0
    assert _image_tokens(processor, image) <= cap  # the old downscale-then-round gave 520 at 401,408
    assert _image_tokens(processor, image) == image.width * image.height // 784  # processor keeps our size


def test_min_pixels_raises_small_images(tmp_path: Path):
    path = tmp_path / "icon.png"
    Image.new("RGB", (20, 20), (0, 0, 0)).save(path)
    assert load_image(path, 50_176, QWEN2_5).size == (56, 56)  # 4 tokens, qwen-omni-utils' MIN_PIXELS


def test_images_on_the_grid_come_back_as_decoded(tmp_path: Path):
    # The demo's 168x56 scenes: no resampling, so its numbers cannot move.
    rng = np.random.default_rng(0)
    path = tmp_path / "scene.png"
    Image.fromarray(rng.integers(0, 256, (56, 168, 3), dtype=np.uint8)).save(path)
    with Image.open(path) as raw:
        expected = np.asarray(raw.convert("RGB"))
    assert np.array_equal(np.asarray(load_image(path, 50_176, QWEN2_5)), expected)


@pytest.mark.parametrize("max_pixels", [3_136, 50_176, 200_704, 401_408])
def test_smart_resize_matches_transformers(max_pixels: int):
    # transformers' copy in Qwen2VLImageProcessor is an independent implementation of the same rule.
    for height in range(28, 2100, 97):
        for width in range(28, 2100, 89):
            if max(height, width) / min(height, width) > 200:
                continue
            expected = hf_smart_resize(height, width, 28, min_pixels=3_136, max_pixels=max_pixels)
            assert smart_resize(height, width, max_pixels, 3_136, 28) == expected, (height, width)
            qwen3 = hf_smart_resize(height, width, 32, min_pixels=4_096, max_pixels=max_pixels)
            assert smart_resize(height, width, max_pixels, 4_096, 32) == qwen3, (height, width)


def test_load_image_takes_the_familys_geometry(tmp_path: Path):
    """Qwen3's 32-px cells: a 1920x1440 photo at 200,704 px is 512x384 (12 x 16 = 192 tokens, aspect 0.75),
    in one resize; not 504x364 on Qwen2.5's grid (which Qwen3's processor then made 512x352)."""
    path = tmp_path / "photo.png"
    Image.new("RGB", (1920, 1440), (10, 120, 200)).save(path)
    qwen3 = Geometry(patch=16, merge=2, temporal=2, min_pixels=4_096, audio_tokens_per_second=13.0)
    assert qwen3.cell == 32
    assert load_image(path, 200_704, qwen3).size == (512, 384)
    assert load_image(path, 200_704, QWEN2_5).size == (504, 364)  # on Qwen2.5-Omni's grid
    with pytest.raises(ValueError, match="needs the model family's geometry"):  # no default family
        load_image(path, 200_704)
    Image.new("RGB", (20, 20)).save(tmp_path / "icon.png")
    assert load_image(tmp_path / "icon.png", 50_176, qwen3).size == (64, 64)  # raised to its 4,096 px


def test_extreme_aspect_names_the_file(tmp_path: Path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (4000, 10)).save(path)
    with pytest.raises(MediaError, match="strip.png.*aspect ratio"):
        load_image(path, 50_176, QWEN2_5)
