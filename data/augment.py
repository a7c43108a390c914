"""Standard (non-GAN) augmentation: albumentations pipelines chosen by name.

The study's "real + standard augmentation" arm and the Data page's before/after preview both
build their pipeline here, so what an educator sees is exactly what the classifier trains on;
both start from `default_pipeline(dataset)`, which leaves out the left-right flip where anatomy
has a fixed side (a chest X-ray's heart is on the left).
`strength` in (0, 1] scales every magnitude (angles, shifts, contrast, hole sizes) together;
`p` is the probability that each chosen transform fires on a given image.
"""
from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

REFLECT = cv2.BORDER_REFLECT_101  # medical images have no natural "outside"; mirror the edge

AUGMENTATIONS: dict[str, str] = {
    "hflip": "Mirror left-right",
    "vflip": "Mirror top-bottom",
    "rotate": "Rotate by up to ±30° (× strength)",
    "affine": "Shift, scale and shear together",
    "brightness_contrast": "Change brightness and contrast by up to ±30% (× strength)",
    "gamma": "Random gamma curve (darken or lighten mid-tones)",
    "elastic": "Elastic deformation (smooth local warping, Simard et al.)",
    "grid_distortion": "Grid distortion (piecewise stretching)",
    "gaussian_noise": "Add Gaussian pixel noise",
    "blur": "Gaussian blur",
    "coarse_dropout": "Black out a few rectangular patches (cutout)",
}

DEFAULT_PIPELINE = ["hflip", "rotate", "brightness_contrast"]

CHEST_XRAY = ("A chest X-ray is not mirrored by default: the heart sits on the patient's left, so a flipped "
              "film shows an anatomy no patient has.")
SIDED_CT = ("These CT slices are not mirrored by default: the classes name the body side (kidney-left, "
            "femur-right, …), which a flip would swap.")
SAGITTAL_CT = "These sagittal CT slices are not mirrored by default: a flip turns the body's front to the back."

# Datasets whose images have a fixed orientation from left to right, each with the sentence the Data page shows.
NOT_MIRRORED: dict[str, str] = {"chestmnist": CHEST_XRAY, "pneumoniamnist": CHEST_XRAY, "organamnist": SIDED_CT,
                                "organcmnist": SIDED_CT, "organsmnist": SAGITTAL_CT}


def default_pipeline(dataset_name: str) -> list[str]:
    """The standard augmentation for a dataset: DEFAULT_PIPELINE, without the left-right flip
    where the anatomy has a fixed side (`NOT_MIRRORED`)."""
    if dataset_name in NOT_MIRRORED:
        return [name for name in DEFAULT_PIPELINE if name != "hflip"]
    return list(DEFAULT_PIPELINE)


def _transform(name: str, strength: float, p: float) -> A.BasicTransform:
    s = strength
    if name == "hflip":
        return A.HorizontalFlip(p=p)
    if name == "vflip":
        return A.VerticalFlip(p=p)
    if name == "rotate":
        return A.Rotate(limit=30 * s, border_mode=REFLECT, p=p)
    if name == "affine":
        return A.Affine(scale=(1 - 0.2 * s, 1 + 0.2 * s), translate_percent=(-0.1 * s, 0.1 * s),
                        shear=(-10 * s, 10 * s), border_mode=REFLECT, p=p)
    if name == "brightness_contrast":
        return A.RandomBrightnessContrast(brightness_limit=0.3 * s, contrast_limit=0.3 * s, p=p)
    if name == "gamma":
        return A.RandomGamma(gamma_limit=(100 - 40 * s, 100 + 40 * s), p=p)
    if name == "elastic":
        return A.ElasticTransform(alpha=60 * s, sigma=6, border_mode=REFLECT, p=p)
    if name == "grid_distortion":
        return A.GridDistortion(distort_limit=0.4 * s, border_mode=REFLECT, p=p)
    if name == "gaussian_noise":
        return A.GaussNoise(std_range=(0.02 * s, 0.1 * s), p=p)
    if name == "blur":
        return A.GaussianBlur(sigma_limit=(0.2, 0.2 + 1.3 * s), blur_limit=0, p=p)
    if name == "coarse_dropout":
        return A.CoarseDropout(num_holes_range=(1, max(1, round(4 * s))),
                               hole_height_range=(0.1 * s, 0.25 * s), hole_width_range=(0.1 * s, 0.25 * s),
                               fill=0, p=p)
    raise ValueError(f"Unknown augmentation '{name}'. Choose from: {', '.join(AUGMENTATIONS)}")


def build_pipeline(names: list[str], strength: float = 1.0, p: float = 0.5) -> A.Compose:
    """An albumentations pipeline applying the named transforms in the given order."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return A.Compose([_transform(name, strength, p) for name in names])


def apply(pipeline: A.Compose, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Augment uint8 N×H×W×C images; the same seed gives the same result, channels are kept."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 N×H×W×C images, got {images.dtype} {images.shape}")
    pipeline.set_random_seed(seed)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = pipeline(image=np.ascontiguousarray(image))["image"].reshape(image.shape)
    return out
