"""The synthetic product catalogue and the real-catalogue loader."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from models.classifier import data


def test_generator_schema_and_determinism() -> None:
    a = data.generate_catalogue(300, seed=5)
    b = data.generate_catalogue(300, seed=5)
    assert list(a.columns) == list(data.CATALOGUE_COLUMNS)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(data.generate_catalogue(300, seed=6))
    assert 15 <= len(data.CATEGORIES) <= 30 and len(set(data.CATEGORY_PATHS)) == 22
    assert set(a["category_path"]) <= set(data.CATEGORY_PATHS)
    assert a["product_id"].is_unique and (a["price"] > 0).all()
    assert all(p.count(" > ") == 2 for p in a["category_path"])
    with_image = a["image_bytes"].notna()
    assert 0.8 < with_image.mean() < 0.97
    image = Image.open(io.BytesIO(a.loc[with_image.idxmax(), "image_bytes"]))
    assert image.format == "JPEG" and image.size == (64, 64)


def test_neighbours_share_group_and_label_noise_goes_to_neighbours() -> None:
    assert all(data.CATEGORIES[n].group == data.CATEGORIES[0].group for n in data.neighbours(0))
    clean = data.generate_catalogue(2000, seed=9, label_noise=0.0, images=False)
    noisy = data.generate_catalogue(2000, seed=9, label_noise=0.2, images=False)
    assert (clean["title"] == noisy["title"]).all()
    changed = clean["category_path"] != noisy["category_path"]
    assert 0.12 < changed.mean() < 0.28
    groups = {c.path: c.group for c in data.CATEGORIES}
    departments = {c.path: c.department for c in data.CATEGORIES}
    for before, after in zip(
        clean[changed]["category_path"], noisy[changed]["category_path"], strict=True
    ):
        assert groups[before] == groups[after] or departments[before] == departments[after]


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    catalogue = data.generate_catalogue(50, seed=2)
    path = data.write_catalogue(catalogue, tmp_path / "shop")
    loaded = data.load_catalogue(path)
    assert list(loaded.columns) == list(data.CATALOGUE_COLUMNS)
    assert loaded["product_id"].tolist() == catalogue["product_id"].tolist()
    assert loaded["category_path"].tolist() == catalogue["category_path"].tolist()
    for got, want in zip(loaded["image_bytes"], catalogue["image_bytes"], strict=True):
        assert got == want or (got is None and want is None)


def test_csv_with_other_column_names(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    (tmp_path / "img" / "a.png").write_bytes(buffer.getvalue())
    frame = pd.DataFrame(
        {
            "sku": ["a", "b", "c"],
            "name": ["Red dress", "", "Boots"],
            "product_category_tree": ['["Clothing >> Women >> Dresses"]', "X", "Shoes/Boots"],
            "image_path": ["img/a.png", "", "img/missing.png"],
            "retail_price": ["19.5", "3", "oops"],
        }
    )
    frame.to_csv(tmp_path / "shop.csv", index=False)
    loaded = data.load_catalogue(tmp_path / "shop.csv")
    assert loaded["product_id"].tolist() == ["a", "c"]  # the row without a title is dropped
    assert loaded["category_path"].tolist() == ["Clothing > Women > Dresses", "Shoes > Boots"]
    assert loaded["image_bytes"].tolist() == [buffer.getvalue(), None]
    assert loaded["price"].iloc[0] == 19.5 and np.isnan(loaded["price"].iloc[1])


def test_jsonl_with_list_categories(tmp_path: Path) -> None:
    rows = [{"id": 1, "title": "Tee", "categories": ["Clothing", "Men", "T-Shirts"]}]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    loaded = data.load_catalogue(path)
    assert loaded["category_path"].tolist() == ["Clothing > Men > T-Shirts"]
    assert loaded["image_bytes"].tolist() == [None]


def test_the_drifted_feed_uses_words_the_catalogue_never_does() -> None:
    normal = data.generate_catalogue(400, seed=5)
    drifted = data.generate_catalogue(400, seed=5, drift=True, label_noise=0.0)
    again = data.generate_catalogue(400, seed=5, drift=True, label_noise=0.0)
    pd.testing.assert_frame_equal(drifted, again)
    assert set(drifted["category_path"]) == set(normal["category_path"])
    assert drifted["image_bytes"].isna().all() and normal["image_bytes"].notna().any()
    catalogue_words = {w for text in normal["title"] + " " + normal["description"]
                       for w in text.lower().split()}  # fmt: skip
    for row in drifted.itertuples():
        own = set(data.DRIFT_WORDS[row.category_path])
        assert own & set(row.title.split()), row.title  # the category's product-line names
        assert not own & catalogue_words
