"""Generated chatbot corpus with known answers: product manuals as PDFs, and questions.

No data is downloaded: a seeded generator writes product manuals (fpdf2) about invented
products, one product per page, each page a few paragraphs of facts (warranty, weight, battery,
colours, ...) mixed with filler text. Every fact sentence is recorded with its file and page, so
an evaluation knows which chunk answers which question. The catalogue half of the evaluation
asks about products of the synthetic catalogue (``models.classifier.data``) by their title.

    corpus = generate_manuals(files=4, seed=7)
    corpus.files["eval-manual-01.pdf"]   # PDF bytes
    corpus.facts[0]                      # Fact(file, page, sentence, question, answer)
    questions = catalogue_questions(products, count=100, seed=7)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from fpdf import FPDF

from services.domain.documents.ingest import Product

BRANDS: Final = (
    "Zephyr", "Orion", "Kestrel", "Lumio", "Vantor", "Quill", "Brisa", "Halden", "Marlo",
    "Tessel", "Corvi", "Altura", "Nimbra", "Solvik", "Pellan", "Ruvo",
)  # fmt: skip
NOUNS: Final = (
    "blender", "desk lamp", "kettle", "camera drone", "bluetooth speaker", "air purifier",
    "robot vacuum", "electric toothbrush", "coffee grinder", "smart thermostat", "e-bike",
    "hair dryer", "rice cooker", "fitness tracker", "projector", "standing fan",
)  # fmt: skip
COLOURS: Final = (
    "teal", "graphite", "sand", "crimson", "ivory", "olive", "navy", "coral", "slate", "amber",
)  # fmt: skip
CITIES: Final = (
    "Porto", "Tallinn", "Osaka", "Monterrey", "Gdansk", "Leuven", "Brno", "Tampere", "Cork",
    "Valencia", "Graz", "Aarhus",
)  # fmt: skip
CLOTHS: Final = ("damp microfibre", "dry cotton", "soft lint-free", "slightly soapy")
FILLER: Final = (
    "Read all safety instructions before first use and keep this manual for later reference.",
    "Unpack the device carefully and check that every part listed in the box is present.",
    "Place the device on a stable, level surface away from heat sources and direct sunlight.",
    "Children should be supervised to ensure that they do not play with the appliance.",
    "Do not immerse the base in water or any other liquid, and unplug it before cleaning.",
    "Dispose of the packaging in accordance with the recycling rules of your municipality.",
    "If the device does not work as described, consult the troubleshooting section first.",
    "Only use accessories and spare parts recommended or sold by the manufacturer.",
    "The illustrations in this manual may differ slightly from the product you purchased.",
    "Register your product online to receive firmware updates and service notices.",
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One known fact: where it is (file, 1-based page), its sentence, a question, the answer."""

    file: str
    page: int
    sentence: str
    question: str
    answer: str


@dataclass
class ManualCorpus:
    """Generated PDF files (name -> bytes) and the facts they contain."""

    files: dict[str, bytes] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)


