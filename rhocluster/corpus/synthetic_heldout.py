"""Templates that only the held-out documents use: problem generators, tables, definitions, sites (menus
and footers), cookie notices, navigation debris, off-topic prose and junk that no training document is
made from (:data:`HELDOUT_TEMPLATES`).

The held-out pages then test what a model learnt about math text and its noise, not whether it has
memorised the training corpus' boilerplate. They keep everything else: the vocabulary
(:mod:`~rhocluster.corpus.synthetic_words`), the evaluation formats (``fmt_gsm``, ``fmt_math``,
``fmt_mc``, ``fmt_web``), the page layout and the five labels. ``tests/test_synthetic.py`` checks that no
50-character span of the tiny run's held-out text occurs in its training text beyond a small allowance
(:func:`rhocluster.corpus.overlap.overlap_fraction`).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable
from fractions import Fraction

from rhocluster.corpus.synthetic_math import Problem, _p
from rhocluster.corpus.synthetic_web import Site, Templates, _hex
from rhocluster.corpus.synthetic_words import (
    CITIES,
    COUNTABLES,
    DAYS,
    INGREDIENTS,
    ITEMS,
    MONTHS,
    NAMES_F,
    NAMES_M,
    SURNAMES,
    TOPICS,
    cap,
    person,
    signed,
)

# --------------------------------------------------------------------------------------
# Word problems
# --------------------------------------------------------------------------------------

_PLANTS = ("lettuces", "tulips", "tomato plants", "cabbages", "sunflowers", "pepper plants")
_INSTRUMENTS = ("violin", "piano", "trumpet", "cello", "drums", "flute")


def _wp_bus(r: random.Random) -> Problem:
    a, b, c = r.randint(12, 45), r.randint(2, 11), r.randint(1, 15)
    q = (f"A bus in {r.choice(CITIES)} leaves the depot with {a} passengers. At the first stop {b} passengers "
         f"get off and {c} get on. How many passengers are on the bus now?")
    steps = [f"After {b} get off there are {a} - {b} = {a - b} on board.",
             f"After {c} get on there are {a - b} + {c} = {a - b + c} on board."]
    return _p(q, steps, a - b + c)


def _wp_chairs(r: random.Random) -> Problem:
    (n, s, _) = person(r)
    rows, k, extra = r.randint(3, 12), r.randint(4, 15), r.randint(2, 9)
    q = (f"For the school play, {n} sets out {rows} rows of {k} chairs, then carries in {extra} spare chairs. "
         "How many chairs are there altogether?")
    steps = [f"The rows hold {rows} * {k} = {rows * k} chairs.",
             f"With the spares {s} has set out {rows * k} + {extra} = {rows * k + extra} chairs."]
    return _p(q, steps, rows * k + extra)


def _wp_reading(r: random.Random) -> Problem:
    (n, s, _) = person(r)
    days, per, done = r.randint(3, 12), r.randint(8, 40), r.randint(10, 90)
    total = done + days * per
    q = (f"{n}'s new novel is {total} pages long. {cap(s)} has finished {done} pages and plans to get through "
         f"{per} pages a day. In how many days will {s} reach the last page?")
    steps = [f"Pages still to go: {total} - {done} = {total - done}.",
             f"At {per} pages a day that is {total - done} / {per} = {days} days."]
    return _p(q, steps, days)


def _wp_temperature(r: random.Random) -> Problem:
    t, up, down = r.randint(-5, 20), r.randint(3, 15), r.randint(2, 20)
    q = (f"At dawn the thermometer in {r.choice(CITIES)} showed {t} degrees. By noon it had climbed {up} degrees, "
         f"and by midnight it had dropped {down} degrees from the noon reading. What did it show at midnight?")
    steps = [f"At noon it showed {t} + {up} = {t + up} degrees.",
             f"At midnight it showed {t + up} - {down} = {t + up - down} degrees."]
    return _p(q, steps, t + up - down)


def _wp_split_bill(r: random.Random) -> Problem:
    k, each = r.randint(2, 8), r.randint(6, 45)
    total = k * each
    tip = r.randint(1, max(1, total // 5))
    q = (f"{k} friends have dinner together. The meal comes to ${total - tip} and they add a ${tip} tip, "
         "splitting everything evenly. How many dollars does each friend pay?")
    steps = [f"Meal and tip together are {total - tip} + {tip} = ${total}.",
             f"Split {k} ways, each friend pays {total} / {k} = ${each}."]
    return _p(q, steps, each)


def _wp_doubling(r: random.Random) -> Problem:
    (n, s, _), obj = person(r), r.choice(COUNTABLES)
    a, days = r.randint(1, 9), r.randint(3, 5)
    counts = [a * 2**i for i in range(days)]
    q = (f"On Monday {n} collected {a} {obj}. On every following day {s} collected twice as many as the day "
         f"before. How many {obj} did {s} collect in the first {days} days?")
    steps = [f"Day by day that is {', '.join(map(str, counts))} {obj}.",
             f"Altogether {' + '.join(map(str, counts))} = {sum(counts)}."]
    return _p(q, steps, sum(counts))


def _wp_practice(r: random.Random) -> Problem:
    (n, s, _) = person(r)
    per = r.choice([15, 20, 30, 40, 45, 90])
    days = (60 // math.gcd(per, 60)) * r.randint(1, 4)
    q = (f"{n} practices the {r.choice(_INSTRUMENTS)} for {per} minutes on each of {days} evenings. "
         "How many hours of practice is that?")
    steps = [f"That is {per} * {days} = {per * days} minutes.",
             f"An hour has 60 minutes, so it is {per * days} / 60 = {per * days // 60} hours."]
    return _p(q, steps, per * days // 60)


def _wp_garden(r: random.Random) -> Problem:
    (n, s, _), plant = person(r), r.choice(_PLANTS)
    rows, k = r.randint(3, 9), r.randint(4, 12)
    eaten = r.randint(1, rows * k // 3)
    q = f"{n} plants {rows} rows of {plant} with {k} in every row. Rabbits dig up {eaten} of them. How many {plant} survive?"
    steps = [f"{cap(s)} planted {rows} * {k} = {rows * k} {plant}.",
             f"After the rabbits, {rows * k} - {eaten} = {rows * k - eaten} are still growing."]
    return _p(q, steps, rows * k - eaten)


def _wp_profit(r: random.Random) -> Problem:
    (n, s, _), (_, pl, lo, hi) = person(r), r.choice(ITEMS)
    a, c, margin = r.randint(3, 20), r.randint(lo, hi), r.randint(1, 6)
    q = (f"{n} buys {a} {pl} wholesale at ${c} apiece and resells every one of them for ${c + margin}. "
         f"How much profit does {s} make?")
    steps = [f"The profit on one is {c + margin} - {c} = ${margin}.",
             f"On all {a} of them the profit is {a} * {margin} = ${a * margin}."]
    return _p(q, steps, a * margin)


def _wp_recipe(r: random.Random) -> Problem:
    k, mult, cups = r.randint(2, 6), r.randint(2, 5), r.randint(1, 6)
    ingredient = r.choice(INGREDIENTS)
    q = f"A recipe that feeds {k} people calls for {cups} cups of {ingredient}. How many cups are needed to feed {k * mult} people?"
    steps = [f"Feeding {k * mult} people means making the recipe {k * mult} / {k} = {mult} times.",
             f"So the cook needs {cups} * {mult} = {cups * mult} cups of {ingredient}."]
    return _p(q, steps, cups * mult)


def _wp_average(r: random.Random) -> Problem:
    (n, s, _) = person(r)
    mean = r.randint(70, 90)
    scores = [mean + r.randint(-10, 10) for _ in range(3)]
    need = 4 * mean - sum(scores)
    q = (f"{n} scored {scores[0]}, {scores[1]} and {scores[2]} on three quizzes. What must {s} score on the "
         f"fourth quiz to average exactly {mean}?")
    steps = [f"Four quizzes averaging {mean} total 4 * {mean} = {4 * mean} points.",
             f"The first three add up to {' + '.join(map(str, scores))} = {sum(scores)}, so {s} needs "
             f"{4 * mean} - {sum(scores)} = {need}."]
    return _p(q, steps, need)


WORD_PROBLEMS: tuple[Callable[[random.Random], Problem], ...] = (
    _wp_bus, _wp_chairs, _wp_reading, _wp_temperature, _wp_split_bill, _wp_doubling, _wp_practice,
    _wp_garden, _wp_profit, _wp_recipe, _wp_average,
)

# --------------------------------------------------------------------------------------
# Algebra and number exercises
# --------------------------------------------------------------------------------------


def _al_fraction_equation(r: random.Random) -> Problem:
    a = r.randint(2, 9)
    x = a * r.randint(-6, 12)
    b = r.choice([i for i in range(-15, 16) if i])
    c = x // a + b
    q = f"Find $x$ if $\\frac{{x}}{{{a}}} {signed(b)} = {c}$."
    steps = [f"Moving the constant across gives $\\frac{{x}}{{{a}}} = {c} {signed(-b)} = {c - b}$.",
             f"Multiplying through by ${a}$ gives $x = {a} \\cdot ({c - b}) = {x}$."]
    return _p(q, steps, x)


def _al_difference_of_squares(r: random.Random) -> Problem:
    a, b = r.randint(11, 40), r.randint(1, 10)
    q = f"Evaluate $a^2 - b^2$ for $a = {a}$ and $b = {b}$."
    steps = ["Factor first: $a^2 - b^2 = (a - b)(a + b)$.",
             f"The value is $({a} - {b})({a} + {b}) = {a - b} \\cdot {a + b} = {(a - b) * (a + b)}$."]
    return _p(q, steps, (a - b) * (a + b))


def _al_lcm(r: random.Random) -> Problem:
    a, b = r.sample(range(4, 40), 2)
    g = math.gcd(a, b)
    q = f"Find the least common multiple of ${a}$ and ${b}$."
    steps = [f"Their greatest common divisor is ${g}$.",
             f"Hence $\\operatorname{{lcm}}({a}, {b}) = \\frac{{{a} \\cdot {b}}}{{{g}}} = \\frac{{{a * b}}}{{{g}}} = {a * b // g}$."]
    return _p(q, steps, a * b // g)


def _al_geometric(r: random.Random) -> Problem:
    a, ratio, n = r.randint(1, 6), r.choice([2, 3, -2]), r.randint(4, 8)
    terms = ", ".join(str(a * ratio**i) for i in range(3))
    q = f"Find term number ${n}$ of the geometric sequence ${terms}, \\ldots$."
    steps = [f"It starts at ${a}$ and every term is ${ratio}$ times the one before it.",
             f"Term ${n}$ is ${a} \\cdot ({ratio})^{{{n - 1}}} = {a * ratio ** (n - 1)}$."]
    return _p(q, steps, a * ratio ** (n - 1))


def _al_slope(r: random.Random) -> Problem:
    x1, y1 = r.randint(-9, 9), r.randint(-9, 9)
    dx, dy = r.choice([i for i in range(-8, 9) if i]), r.randint(-12, 12)
    x2, y2 = x1 + dx, y1 + dy
    slope = Fraction(dy, dx)
    q = f"What is the slope of the line through $({x1}, {y1})$ and $({x2}, {y2})$?"
    steps = [f"Rise over run: $\\frac{{{y2} - ({y1})}}{{{x2} - ({x1})}} = \\frac{{{dy}}}{{{dx}}}$."]
    if slope.denominator != dx:
        steps.append("In lowest terms that is " + (f"${slope.numerator}$." if slope.denominator == 1
                                                    else f"$\\frac{{{slope.numerator}}}{{{slope.denominator}}}$."))
    return _p(q, steps, slope)


def _al_square(r: random.Random) -> Problem:
    side = r.randint(2, 25)
    q = f"A square has perimeter ${4 * side}$ units. What is its area in square units?"
    steps = [f"Each of the four equal sides is $\\frac{{{4 * side}}}{{4}} = {side}$.", f"Its area is ${side}^2 = {side * side}$."]
    return _p(q, steps, side * side)


def _al_percent_change(r: random.Random) -> Problem:
    a, pct = 20 * r.randint(1, 20), r.choice([5, 10, 15, 20, 25, 30, 40, 50, 75, 100])
    b = a + a * pct // 100
    q = f"A quantity grows from ${a}$ to ${b}$. By what percent did it grow?"
    steps = [f"It grew by ${b} - {a} = {b - a}$.", f"Relative to the start that is $\\frac{{{b - a}}}{{{a}}} \\cdot 100 = {pct}$ percent."]
    return _p(q, steps, pct)


def _al_remainder(r: random.Random) -> Problem:
    d, quotient = r.randint(3, 13), r.randint(5, 80)
    rem = r.randint(0, d - 1)
    n = d * quotient + rem
    q = f"What remainder is left when ${n}$ is divided by ${d}$?"
    steps = [f"Since ${d} \\cdot {quotient} = {d * quotient}$, we can write ${n} = {d * quotient} + {rem}$.",
             f"So the remainder is ${rem}$."]
    return _p(q, steps, rem)


def _al_absolute(r: random.Random) -> Problem:
    a, b = r.randint(-10, 12), r.randint(1, 15)
    q = f"Add up every solution of $|x {signed(-a)}| = {b}$."
    steps = [f"Either $x {signed(-a)} = {b}$ or $x {signed(-a)} = -{b}$, so $x = {a + b}$ or $x = {a - b}$.",
             f"Together they add up to ${a + b} + ({a - b}) = {2 * a}$."]
    return _p(q, steps, 2 * a)


def _al_fraction_product(r: random.Random) -> Problem:
    a, b, c, d = r.randint(1, 8), r.randint(2, 9), r.randint(1, 8), r.randint(2, 9)
    value = Fraction(a * c, b * d)
    q = f"Simplify $\\frac{{{a}}}{{{b}}} \\cdot \\frac{{{c}}}{{{d}}}$."
    steps = [f"Multiply the tops and the bottoms: $\\frac{{{a} \\cdot {c}}}{{{b} \\cdot {d}}} = \\frac{{{a * c}}}{{{b * d}}}$."]
    if value.denominator != b * d:
        steps.append("Cancelling common factors leaves " + (f"${value.numerator}$." if value.denominator == 1
                                                           else f"$\\frac{{{value.numerator}}}{{{value.denominator}}}$."))
    return _p(q, steps, value)


ALGEBRA: tuple[Callable[[random.Random], Problem], ...] = (
    _al_fraction_equation, _al_difference_of_squares, _al_lcm, _al_geometric, _al_slope, _al_square,
    _al_percent_change, _al_remainder, _al_absolute, _al_fraction_product,
)

# --------------------------------------------------------------------------------------
# Tables and definitions
# --------------------------------------------------------------------------------------


def _table(r: random.Random) -> str:
    """A stock or purchase list with its line totals, as a markdown table or CSV."""
    (n, _, _) = person(r)
    items = r.sample(ITEMS, r.randint(3, 5))
    rows = [(pl, r.randint(2, 12), r.randint(lo, hi)) for _, pl, lo, hi in items]
    totals = [units * each for _, units, each in rows]
    grand = sum(totals)
    intro = r.choice([f"Stock sheet for {n}'s stall at the {r.choice(CITIES)} craft market:",
                      "Inventory for the club's spring sale, with the value of each line:",
                      f"{n} wrote down one week of purchases in this table."])
    if r.random() < 0.5:
        lines = ["| Product | Units | Each ($) | Line total ($) |", "|:--|--:|--:|--:|"]
        lines += [f"| {pl} | {units} | {each} | {units * each} |" for pl, units, each in rows]
        lines.append(f"| Grand total | | | {grand} |")
    else:
        lines = ["product,units,each,line_total"] + [f"{pl},{units},{each},{units * each}" for pl, units, each in rows]
    check = " + ".join(map(str, totals))
    tail = r.choice([f"Summing the line totals: {check} = {grand}, so everything is worth ${grand}.",
                     f"Grand total {check} = {grand}. The answer is {grand}."])
    return intro + "\n\n" + "\n".join(lines) + "\n\n" + tail


def _definition(r: random.Random) -> str:
    """Textbook facts the training pages never state, each with a freshly computed example."""
    kind = r.randrange(10)
    if kind == 0:
        a, b = r.sample(range(2, 16), 2)
        return (f"Definition. The least common multiple of two positive integers is the smallest positive integer "
                f"that both of them divide. For instance $\\operatorname{{lcm}}({a}, {b}) = {a * b // math.gcd(a, b)}$.")
    if kind == 1:
        xs = sorted(r.randint(1, 50) for _ in range(r.choice([5, 7])))
        return (f"The median of a list is the middle value once the list is sorted. Sorted, the list "
                f"{', '.join(map(str, xs))} has median ${xs[len(xs) // 2]}$.")
    if kind == 2:
        ln, w = r.randint(3, 20), r.randint(2, 15)
        return (f"A rectangle of length $l$ and width $w$ has perimeter $2(l + w)$ and area $lw$. A ${ln}$ by ${w}$ "
                f"rectangle has perimeter $2({ln} + {w}) = {2 * (ln + w)}$ and area ${ln * w}$.")
    if kind == 3:
        a, m, n = r.choice([2, 3, 5]), r.randint(2, 5), r.randint(2, 4)
        return (f"Rule of exponents: for a nonzero base $a$, $a^m \\cdot a^n = a^{{m+n}}$ and $(a^m)^n = a^{{mn}}$. "
                f"So $({a}^{m})^{n} = {a}^{{{m * n}}} = {a ** (m * n)}$.")
    if kind == 4:
        n = r.randint(100, 9999)
        digits = [int(c) for c in str(n)]
        verdict = "is" if n % 3 == 0 else "is not"
        return (f"Divisibility by $3$: a whole number is a multiple of $3$ exactly when the sum of its digits is. "
                f"The digits of ${n}$ add up to ${' + '.join(map(str, digits))} = {sum(digits)}$, so ${n}$ {verdict} divisible by $3$.")
    if kind == 5:
        b, g = r.randint(4, 30), r.randint(4, 30)
        k = math.gcd(b, g)
        return (f"A ratio compares two amounts by division. With {b} boys and {g} girls in a club, the ratio of boys "
                f"to girls is ${b}:{g}$, which reduces to ${b // k}:{g // k}$.")
    if kind == 6:
        a, b = r.randint(2, 30), r.randint(2, 30)
        return (f"Subtracting a negative number adds its opposite: $a - (-b) = a + b$. "
                f"Thus ${a} - (-{b}) = {a} + {b} = {a + b}$.")
    if kind == 7:
        n = r.randint(101, 999)
        down = n - n % 10
        near = down + 10 if n % 10 >= 5 else down
        return (f"To round to the nearest ten, look at the ones digit: $5$ or more rounds up, less rounds down. "
                f"${n}$ rounds to ${near}$.")
    if kind == 8:
        xs = [r.randint(1, 60) for _ in range(r.randint(4, 6))]
        return (f"The range of a data set is its largest value minus its smallest. For "
                f"{', '.join(map(str, xs))} the range is ${max(xs)} - {min(xs)} = {max(xs) - min(xs)}$.")
    n = r.randint(1000, 9999)
    return (f"Place value: each digit is worth ten times as much as the same digit one place to its right. In ${n}$ "
            f"the hundreds digit is ${n // 100 % 10}$, worth ${n // 100 % 10 * 100}$.")


# --------------------------------------------------------------------------------------
# Sites, notices, navigation, prose, junk
# --------------------------------------------------------------------------------------

# Footer lines (label FOOTER) of the held-out sites are boilerplate too, repeated on every one of their
# pages, but written for these sites only.
SITES: tuple[Site, ...] = (
    Site("GeometryGarden", "GeometryGarden — Start Here / Lessons A–Z / Printables / Quizzes / Join",
         ("Text and figures © 2017–2024 GeometryGarden Press. Licensed for personal study; redistribution needs written consent.",)),
    Site("Ask a Math Coach", "☰  Ask a Math Coach  ·  Latest  ·  Unanswered  ·  Leaderboard  ·  My account",
         ("Ask a Math Coach is run by volunteers. Posts © their authors, shared under CC BY-NC 4.0. Hosted by Hostling.",
          "Made in Lakeside · Imprint · Data protection · Contact the moderators")),
    Site("CalcCorner Forums", "Board index ‹ Homework Help ‹ Middle School Math",
         ("Forum software © phpForumKit Ltd. Style by Ghostly. Time zone UTC+01:00. Delete all board cookies.",)),
    Site("Mr. Okafor's Class Page", "Class Page: Announcements • Homework • Grades • Calendar • Ask Mr. O",
         ("Maintained by the Riverton Middle School math department. Last updated September 2022. "
          "Report an accessibility issue to the school office.",)),
)
COOKIE_NOTICES: tuple[str, ...] = (
    "Your privacy matters to us. We place small text files on your computer to remember your preferences and "
    "to count visits. Allow all / Only necessary / Settings",
    "Heads up: this website stores data such as cookies to enable essential functionality, as well as marketing, "
    "personalization and analytics. [OK, got it]",
)


def _user(r: random.Random) -> str:
    return f"{r.choice(NAMES_F + NAMES_M)}{r.choice(['', '-', 'x'])}{r.randint(10, 9999)}"


def nav_snippet(r: random.Random, site: Site) -> str:
    """Per-page navigation debris in the held-out sites' own wording."""
    kind = r.randrange(6)
    if kind == 0:
        return f"You are here: Start › {cap(r.choice(TOPICS))} › Worksheet {r.randint(1, 400)}"
    if kind == 1:
        return (f"Asked by {_user(r)} · {r.randint(0, 12)} answers · {r.randint(5, 50000)} views · "
                f"active {r.randint(1, 60)} days ago")
    if kind == 2:
        return f"‹ Older posts   |   Newer posts ›   (page {r.randint(1, 4)}/{r.randint(4, 30)})"
    if kind == 3:
        a, b = r.sample(TOPICS, 2)
        return f"Filed under {cap(a)}; {cap(b)}. Permalink."
    if kind == 4:
        return f"Print · Email a friend · Save to reading list · Follow {site.name}"
    return f"Edited {r.randint(1, 9)} times; last edit by {_user(r)} on {r.choice(DAYS)}, {r.choice(MONTHS)} {r.randint(1, 28)}."


