"""Read the numbers an answer or a source states, with their units, into comparable quantities.

"45 days", "forty-five days" and "6.5 weeks" are each a duration in seconds; "$4.99" and "4.99
dollars" the same amount of money; "8 am to 8 pm" two clock times and a range. A quantity carries
the keys it claims and the keys it backs when a source states it ("5 business days" backs "5 days",
not the other way round), so chat/grounding/ can compare an answer with its sources by keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

MAX_QUANTITIES = 100  # per answer or source: more is a table or an attack, not a claim to check

_BLANK = re.compile(r"[^\n]")

_SMALL = "zero|one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
NUMBER_WORDS = {w: i for i, w in enumerate(_SMALL.split("|") + _TEENS.split("|"))}
NUMBER_WORDS |= {w: 20 + 10 * i for i, w in enumerate(_TENS.split("|"))}
_BELOW_HUNDRED = rf"(?:(?:{_TENS})(?:[ -](?:{_SMALL}))?|{_TEENS}|{_SMALL})"
_NUMBER = (
    r"(?:(?<![0-9.,A-Za-z])(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,12})(?:\.[0-9]{1,4})?(?![0-9])"
    rf"|\b{_BELOW_HUNDRED}(?:[ -]hundred(?:[ -](?:and[ -])?{_BELOW_HUNDRED})?)?\b)"
)
_CURRENCY = r"(?:[$€£¥]|\b(?:usd|eur|gbp|cad|aud)\s)"
_AMOUNT = re.compile(
    rf"(?P<cur>{_CURRENCY})?(?P<a>{_NUMBER})"
    rf"(?:\s?(?:-|–|—|to|through|and|or)\s?(?P<cur_b>{_CURRENCY})?(?P<b>{_NUMBER}))?"
    r"(?:\s?-?\s?(?:(?P<business>business|working)[\s-]+|calendar[\s-]+)?"
    r"(?P<unit>seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|yrs?"
    r"|per\s?cent|percent|pct|dollars?|bucks|euros?|pounds?|cents?|usd|eur|gbp)\b"
    r"|\s?(?P<pct>%)|(?P<glued>[a-z]{1,5})\b)?",
    re.I,
)
# Seconds in a unit, by its first letters; a month is a twelfth of a year.
_SECONDS = {"s": 1, "mi": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 2628000, "y": 31536000}
_MONEY_UNITS = ("dol", "buc", "eur", "pou", "cen", "usd", "gbp")
_NEXT_WORD = re.compile(
    r"[ \t]{1,2}(?!(?:and|or|to|of|the|a|an|in|on|for|with|at|by|is|are)\b)[^\W\d_][\w-]{0,30}"
)
_CLOCK = (
    r"(?<![0-9:.,])(?P<h{n}>[0-9]{{1,2}})(?::(?P<m{n}>[0-5][0-9]))?\s?(?P<ap{n}>[ap])(?:\.\s?m\b\.?|\s?m\b)"
    r"|(?<![0-9:.,])(?P<H{n}>[0-9]{{1,2}}):(?P<M{n}>[0-5][0-9])(?![0-9:])|\b(?P<w{n}>noon|midday|midnight)\b"
)
_CLOCKS = re.compile(
    rf"(?:{_CLOCK.format(n=1)})(?:\s?(?:-|–|—|to|until|till|through)\s?(?:{_CLOCK.format(n=2)}))?", re.I
)
_MONTHS = "january february march april may june july august september october november december".split()
_MONTH_NUMBERS = {m: i + 1 for i, m in enumerate(_MONTHS)} | {m[:3]: i + 1 for i, m in enumerate(_MONTHS)}
_MONTH_NUMBERS["sept"] = 9
_MONTH = "|".join(_MONTHS) + "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
_DATES = re.compile(
    rf"\b(?P<month>{_MONTH})\.?\s+(?P<day>[0-9]{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>[0-9]{{4}})\b)?"
    rf"|\b(?P<day2>[0-9]{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month2>{_MONTH})\b\.?(?:,?\s+(?P<year2>[0-9]{{4}})\b)?"
    r"|\b(?P<iy>[0-9]{4})-(?P<im>[0-9]{1,2})-(?P<id>[0-9]{1,2})\b"
    r"|\b(?P<s1>[0-9]{1,2})/(?P<s2>[0-9]{1,2})/(?P<sy>[0-9]{2}|[0-9]{4})\b",
    re.I,
)
# Days and months alone are dates, not names. "May" and "march" are other words too, so months
# count only capitalised, and "May" only beside a day (above).
_DAY_WORD = (
    r"\b(?:[Mm]onday|[Tt]uesday|[Ww]ednesday|[Tt]hursday|[Ff]riday|[Ss]aturday|[Ss]unday"
    r"|Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat|Sun"
    r"|January|February|March|April|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)s?\b"
)
_DAY_WORDS = re.compile(
    rf"(?P<first>{_DAY_WORD})(?:\s?(?:-|–|—|to|through|until|till)\s?(?P<last>{_DAY_WORD}))?"
)
_PHONE = re.compile(
    r"(?<![0-9])(?:\+?[0-9]{1,4}(?:-[0-9]{2,4}){2,4}|(?:\+?1[ .-])?\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4})(?![0-9])"
)
# "24/7" and its synonyms claim that something is always open: a source must say so too.
_ALWAYS = re.compile(r"\b24\s?(?:/|x)\s?7\b|\b(?:a)?round[- ]the[- ]clock\b|\b(?:7|seven) days a week\b", re.I)
# Numbers that claim nothing: ordinals, references the customer gave, "two-factor".
_NOT_QUANTITIES = re.compile(
    r"\b[0-9]+(?:st|nd|rd|th)\b|#\s?[0-9]+"
    r"|\b(?:order|ticket|case|reference|ref|invoice|step)\s*(?:number|no\.?|id)?\s*:?\s*#?\s*[0-9]+"
    r"|\b(?:one|two|three|2|3)[ -](?:factor|step|way|click|time)\b",
    re.I,
)


@dataclass(frozen=True)
class Quantity:
    """A number as the text states it: what it claims, and what it backs when a source says it."""

    kind: str  # number, duration, money, percent, time, date, month, weekday, phone, always
    keys: frozenset[str]  # e.g. {"duration:1296000"}; a time without am/pm has two
    backs: frozenset[str]
    numbers: frozenset[str]  # the numbers as written, normalised: "4.99", "2"
    start: int
    end: int
    pair: tuple[str, str] | None = None  # both ends, when it is one end of a range


def _quantity(
    kind: str,
    keys: Iterable[str],
    numbers: Iterable[str],
    span: tuple[int, int],
    backs: Iterable[str] = (),
    pair: tuple[str, str] | None = None,
) -> Quantity:
    keys = frozenset(keys)
    return Quantity(kind, keys, frozenset(backs) or keys, frozenset(numbers), *span, pair)


def read_quantities(text: str) -> tuple[list[Quantity], str]:
    """Return the first quantities in `text`, and the text with them blanked out."""
    found: list[Quantity] = []
    for pattern, read in _QUANTITY_PASSES:
        pieces, position = [], 0
        for match in pattern.finditer(text):
            if len(found) >= MAX_QUANTITIES:
                break
            quantities = read(match, text)
            if quantities is not None:  # later passes must not read a taken number again
                found += quantities
                pieces += [text[position : match.start()], _BLANK.sub(" ", match.group())]
                position = match.end()
        text = "".join(pieces) + text[position:]
    return sorted(found, key=lambda q: q.start), text


def _canonical(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _number_value(text: str) -> Decimal | None:
    text = text.lower().replace(",", "")
    try:
        if text[0].isdigit():
            return Decimal(text)
        total = 0
        for word in re.split(r"[ -]+", text):
            if word == "hundred":
                total *= 100
            elif word != "and":
                total += NUMBER_WORDS[word]
        return Decimal(total)
    except (InvalidOperation, KeyError, IndexError):
        return None


def _read_date(match: re.Match[str], text: str) -> list[Quantity] | None:
    g = match.groupdict()
    if g["iy"]:
        options, year = [(int(g["im"]), int(g["id"]))], g["iy"]
    elif g["s1"]:  # 3/4/2024 is March 4 or 3 April: either backs it
        first, second = int(g["s1"]), int(g["s2"])
        options, year = [(first, second), (second, first)], g["sy"] if len(g["sy"]) == 4 else "20" + g["sy"]
    else:
        month = _MONTH_NUMBERS[(g["month"] or g["month2"]).lower()]
        options, year = [(month, int(g["day"] or g["day2"]))], g["year"] or g["year2"]
    options = [(m, d) for m, d in options if 1 <= m <= 12 and 1 <= d <= 31]
    if not options:
        return None
    keys = [f"date:{year}-{m}-{d}" if year else f"date:{m}-{d}" for m, d in options]
    backs = keys + [f"date:{m}-{d}" for m, d in options] + [f"month:{m}" for m, _ in options]
    numbers = [str(d) for _, d in options] + ([year] if year else [])
    return [_quantity("date", keys, numbers, match.span(), backs)]


def _read_phone(match: re.Match[str], text: str) -> list[Quantity]:
    return [_quantity("phone", ["phone:" + re.sub(r"[^0-9]", "", match.group())], [], match.span())]


def _read_clocks(match: re.Match[str], text: str) -> list[Quantity] | None:
    ends = [_clock(match, 1)]
    if match.group("h2") or match.group("H2") or match.group("w2"):
        ends.append(_clock(match, 2))
    if None in ends:
        return None
    keys = [[f"time:{minutes}" for minutes in end[0]] for end in ends]
    pair = (keys[0][0], keys[1][0]) if len(ends) == 2 else None
    return [
        _quantity("time", k, [end[1]] if end[1] else [], match.span(), (), pair) for k, end in zip(keys, ends)
    ]


def _clock(match: re.Match[str], n: int) -> tuple[list[int], str] | None:
    """Return the minutes after midnight a clock time may mean, and its hour as written."""
    word, ante_post = match.group(f"w{n}"), match.group(f"ap{n}")
    if word:
        return [0 if word.lower() == "midnight" else 720], ""
    hour = int(match.group(f"h{n}") or match.group(f"H{n}"))
    minute = int(match.group(f"m{n}") or match.group(f"M{n}") or 0)
    if ante_post:
        if not 1 <= hour <= 12:
            return None
        return [(hour % 12 + (12 if ante_post.lower() == "p" else 0)) * 60 + minute], str(hour)
    if hour > 23:
        return None
    hours = [hour, hour + 12] if 1 <= hour <= 11 else [hour]  # "9:00" may be either
    return [h * 60 + minute for h in hours], str(hour)


def _read_day_words(match: re.Match[str], text: str) -> list[Quantity]:
    keys = []
    for word in filter(None, match.group("first", "last")):
        word = word.lower().rstrip("s")
        keys.append(f"month:{_MONTH_NUMBERS[word]}" if word in _MONTH_NUMBERS else "weekday:" + word[:3])
    pair = (keys[0], keys[1]) if len(keys) == 2 else None  # "Monday to Friday" is one claim
    return [_quantity(key.split(":")[0], [key], [], match.span(), (), pair) for key in keys]


def _read_amounts(match: re.Match[str], text: str) -> list[Quantity] | None:
    g = match.groupdict()
    values = [_number_value(g["a"])] + ([_number_value(g["b"])] if g["b"] else [])
    if None in values:
        return None
    unit = (g["unit"] or "").lower()
    has_unit = bool(unit or g["pct"] or g["cur"] or g["cur_b"])
    if g["a"].lower() == "one" and not (g["b"] or has_unit):
        return []  # "the right one", "one of our agents": a pronoun, not a claim
    start, end = match.span()
    if not (has_unit or g["glued"]):
        after = _NEXT_WORD.match(text, end)  # report "4 payments", not a bare "4"
        end = after.end() if after else end
    quantities = [_amount(value, unit, g, (start, end)) for value in values]
    if len(quantities) < 2:
        return quantities
    pair = (range_end(quantities[0]), range_end(quantities[1]))
    return [Quantity(q.kind, q.keys, q.backs, q.numbers, q.start, q.end, pair) for q in quantities]


def _amount(value: Decimal, unit: str, g: dict[str, str | None], span: tuple[int, int]) -> Quantity:
    number = _canonical(value)
    if g["cur"] or g["cur_b"] or unit.startswith(_MONEY_UNITS):
        amount = _canonical(value / 100) if unit.startswith("cent") else number
        return _quantity("money", [f"money:{amount}"], [number, amount], span)
    if g["pct"] or unit.startswith(("per", "pct")):
        return _quantity("percent", [f"percent:{number}"], [number], span)
    if not unit:
        return _quantity("number", [f"number:{number}"], [number], span)
    seconds = _canonical(value * (_SECONDS.get(unit[:1]) or _SECONDS[unit[:2]]))
    if not g["business"]:
        return _quantity("duration", [f"duration:{seconds}"], [number], span)
    # "5 business days" backs "5 days", but "7 days" does not back "7 business days".
    return _quantity(
        "duration", [f"business:{seconds}"], [number], span, [f"business:{seconds}", f"duration:{seconds}"]
    )


def range_end(quantity: Quantity) -> str:
    """Return the key naming a range's end, whether or not it counts business days."""
    return min(key.replace("business:", "duration:") for key in quantity.backs)