def _facts_of(item: str, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(sentence, question, answer) about one product, in a shuffled order."""
    months = int(rng.integers(6, 61))
    kilos = f"{rng.uniform(0.3, 12):.1f}"
    hours = int(rng.integers(2, 40))
    first, second = (str(c) for c in rng.choice(COLOURS, size=2, replace=False))
    city = str(rng.choice(CITIES))
    days = int(rng.choice([14, 21, 30, 45, 60, 90]))
    watts = int(rng.integers(5, 2400))
    extension = int(rng.integers(100, 999))
    cloth = str(rng.choice(CLOTHS))
    facts = [
        (
            f"The {item} comes with a manufacturer warranty of {months} months.",
            f"How long is the warranty on the {item}?",
            f"{months} months",
        ),
        (
            f"Without accessories the {item} weighs {kilos} kilograms.",
            f"How heavy is the {item}?",
            f"{kilos} kilograms",
        ),
        (
            f"A full charge of the {item} battery lasts about {hours} hours.",
            f"How long does the battery of the {item} last on one charge?",
            f"{hours} hours",
        ),
        (
            f"The {item} is sold in {first} and {second} finishes.",
            f"Which colours can I buy the {item} in?",
            f"{first} and {second}",
        ),
        (
            f"Every {item} is assembled in our factory in {city}.",
            f"Where is the {item} manufactured?",
            city,
        ),
        (
            f"Unused, the {item} can be returned within {days} days of delivery.",
            f"What is the return period for the {item}?",
            f"{days} days",
        ),
        (
            f"At full power the {item} draws {watts} watts.",
            f"What is the power consumption of the {item}?",
            f"{watts} watts",
        ),
        (
            f"For help with the {item}, call customer support on extension {extension}.",
            f"Which support extension do I call about the {item}?",
            str(extension),
        ),
        (
            f"To clean the {item}, wipe its housing with a {cloth} cloth.",
            f"How should I clean the {item}?",
            f"with a {cloth} cloth",
        ),
    ]
    order = rng.permutation(len(facts))
    return [facts[i] for i in order]


def _pdf(title: str, pages: Sequence[Sequence[str]]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=False)
    for paragraphs in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=14)
        pdf.multi_cell(0, 8, paragraphs[0])
        pdf.set_font("Helvetica", size=10)
        for paragraph in paragraphs[1:]:
            pdf.ln(3)
            pdf.multi_cell(0, 5, paragraph)
    return bytes(pdf.output())


def generate_manuals(
    *, files: int = 4, products_per_file: int = 4, seed: int = 7, prefix: str = "eval-manual"
) -> ManualCorpus:
    """``files`` PDF manuals of ``products_per_file`` invented products each (one per page)."""
    rng = np.random.default_rng(seed)
    names = [f"{brand} {noun}" for brand in BRANDS for noun in NOUNS]
    picks = rng.choice(len(names), size=files * products_per_file, replace=False)
    corpus = ManualCorpus()
    for number in range(files):
        name = f"{prefix}-{number + 1:02d}.pdf"
        pages: list[list[str]] = []
        for page in range(products_per_file):
            base = names[int(picks[number * products_per_file + page])]
            item = f"{base} {chr(65 + int(rng.integers(26)))}{int(rng.integers(2, 99))}"
            facts = _facts_of(item, rng)
            paragraphs: list[str] = [f"{item}: user manual"]
            # Three paragraphs of three facts each, two filler sentences between them.
            for start in range(0, len(facts), 3):
                filler = [str(s) for s in rng.choice(FILLER, size=2, replace=False)]
                group = [sentence for sentence, _, _ in facts[start : start + 3]]
                paragraphs.append(" ".join([*group[:2], filler[0], *group[2:], filler[1]]))
            pages.append(paragraphs)
            corpus.facts.extend(
                Fact(name, page + 1, sentence, question, answer)
                for sentence, question, answer in facts
            )
        corpus.files[name] = _pdf(f"Manuals {number + 1}", pages)
    return corpus


@dataclass(frozen=True, slots=True)
class ProductQuestion:
    """A question whose answer is one product's chunk."""

    product_id: str
    question: str


QUESTION_TEMPLATES: Final = (
    "How much does the {title} cost?",
    "Tell me about the {title}.",
    "What is the price of the {title} by {brand}?",
    "Which category is the {title} in?",
)


def catalogue_questions(
    products: Sequence[Product], *, count: int = 100, seed: int = 7
) -> list[ProductQuestion]:
    """``count`` questions naming a product by its title (products with a unique title only)."""
    titles: dict[str, int] = {}
    for product in products:
        titles[product.title.lower()] = titles.get(product.title.lower(), 0) + 1
    unique = [p for p in products if titles[p.title.lower()] == 1]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(unique), size=min(count, len(unique)), replace=False)
    questions = []
    for index in picks:
        product = unique[int(index)]
        template = QUESTION_TEMPLATES[int(rng.integers(len(QUESTION_TEMPLATES)))]
        questions.append(
            ProductQuestion(
                product.product_id, template.format(title=product.title, brand=product.brand)
            )
        )
    return questions
