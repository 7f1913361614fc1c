"""Product-catalogue data: a seeded synthetic generator in a real e-commerce schema, a loader.

- ``generate_catalogue(rows, seed=...)`` makes a reproducible DataFrame of products
  (``CATALOGUE_COLUMNS``: product_id, title, description, brand, price, category_path, image,
  image_bytes) over the 22 leaf categories of ``CATEGORIES``. No data is downloaded: the
  "world" (vocabularies, brands, prices, visual styles) is fixed here, the seed draws products.
- ``load_catalogue(path, images_dir=...)`` reads a real catalogue (JSON lines or CSV, images as
  files on disk) into the same schema; ``write_catalogue(df, directory)`` writes one (JSON lines
  + an ``images/`` folder), so the generator's output round-trips through the loader.

What makes the synthetic catalogue realistic (and not trivially separable):
- categories form a tree (department > group > leaf); leaves of the same group share their
  group's nouns, features and brands, so neighbouring categories overlap in vocabulary;
- some titles name only the group ("wireless audio device"), some descriptions mention a
  neighbour's words ("pairs well with ..."), brands are shared within a department;
- class sizes are unequal; about ``LABEL_NOISE`` of products carry a neighbouring category's label
  (as a shop's mis-categorised listings do);
- images (64x64 JPEG, Pillow) carry the category's visual style (object hue and shape) plus
  background clutter, jitter, pixel noise and occasional distractor objects; some products have
  no image.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

CATALOGUE_COLUMNS: Final[tuple[str, ...]] = (
    "product_id",
    "title",
    "description",
    "brand",
    "price",
    "category_path",
    "image",
    "image_bytes",
)
PATH_SEPARATOR: Final = " > "
LABEL_NOISE: Final = 0.02
IMAGE_PROBABILITY: Final = 0.9
IMAGE_SIZE: Final = 64


@dataclass(frozen=True)
class Category:
    """One leaf category: its path, own words, price level and visual style."""

    path: str
    nouns: tuple[str, ...]
    features: tuple[str, ...]
    price: float
    hue: float
    shape: str

    @property
    def group(self) -> str:
        return self.path.rsplit(PATH_SEPARATOR, 1)[0]

    @property
    def department(self) -> str:
        return self.path.split(PATH_SEPARATOR, 1)[0]


def _c(path: str, nouns: str, features: str, price: float, hue: float, shape: str) -> Category:
    return Category(path, tuple(nouns.split(",")), tuple(features.split(",")), price, hue, shape)


CATEGORIES: Final[tuple[Category, ...]] = (
    _c(
        "Electronics > Audio > Headphones",
        "headphones,earbuds,headset,earphones",
        "noise cancelling,over ear,in ear,ear cushions,40mm drivers",
        89,
        0.00,
        "ring",
    ),
    _c(
        "Electronics > Audio > Speakers",
        "speaker,soundbar,subwoofer,boombox",
        "360 sound,deep bass,waterproof speaker,stereo pairing,20w output",
        120,
        0.08,
        "circle",
    ),
    _c(
        "Electronics > Computers > Laptops",
        "laptop,notebook,ultrabook,chromebook",
        "14 inch display,16gb ram,512gb ssd,backlit keyboard,intel core",
        900,
        0.58,
        "rect",
    ),
    _c(
        "Electronics > Computers > Monitors",
        "monitor,display,screen,gaming monitor",
        "27 inch,144hz refresh,ips panel,4k uhd,vesa mount",
        300,
        0.66,
        "wide",
    ),
    _c(
        "Electronics > Phones > Smartphones",
        "smartphone,phone,mobile phone,android phone",
        "dual sim,triple camera,5g,6 7 inch oled,fast charging",
        650,
        0.75,
        "tall",
    ),
    _c(
        "Electronics > Phones > Phone Cases",
        "phone case,cover,bumper case,wallet case",
        "shockproof,slim fit,raised edges,card slot,clear back",
        19,
        0.83,
        "frame",
    ),
    _c(
        "Home & Kitchen > Kitchen > Cookware",
        "frying pan,saucepan,skillet,stock pot",
        "non stick,cast iron,induction base,oven safe,stainless steel",
        45,
        0.04,
        "pan",
    ),
    _c(
        "Home & Kitchen > Kitchen > Coffee Makers",
        "coffee maker,espresso machine,french press,drip brewer",
        "15 bar pump,milk frother,programmable timer,12 cup carafe,grinder",
        110,
        0.10,
        "tall",
    ),
    _c(
        "Home & Kitchen > Furniture > Chairs",
        "chair,office chair,armchair,dining chair",
        "lumbar support,swivel base,upholstered seat,solid oak legs,adjustable height",
        150,
        0.12,
        "chair",
    ),
    _c(
        "Home & Kitchen > Furniture > Desks",
        "desk,standing desk,writing desk,computer desk",
        "height adjustable,cable management,steel frame,spacious desktop,drawers",
        220,
        0.16,
        "wide",
    ),
    _c(
        "Home & Kitchen > Bedding > Bed Sheets",
        "bed sheets,sheet set,fitted sheet,duvet cover",
        "400 thread count,egyptian cotton,deep pocket,queen size,breathable percale",
        55,
        0.50,
        "stripes_h",
    ),
    _c(
        "Clothing > Men > T-Shirts",
        "t shirt,tee,crew neck tee,polo shirt",
        "100 cotton,short sleeve,regular fit,graphic print,v neck",
        18,
        0.62,
        "shirt",
    ),
    _c(
        "Clothing > Women > Dresses",
        "dress,maxi dress,midi dress,sundress",
        "floral print,a line,wrap waist,chiffon,sleeveless",
        49,
        0.90,
        "triangle",
    ),
    _c(
        "Clothing > Shoes > Running Shoes",
        "running shoes,sneakers,trainers,jogging shoes",
        "cushioned sole,breathable mesh,lightweight,arch support,reflective",
        95,
        0.30,
        "shoe",
    ),
    _c(
        "Clothing > Shoes > Boots",
        "boots,ankle boots,hiking boots,chelsea boots",
        "leather upper,lug sole,waterproof lining,lace up,steel toe",
        130,
        0.07,
        "boot",
    ),
    _c(
        "Sports & Outdoors > Fitness > Yoga Mats",
        "yoga mat,exercise mat,pilates mat,fitness mat",
        "non slip,6mm thick,carrying strap,eco tpe,extra long",
        29,
        0.45,
        "stripes_v",
    ),
    _c(
        "Sports & Outdoors > Fitness > Dumbbells",
        "dumbbells,dumbbell set,kettlebell,hand weights",
        "adjustable weight,hex rubber,chrome handle,10 kg pair,knurled grip",
        60,
        0.00,
        "dumbbell",
    ),
    _c(
        "Sports & Outdoors > Cycling > Bike Helmets",
        "bike helmet,cycling helmet,mtb helmet,road helmet",
        "mips protection,ventilation holes,adjustable dial,visor,certified en1078",
        70,
        0.35,
        "dome",
    ),
    _c(
        "Toys & Games > Building > Building Blocks",
        "building blocks,brick set,construction set,bricks",
        "500 pieces,compatible bricks,creative build,instruction booklet,ages 6 plus",
        35,
        0.15,
        "grid",
    ),
    _c(
        "Toys & Games > Dolls > Dolls",
        "doll,fashion doll,baby doll,rag doll",
        "poseable limbs,accessories included,soft body,removable outfit,brushable hair",
        25,
        0.95,
        "dots",
    ),
    _c(
        "Beauty > Skincare > Moisturizers",
        "moisturizer,face cream,day cream,night cream",
        "hyaluronic acid,spf 30,fragrance free,for dry skin,vitamin c",
        22,
        0.55,
        "jar",
    ),
    _c(
        "Beauty > Hair > Shampoo",
        "shampoo,conditioner,2 in 1 shampoo,clarifying shampoo",
        "sulfate free,argan oil,for curly hair,anti dandruff,volumizing",
        12,
        0.40,
        "bottle",
    ),
)
"""The leaf categories (22) of the synthetic catalogue."""

CATEGORY_PATHS: Final[tuple[str, ...]] = tuple(c.path for c in CATEGORIES)

GROUP_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "Electronics > Audio": ("wireless audio", "bluetooth 5 3", "hi fi sound", "audio device"),
    "Electronics > Computers": ("computer", "usb c", "pc accessory", "hdmi port"),
    "Electronics > Phones": ("iphone 15", "galaxy s24", "mobile accessory", "phone"),
    "Home & Kitchen > Kitchen": ("kitchen", "dishwasher safe", "kitchen appliance", "cooking"),
    "Home & Kitchen > Furniture": ("furniture", "home office", "easy assembly", "wood finish"),
    "Home & Kitchen > Bedding": ("bedroom", "soft touch", "machine washable", "bedding"),
    "Clothing > Men": ("men", "menswear", "casual wear", "cotton blend"),
    "Clothing > Women": ("women", "womenswear", "summer collection", "ladies"),
    "Clothing > Shoes": ("footwear", "rubber outsole", "men and women", "shoe size guide"),
    "Sports & Outdoors > Fitness": ("workout", "home gym", "fitness gear", "training"),
    "Sports & Outdoors > Cycling": ("cycling", "bike", "outdoor ride", "adult size"),
    "Toys & Games > Building": ("toy", "stem learning", "kids gift", "educational"),
    "Toys & Games > Dolls": ("toy", "kids gift", "pretend play", "girls and boys"),
    "Beauty > Skincare": ("skincare", "dermatologist tested", "beauty routine", "cruelty free"),
    "Beauty > Hair": ("hair care", "salon quality", "beauty routine", "paraben free"),
}

DEPARTMENT_BRANDS: Final[dict[str, tuple[str, ...]]] = {
    "Electronics": ("Sonix", "Voltra", "Nexon", "Auralink", "Pixelon", "Kestrel"),
    "Home & Kitchen": ("Casa Verde", "Homely", "Oakridge", "Brewline", "Linenry"),
    "Clothing": ("Northwind", "Urbana", "Stridex", "Peakline", "Velvet Lane"),
    "Sports & Outdoors": ("Peakline", "IronCore", "Trailhawk", "Flexa"),
    "Toys & Games": ("Brickly", "Playnest", "Tinytown", "Joybox"),
    "Beauty": ("Lumiere", "Purely", "Dermaline", "Silkroot"),
}

GENERIC_ADJECTIVES: Final = (
    "new", "premium", "classic", "portable", "durable", "modern", "compact", "deluxe",
    "black", "white", "grey", "blue", "red", "2024 model", "best seller", "pro", "essential",
)  # fmt: skip
FILLER: Final = (
    "Ships in recyclable packaging.",
    "Backed by a two year warranty.",
    "Perfect as a gift.",
    "Designed for everyday use.",
    "Free returns within 30 days.",
    "Customers love the quality.",
    "Available in several colours.",
    "",
)

SHAPES: Final = (
    "ring", "circle", "rect", "wide", "tall", "frame", "pan", "chair", "stripes_h", "shirt",
    "triangle", "shoe", "boot", "stripes_v", "dumbbell", "dome", "grid", "dots", "jar", "bottle",
)  # fmt: skip


def neighbours(index: int) -> list[int]:
    """Indexes of the categories sharing a group with ``index`` (else its department)."""
    cat = CATEGORIES[index]
    same_group = [i for i, c in enumerate(CATEGORIES) if i != index and c.group == cat.group]
    if same_group:
        return same_group
    return [i for i, c in enumerate(CATEGORIES) if i != index and c.department == cat.department]


def _hsv_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    image = Image.new("HSV", (1, 1), (int(h % 1.0 * 255), int(s * 255), int(v * 255)))
    r, g, b = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    return int(r), int(g), int(b)


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: tuple[int, ...]
) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    if shape == "ring":
        draw.ellipse(box, outline=fill, width=max(3, w // 6))
    elif shape in ("circle", "dome"):
        if shape == "dome":
            draw.pieslice(box, 180, 360, fill=fill)
        else:
            draw.ellipse(box, fill=fill)
    elif shape == "rect":
        draw.rectangle((x0, y0 + h // 4, x1, y1 - h // 4), fill=fill)
    elif shape == "wide":
        draw.rectangle((x0, y0 + h // 3, x1, y1 - h // 4), fill=fill)
        draw.rectangle((cx - 2, y1 - h // 4, cx + 2, y1), fill=fill)
    elif shape == "tall":
        draw.rectangle((x0 + w // 4, y0, x1 - w // 4, y1), fill=fill)
    elif shape == "frame":
        draw.rectangle((x0 + w // 4, y0, x1 - w // 4, y1), outline=fill, width=3)
    elif shape == "pan":
        draw.ellipse((x0, y0 + h // 4, x0 + w * 2 // 3, y1 - h // 4), fill=fill)
        draw.rectangle((x0 + w * 2 // 3, cy - 2, x1, cy + 2), fill=fill)
    elif shape == "chair":
        draw.rectangle((x0, y0, x0 + 4, y1), fill=fill)
        draw.rectangle((x0, cy, x1, cy + 4), fill=fill)
        draw.rectangle((x1 - 4, cy, x1, y1), fill=fill)
    elif shape == "stripes_h":
        for y in range(y0, y1, 6):
            draw.rectangle((x0, y, x1, y + 2), fill=fill)
    elif shape == "stripes_v":
        for x in range(x0, x1, 6):
            draw.rectangle((x, y0, x + 2, y1), fill=fill)
    elif shape == "shirt":
        draw.polygon(
            [(x0, y0 + h // 4), (cx, y0), (x1, y0 + h // 4), (x1 - w // 5, y1), (x0 + w // 5, y1)],
            fill=fill,
        )
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "shoe":
        draw.polygon([(x0, cy), (cx, cy), (x1, y1 - h // 6), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "boot":
        draw.polygon(
            [(x0 + w // 4, y0), (cx, y0), (cx, cy), (x1, y1 - 4), (x1, y1), (x0 + w // 4, y1)],
            fill=fill,
        )
    elif shape == "dumbbell":
        draw.rectangle((x0, y0 + h // 4, x0 + w // 4, y1 - h // 4), fill=fill)
        draw.rectangle((x1 - w // 4, y0 + h // 4, x1, y1 - h // 4), fill=fill)
        draw.rectangle((x0, cy - 2, x1, cy + 2), fill=fill)
    elif shape == "grid":
        for x in range(x0, x1, 8):
            for y in range(y0, y1, 8):
                draw.rectangle((x, y, x + 5, y + 5), fill=fill)
    elif shape == "dots":
        for x in range(x0, x1, 9):
            for y in range(y0, y1, 9):
                draw.ellipse((x, y, x + 4, y + 4), fill=fill)
    elif shape == "jar":
        draw.rectangle((x0 + w // 6, y0 + h // 3, x1 - w // 6, y1), fill=fill)
        draw.rectangle((x0 + w // 4, y0 + h // 6, x1 - w // 4, y0 + h // 3), fill=fill)
    elif shape == "bottle":
        draw.rectangle((x0 + w // 3, y0 + h // 3, x1 - w // 3, y1), fill=fill)
        draw.rectangle((cx - 2, y0, cx + 2, y0 + h // 3), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_image(category: Category, rng: np.random.Generator) -> bytes:
    """A 64x64 JPEG product photo in ``category``'s visual style, with clutter and noise."""
    background = _hsv_rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.8, 1.0))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.25:  # a distractor object of any style
        other = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE - 20, size=2))
        colour = _hsv_rgb(other.hue + rng.normal(0, 0.03), rng.uniform(0.4, 1.0), 0.7)
        _draw_shape(draw, other.shape, (x, y, x + 18, y + 18), colour)
    size = int(rng.integers(30, 50))
    x, y = (int(v) for v in rng.integers(4, IMAGE_SIZE - size - 4, size=2))
    colour = _hsv_rgb(
        category.hue + rng.normal(0, 0.025), rng.uniform(0.55, 1.0), rng.uniform(0.45, 0.95)
    )
    _draw_shape(draw, category.shape, (x, y, x + size, y + size), colour)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, 12.0, size=pixels.shape).astype(np.float32)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _title(cat: Category, brand: str, rng: np.random.Generator) -> str:
    group_words = GROUP_WORDS[cat.group]
    noun = _pick(rng, cat.nouns) if rng.random() < 0.8 else _pick(rng, group_words)
    parts = [brand] if rng.random() < 0.8 else []
    parts += [_pick(rng, GENERIC_ADJECTIVES)]
    if rng.random() < 0.5:
        parts.append(_pick(rng, group_words))
    if rng.random() < 0.5:
        parts.append(_pick(rng, cat.features))
    parts.append(noun)
    if rng.random() < 0.3:
        parts.append(f"{chr(65 + int(rng.integers(26)))}{int(rng.integers(10, 999))}")
    return " ".join(parts).strip().title() if rng.random() < 0.5 else " ".join(parts).strip()


