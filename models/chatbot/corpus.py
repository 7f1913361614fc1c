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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import numpy as np
from fpdf import FPDF

from services.domain.documents.ingest import Product

_T = TypeVar("_T")

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
    """One known fact: where it is (file, 1-based page), its sentence, a question, the answer;
    the product it is about (``item``, e.g. "Zephyr blender K42") and what it tells
    (``topic``: one of :data:`TOPICS`)."""

    file: str
    page: int
    sentence: str
    question: str
    answer: str
    item: str = ""
    topic: str = ""


@dataclass
class ManualCorpus:
    """Generated PDF files (name -> bytes) and the facts they contain."""

    files: dict[str, bytes] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)


TOPICS: Final = (
    "warranty", "weight", "battery", "colours", "factory", "returns", "power", "support",
    "cleaning",
)  # fmt: skip
"""What each of a product's facts tells, in the order :func:`_facts_of` writes them."""


def _facts_of(item: str, rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """(topic, sentence, question, answer) about one product, in a shuffled order."""
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
    return [(TOPICS[i], *facts[i]) for i in order]


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
                group = [sentence for _, sentence, _, _ in facts[start : start + 3]]
                paragraphs.append(" ".join([*group[:2], filler[0], *group[2:], filler[1]]))
            pages.append(paragraphs)
            corpus.facts.extend(
                Fact(name, page + 1, sentence, question, answer, item=item, topic=topic)
                for topic, sentence, question, answer in facts
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


# The hard set: questions a dense retriever misses, paraphrases, questions without an answer,
# questions asking two facts at once. Generated from the same manuals and catalogue.

HARD_KINDS: Final = (
    "model-number", "catalogue-code", "number-unit", "rare-term", "paraphrase",
    "paraphrase-unnamed", "multi-fact", "no-answer",
)  # fmt: skip
LATER_KINDS: Final = frozenset({"paraphrase-unnamed"})
"""Kinds generated from a stream of their own (see :func:`hard_questions`)."""
PARAPHRASES: Final = {
    "warranty": "If the {item} breaks, for how many months will the maker repair it for free?",
    "weight": "What does the {item} tip the scales at?",
    "battery": "How many hours can I use the {item} unplugged before it needs the charger?",
    "colours": "What shades is the {item} offered in?",
    "factory": "In which town is the {item} put together?",
    "returns": "How long do I have to send back the {item} if I never used it?",
    "power": "How much electricity does the {item} pull when running flat out?",
    "support": "What number do I dial to reach a person about the {item}?",
    "cleaning": "How do I keep the casing of the {item} spotless?",
}
"""Each topic asked in words far from the manual's own sentence (the product still named)."""
UNNAMED: Final = {
    "warranty": "How long is the guarantee on the {thing}?",
    "weight": "What does the {thing} tip the scales at?",
    "battery": "How long can the {thing} run cordless between top-ups?",
    "colours": "What shades is the {thing} offered in?",
    "factory": "In which town is the {thing} put together?",
    "returns": "How long do I have to send back the {thing} if I never used it?",
    "power": "How much electricity does the {thing} pull when running flat out?",
    "support": "What number do I dial to reach a person about the {thing}?",
    "cleaning": "How do I keep the casing of the {thing} spotless?",
}
"""Each topic asked with no word of the manual's sentence, about a product described, not named."""
DESCRIPTIONS: Final = {
    "blender": "smoothie maker",
    "desk lamp": "reading light",
    "kettle": "tea boiler",
    "camera drone": "quadcopter",
    "bluetooth speaker": "wireless loudspeaker",
    "air purifier": "pollen filtering unit",
    "robot vacuum": "automatic floor sweeper",
    "electric toothbrush": "sonic dental brush",
    "coffee grinder": "espresso bean mill",
    "smart thermostat": "connected heating controller",
    "e-bike": "pedal-assist bicycle",
    "hair dryer": "blow drier",
    "rice cooker": "grain steamer",
    "fitness tracker": "activity wristband",
    "projector": "home cinema beamer",
    "standing fan": "pedestal ventilator",
}
"""Each thing of :data:`NOUNS` in other words: what a user calls it without the manual at hand."""
REVERSE: Final = {
    "warranty": "Which product has a warranty of {answer}?",
    "weight": "Which product weighs {answer}?",
    "battery": "Which product's battery lasts {answer} on one charge?",
    "returns": "Which product can be returned within {answer}?",
    "power": "Which appliance draws {answer}?",
    "support": "Whose customer support is on extension {answer}?",
}
"""Numbers with units: which product a figure belongs to (asked only when it is unique)."""
RARE: Final = {
    "factory": "Which product is assembled in {answer}?",
    "colours": "Which product is sold in {answer} finishes?",
}
NO_ANSWER: Final = (
    "What is the noise level of the {item} in decibels?",
    "Is the {item} dishwasher safe?",
    "How many speed settings does the {item} have?",
    "Which smartphone app controls the {item}?",
    "What is the water resistance rating of the {item}?",
)
"""Questions about products of the manuals that no source answers."""
_CODE = re.compile(r"\b[A-Z]\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class HardQuestion:
    """One question of the hard set.

    ``facts`` (manual sentences) or ``product_id`` say which sources answer it (none: the right
    answer is "I do not know"); ``answers`` are the strings a right answer contains, all of them
    (empty: the answer is not checked, only the citations). ``split`` is "dev" (look at it while
    tuning retrieval) or "test" (report it; do not tune on it).
    """

    kind: str
    question: str
    split: str
    facts: tuple[Fact, ...] = ()
    product_id: str | None = None
    answers: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.facts) or self.product_id is not None


def _unique(values: Sequence[str]) -> set[str]:
    """The values that occur once (case-insensitive)."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value.lower()] = counts.get(value.lower(), 0) + 1
    return {value for value in values if counts[value.lower()] == 1}


def _code(item: str) -> str:
    return item.rsplit(" ", 1)[-1]


def _noun(item: str) -> str:
    """The thing a manual's item is ("Zephyr camera drone K42" -> "camera drone")."""
    return item.split(" ", 1)[1].rsplit(" ", 1)[0]


def _sample(rng: np.random.Generator, items: Sequence[_T], count: int) -> list[_T]:
    if not items:
        return []
    picks = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return [items[int(i)] for i in picks]


def _manual_hard(
    facts: Sequence[Fact], rng: np.random.Generator, per_kind: int
) -> list[tuple[str, str, tuple[Fact, ...], tuple[str, ...]]]:
    """(kind, question, facts, answers) of the manuals."""
    out: list[tuple[str, str, tuple[Fact, ...], tuple[str, ...]]] = []
    items = sorted({f.item for f in facts})
    codes = _unique([_code(item) for item in items])
    # Model numbers: the product named by its code alone ("model K42"), nothing else.
    coded = [f for f in facts if _code(f.item) in codes]
    for fact in _sample(rng, coded, per_kind):
        question = fact.question.replace(f"the {fact.item}", f"model {_code(fact.item)}")
        out.append(("model-number", question, (fact,), (fact.answer,)))
    # Numbers with units and rare terms: which product a unique figure or name belongs to.
    for kind, templates in (("number-unit", REVERSE), ("rare-term", RARE)):
        candidates: list[Fact] = []
        for topic in templates:
            of_topic = [f for f in facts if f.topic == topic]
            unique = _unique([f.answer for f in of_topic])
            candidates.extend(f for f in of_topic if f.answer in unique)
        for fact in _sample(rng, candidates, per_kind):
            question = templates[fact.topic].format(answer=fact.answer)
            out.append((kind, question, (fact,), (fact.item,)))
    # Paraphrases far from the manual's wording.
    for fact in _sample(rng, list(facts), per_kind):
        out.append(("paraphrase", PARAPHRASES[fact.topic].format(item=fact.item), (fact,),
                    (fact.answer,)))  # fmt: skip
    # Two facts of one product in one question.
    by_item: dict[str, list[Fact]] = {}
    for fact in facts:
        by_item.setdefault(fact.item, []).append(fact)
    for _ in range(per_kind):
        item = items[int(rng.integers(len(items)))]
        first, second = _sample(rng, by_item[item], 2)
        question = f"{first.question[:-1]}, and {second.question[0].lower()}{second.question[1:]}"
        out.append(("multi-fact", question, (first, second), (first.answer, second.answer)))
    # No source answers: an unknown property of a known product, or a known property of a
    # product that is in no manual (a brand and thing of the manuals, a new model number).
    names = [f"{brand} {noun}" for brand in BRANDS for noun in NOUNS]
    known = {item.rsplit(" ", 1)[0] for item in items}
    strangers = [name for name in names if name not in known]
    topics = [f for f in facts if f.topic in ("warranty", "weight", "battery", "power")]
    for n in range(per_kind):
        if n % 2 == 0:
            template = NO_ANSWER[int(rng.integers(len(NO_ANSWER)))]
            question = template.format(item=items[int(rng.integers(len(items)))])
        else:
            stranger = strangers[int(rng.integers(len(strangers)))]
            fact = topics[int(rng.integers(len(topics)))]
            new_code = f"{chr(65 + int(rng.integers(26)))}{int(rng.integers(100, 999))}"
            question = fact.question.replace(fact.item, f"{stranger} {new_code}")
        out.append(("no-answer", question, (), ()))
    return out


def _unnamed_hard(
    facts: Sequence[Fact], rng: np.random.Generator, per_kind: int
) -> list[tuple[str, str, tuple[Fact, ...], tuple[str, ...]]]:
    """Paraphrases sharing no word with the manual: the product described by what it is (only
    where one product of the manuals is that thing), the topic in other words."""
    nouns = _unique([_noun(f.item) for f in {f.item: f for f in facts}.values()])
    described = [f for f in facts if _noun(f.item) in nouns]
    return [
        ("paraphrase-unnamed", UNNAMED[f.topic].format(thing=DESCRIPTIONS[_noun(f.item)]), (f,),
         (f.answer,))
        for f in _sample(rng, described, per_kind)
    ]  # fmt: skip


def _catalogue_hard(
    products: Sequence[Product], rng: np.random.Generator, per_kind: int
) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(kind, question, product id, answers) of the catalogue."""
    texts = [p.text() for p in products]
    tokens = [token for text in texts for token in set(_CODE.findall(text))]
    unique_codes = _unique(tokens)
    coded = [
        (p, code)
        for p in products
        for code in _CODE.findall(p.title)
        if code in unique_codes and p.brand
    ]
    out: list[tuple[str, str, str, tuple[str, ...]]] = []
    for product, code in _sample(rng, coded, per_kind):
        out.append(
            (
                "catalogue-code",
                f"How much does the {product.brand} {code} cost?",
                product.product_id,
                (f"{product.price:.2f}",),
            )
        )
    prices = _unique([f"{p.price:.2f}" for p in products])
    priced = [p for p in products if f"{p.price:.2f}" in prices and p.brand]
    for product in _sample(rng, priced, per_kind // 2):
        out.append(
            (
                "number-unit",
                f"Which {product.brand} product costs {product.price:.2f} USD?",
                product.product_id,
                (product.title,),
            )
        )
    return out


def hard_questions(
    facts: Sequence[Fact], products: Sequence[Product], *, per_kind: int = 40, seed: int = 7
) -> list[HardQuestion]:
    """The hard set (kinds :data:`HARD_KINDS`, at most ``per_kind`` questions each, number-unit
    from both halves), reproducible by ``seed``; each kind split in halves, dev and test."""
    rng = np.random.default_rng([seed, 1])
    # The kinds added later draw from their own stream: the earlier kinds' questions and
    # splits stay what they were.
    later = np.random.default_rng([seed, 2])
    drafts: list[HardQuestion] = [
        HardQuestion(kind, question, "", facts=facts_, answers=answers)
        for kind, question, facts_, answers in (
            *_manual_hard(facts, rng, per_kind),
            *_unnamed_hard(facts, later, per_kind),
        )
    ] + [
        HardQuestion(kind, question, "", product_id=product_id, answers=answers)
        for kind, question, product_id, answers in _catalogue_hard(products, rng, per_kind)
    ]
    unique: dict[str, HardQuestion] = {}
    for draft in drafts:
        unique.setdefault(draft.question.lower(), draft)
    drafts = list(unique.values())
    questions: list[HardQuestion] = []
    for kind in HARD_KINDS:
        of_kind = [q for q in drafts if q.kind == kind]
        order = (later if kind in LATER_KINDS else rng).permutation(len(of_kind))
        for position, index in enumerate(order):
            split = "dev" if position % 2 == 0 else "test"
            draft = of_kind[int(index)]
            questions.append(
                HardQuestion(
                    draft.kind, draft.question, split, draft.facts, draft.product_id, draft.answers
                )  # fmt: skip
            )
    return questions