def _travel(r: random.Random) -> str:
    city = r.choice(CITIES)
    pool = [
        f"We spent {r.randint(2, 9)} days in {city} last {r.choice(MONTHS)} and loved every minute.",
        "The old town is best explored on foot before the tour buses arrive.",
        f"Our hotel near the station cost about ${r.randint(60, 240)} a night, breakfast included.",
        f"Do not miss the night market on {r.choice(DAYS)}s, where the dumplings sell out by nine.",
        "If you only have one afternoon, take the ferry across the bay and walk back over the bridge.",
        f"Next time we will stay longer and rent bikes, which cost ${r.randint(8, 30)} for the whole day.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _weather(r: random.Random) -> str:
    hi = r.randint(40, 95)
    pool = [
        f"Forecast for {r.choice(CITIES)}: {r.choice(['fog', 'showers', 'sunshine', 'light snow'])} early, clearing by the afternoon.",
        f"Highs near {hi} degrees, lows around {hi - r.randint(8, 25)}.",
        f"Winds from the {r.choice(['north', 'south', 'east', 'west'])} at {r.randint(3, 30)} miles per hour.",
        f"Pack an umbrella if you are heading out on {r.choice(DAYS)}.",
        "A stronger storm system may arrive late in the week.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _review(r: random.Random) -> str:
    product = r.choice(["blender", "desk lamp", "pair of headphones", "rice cooker", "backpack", "phone case"])
    pool = [
        f"I bought this {product} in {r.choice(MONTHS)} and have used it almost every day since.",
        f"Delivery took {r.randint(2, 12)} days and the box arrived slightly dented.",
        f"For ${r.randint(15, 180)} it does what it says, nothing more.",
        "The instructions were useless, but setup only took a few minutes.",
        f"{r.choice(['Three', 'Four', 'Two'])} stars: would buy again if it went on sale.",
        "My only complaint is the color, which looks darker than in the photos.",
    ]
    return f"Customer review of the {product}. " + " ".join(r.sample(pool, r.randint(3, 5)))


def _film(r: random.Random) -> str:
    star = f"{r.choice(NAMES_F + NAMES_M)} {r.choice(SURNAMES)}"
    pool = [
        f"The new thriller from director {r.choice(SURNAMES)} opens in theaters this {r.choice(DAYS)}.",
        f"{star} gives the best performance of the year as a detective with a secret.",
        f"At {r.randint(95, 170)} minutes it drags in the middle, but the ending is worth the wait.",
        "Critics have praised the soundtrack more than the script.",
        f"Tickets for the premiere in {r.choice(CITIES)} sold out within an hour.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def offtopic_prose(r: random.Random) -> str:
    """A travel note, weather forecast, product review or film item."""
    return r.choice([_travel, _weather, _review, _film])(r)


def _junk(r: random.Random) -> str:
    b64 = string.ascii_letters + string.digits + "+/"
    kind = r.randrange(6)
    if kind == 0:
        return f"sessionid={_hex(r, 32)}; csrftoken={''.join(r.choice(b64[:62]) for _ in range(32))}; Path=/"
    if kind == 1:
        return "data:image/gif;base64,R0lGODlh" + "".join(r.choice(b64) for _ in range(r.randint(30, 90)))
    if kind == 2:
        return f'{{"evt":"pv","uid":"{_hex(r, 12)}","ts":{r.randint(1_500_000_000, 1_700_000_000)},"ref":"{_hex(r, 20)}"}}'
    if kind == 3:
        return "fbclid=IwAR" + "".join(r.choice(b64[:62] + "_-") for _ in range(r.randint(40, 60)))
    if kind == 4:
        return f'<span class="x{_hex(r, 6)} y{_hex(r, 5)}" style="display:none">&#8203;</span>{"&#160;" * r.randint(0, 3)}'
    return "".join(r.choice("→←↑↓•◆◇■□▲△●○★☆") for _ in range(r.randint(8, 24)))


HELDOUT_TEMPLATES = Templates(
    word_problems=WORD_PROBLEMS,
    algebra=ALGEBRA,
    table=_table,
    definition=_definition,
    sites=SITES,
    cookie_notices=COOKIE_NOTICES,
    nav_snippet=nav_snippet,
    prose=offtopic_prose,
    junk=_junk,
)
"""Every pool of the held-out documents; none shared with :data:`~rhocluster.corpus.synthetic_web.TRAIN_TEMPLATES`."""