def _description(cat: Category, index: int, rng: np.random.Generator) -> str:
    sentences = []
    if rng.random() < 0.75:
        feats = rng.choice(len(cat.features), size=2, replace=False)
        sentences.append(
            f"This {_pick(rng, cat.nouns)} features {cat.features[feats[0]]} "
            f"and {cat.features[feats[1]]}."
        )
    sentences.append(f"Great for {_pick(rng, GROUP_WORDS[cat.group])} lovers.")
    if rng.random() < 0.2:  # vocabulary of a neighbouring category
        other = CATEGORIES[_pick_index(rng, neighbours(index))]
        sentences.append(
            f"Pairs well with our {_pick(rng, other.nouns)} ({_pick(rng, other.features)})."
        )
    sentences.append(_pick(rng, FILLER))
    return " ".join(s for s in sentences if s)


def _pick_index(rng: np.random.Generator, options: Sequence[int]) -> int:
    return options[int(rng.integers(len(options)))]


def _drift_words() -> dict[str, tuple[str, ...]]:
    """Per category, the product-line names of the shifted feed (words no catalogue uses)."""
    syllables = ("ka", "zo", "mi", "ru", "te", "vo", "lin", "dra", "pex", "qu", "so", "fa", "nu")
    rng = np.random.default_rng(2026)
    words: dict[str, tuple[str, ...]] = {}
    for cat in CATEGORIES:
        words[cat.path] = tuple(
            "".join(syllables[int(i)] for i in rng.integers(len(syllables), size=3)) + "x"
            for _ in range(DRIFT_WORDS_PER_CATEGORY)
        )
    return words