def _skip(match: re.Match[str], text: str) -> list[Quantity]:
    return []


def _read_always(match: re.Match[str], text: str) -> list[Quantity]:
    return [_quantity("always", ["always"], [], match.span())]


_QUANTITY_PASSES = [
    (_DATES, _read_date),
    (_PHONE, _read_phone),
    (_CLOCKS, _read_clocks),
    (_ALWAYS, _read_always),
    (_NOT_QUANTITIES, _skip),
    (_AMOUNT, _read_amounts),
    (_DAY_WORDS, _read_day_words),
]


@dataclass
class Facts:
    """What some cited sentences back: quantity keys, numbers as written, ranges."""

    keys: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    bare: set[str] = field(default_factory=set)  # numbers written without a unit
    pairs: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, quantities: Iterable[Quantity]) -> Facts:
        facts = cls()
        for quantity in quantities:
            facts.keys |= quantity.backs
            facts.numbers |= quantity.numbers
            if quantity.kind == "number":
                facts.bare |= quantity.numbers
            if quantity.pair:
                facts.pairs.add(quantity.pair)
        return facts

    def back(self, quantity: Quantity) -> bool:
        """Return whether these facts state the quantity, in any of its forms."""
        if quantity.kind == "phone":  # with or without the country code
            digits = min(quantity.keys)[6:]
            return any(
                k.startswith("phone:") and (k.endswith(digits) or digits.endswith(k[6:])) for k in self.keys
            )
        if quantity.keys & self.keys:
            return True
        if quantity.kind == "number":
            return bool(quantity.numbers & self.numbers)
        return quantity.kind in ("money", "percent") and bool(quantity.numbers & self.bare)