DRIFT_WORDS_PER_CATEGORY: Final = 4
DRIFT_WORDS: Final = _drift_words()


def _drifted_text(cat: Category, rng: np.random.Generator) -> tuple[str, str, str]:
    """Brand, title and description of a product of the shifted feed."""
    words = DRIFT_WORDS[cat.path]
    brand = _pick(rng, DEPARTMENT_BRANDS[cat.department])
    title = f"{brand} {_pick(rng, GENERIC_ADJECTIVES)} {_pick(rng, words)} {_pick(rng, words)}"
    description = f"The new {_pick(rng, words)} line. {_pick(rng, FILLER)}"
    return brand, title, description


def generate_catalogue(
    rows: int,
    *,
    seed: int = 42,
    label_noise: float = LABEL_NOISE,
    images: bool = True,
    drift: bool = False,
) -> pd.DataFrame:
    """``rows`` synthetic products (``CATALOGUE_COLUMNS``); same ``seed`` -> same catalogue.

    ``drift=True``: a shifted product distribution, as from a new marketplace feed: sellers name
    products by their own product lines (words the catalogue never uses, ``DRIFT_WORDS``)
    instead of the catalogue's nouns and features, and there are no images. A model trained on
    the catalogue is close to guessing on it; labelled feedback on it is what retraining learns
    from.
    """
    if rows <= 0:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 1])
    weights = np.random.default_rng(1234).uniform(0.6, 1.4, size=len(CATEGORIES))
    weights /= weights.sum()
    records: list[dict[str, Any]] = []
    for row in range(rows):
        index = int(rng.choice(len(CATEGORIES), p=weights))
        cat = CATEGORIES[index]
        if drift:
            brand, title, description = _drifted_text(cat, rng)
        else:
            brand = _pick(rng, DEPARTMENT_BRANDS[cat.department])
            title = _title(cat, brand, rng)
            description = _description(cat, index, rng)
        price = round(float(cat.price * rng.lognormal(0.0, 0.35)), 2)
        image_bytes = (
            render_image(cat, rng)
            if images and not drift and rng.random() < IMAGE_PROBABILITY
            else None
        )
        label = cat.path
        # Own stream, drawn for every row: the noise rate changes labels, nothing else.
        flip, pick = noise_rng.random(), noise_rng.random()
        if flip < label_noise:
            options = neighbours(index)
            label = CATEGORIES[options[int(pick * len(options))]].path
        product_id = f"P{seed:04d}{row:07d}"
        records.append(
            {
                "product_id": product_id,
                "title": title,
                "description": description,
                "brand": brand,
                "price": price,
                "category_path": label,
                "image": f"images/{product_id}.jpg" if image_bytes is not None else None,
                "image_bytes": image_bytes,
            }
        )
    return pd.DataFrame.from_records(records, columns=list(CATALOGUE_COLUMNS))


def write_catalogue(catalogue: pd.DataFrame, directory: Path) -> Path:
    """Write ``products.jsonl`` and ``images/`` under ``directory``; returns the JSONL path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "images").mkdir(exist_ok=True)
    path = directory / "products.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in catalogue.to_dict(orient="records"):
            data = record.pop("image_bytes", None)
            if data is not None and record.get("image"):
                (directory / str(record["image"])).write_bytes(data)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "product_id": ("product_id", "id", "sku", "asin", "uniq_id"),
    "title": ("title", "name", "product_name"),
    "description": ("description", "product_description", "desc"),
    "brand": ("brand", "manufacturer"),
    "price": ("price", "retail_price", "sale_price"),
    "category_path": ("category_path", "category", "categories", "product_category_tree"),
    "image": ("image", "image_path", "image_file", "imageurl", "image_url"),
}


def _category_path(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        parts = [str(v).strip() for v in value if str(v).strip()]
        return PATH_SEPARATOR.join(parts) or None
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().strip("[]\"'")
    for separator in (">>", ">", "/", "|"):
        if separator in text:
            return PATH_SEPARATOR.join(p.strip() for p in text.split(separator) if p.strip())
    return text or None


def load_catalogue(path: Path, *, images_dir: Path | None = None) -> pd.DataFrame:
    """A real catalogue (``.jsonl``/``.json`` lines or ``.csv``) in ``CATALOGUE_COLUMNS``.

    Common column names are mapped (``name`` -> title, ``sku`` -> product_id,
    ``product_category_tree`` -> category_path ...); category paths given as lists or with
    ``>``/``>>``/``/``/``|`` separators become ``"A > B > C"``. ``image`` holds a file path
    relative to ``images_dir`` (default: the catalogue's folder); unreadable or missing images
    become ``None``. Rows without a title or a category are dropped.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        raw = pd.read_json(path, lines=True, dtype=False)
    else:
        raise ValueError(f"unsupported catalogue format {path.suffix!r} (jsonl, json, csv)")
    lower = {str(c).lower(): c for c in raw.columns}
    out = pd.DataFrame(index=raw.index)
    for column, aliases in _ALIASES.items():
        source = next((lower[a] for a in aliases if a in lower), None)
        out[column] = raw[source] if source is not None else None
    if out["product_id"].isna().all():
        out["product_id"] = [f"row{i}" for i in range(len(out))]
    out["category_path"] = [_category_path(v) for v in out["category_path"]]
    out["title"] = out["title"].fillna("").astype(str).str.strip()
    out["description"] = out["description"].fillna("").astype(str)
    out["brand"] = out["brand"].fillna("").astype(str)
    out["price"] = pd.to_numeric(out["price"], errors="coerce")
    root = images_dir if images_dir is not None else path.parent
    blobs: list[bytes | None] = []
    missing = 0
    for image in out["image"]:
        data = None
        if isinstance(image, str) and image.strip():
            file = root / image.strip()
            try:
                data = file.read_bytes()
            except OSError:
                missing += 1
        blobs.append(data)
    if missing:
        log.warning("%d catalogue images were missing or unreadable under %s", missing, root)
    out["image_bytes"] = blobs
    out["product_id"] = out["product_id"].astype(str)
    keep = (out["title"] != "") & out["category_path"].notna()
    dropped = int((~keep).sum())
    if dropped:
        log.warning("dropped %d catalogue rows without a title or a category", dropped)
    return out.loc[keep, list(CATALOGUE_COLUMNS)].reset_index(drop=True)
