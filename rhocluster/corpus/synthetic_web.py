"""The blocks a generated math web page is made of: math content (problems, tables, definitions) and
noise (off-topic prose, navigation, footers of fixed sites, cookie notices, junk).

Every pool a page draws from is gathered in a :class:`Templates`: :data:`TRAIN_TEMPLATES` (this
module) makes the training corpora, :data:`~rhocluster.corpus.synthetic_heldout.HELDOUT_TEMPLATES`
the held-out documents, from pools the training side never uses.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from rhocluster.corpus.labels import JUNK, NAVIGATION, PROSE
from rhocluster.corpus.synthetic_math import ALGEBRA, WORD_PROBLEMS, Problem, fmt_gsm, fmt_math, fmt_mc, fmt_web
from rhocluster.corpus.synthetic_words import (
    CITIES,
    DAYS,
    DISHES,
    INGREDIENTS,
    ITEMS,
    MONTHS,
    NAMES_F,
    NAMES_M,
    SURNAMES,
    TEAMS,
    TOPICS,
    VENUES,
    cap,
    person,
    signed,
)


def _math_problem_block(r: random.Random, t: Templates) -> str:
    if r.random() < 0.55:
        p = r.choice(t.word_problems)(r)
        fmt = r.choices([fmt_gsm, fmt_mc, fmt_math, fmt_web], weights=[4, 2, 1, 3])[0]
    else:
        p = r.choice(t.algebra)(r)
        fmt = r.choices([fmt_gsm, fmt_mc, fmt_math, fmt_web], weights=[1, 1, 4, 3])[0]
    if fmt is fmt_mc and p.numeric is None:
        fmt = fmt_math
    return fmt(p, r)


def _math_table_block(r: random.Random) -> str:
    """A small table of numbers with its computed total (markdown or plain columns)."""
    (n, _, _) = person(r)
    items = r.sample(ITEMS, r.randint(3, 5))
    rows = [(sg, r.randint(1, 9), r.randint(lo, hi)) for sg, _, lo, hi in items]
    costs = [q * p for _, q, p in rows]
    total = sum(costs)
    intro = r.choice([f"{n} made a shopping list. The table shows what {n} bought.",
                      "The table below lists the items in an order.", "Here is the receipt from the school fair:"])
    if r.random() < 0.6:
        lines = ["| Item | Quantity | Price ($) | Cost ($) |", "|---|---|---|---|"]
        lines += [f"| {sg} | {q} | {p} | {q * p} |" for sg, q, p in rows]
        lines.append(f"| **Total** | | | **{total}** |")
    else:
        w = max(len(sg) for sg, _, _ in rows) + 2
        lines = [f"{'Item':<{w}}Qty  Price  Cost"]
        lines += [f"{sg:<{w}}{q:<5}{p:<7}{q * p}" for sg, q, p in rows]
        lines.append(f"{'Total':<{w}}{'':<12}{total}")
    check = " + ".join(map(str, costs))
    tail = r.choice([f"The total cost is {check} = ${total}.", f"Adding the costs: {check} = {total}. The answer is {total}.",
                     f"So {n} spent {check} = ${total} in total."])
    return intro + "\n\n" + "\n".join(lines) + "\n\n" + tail


def _math_definition_block(r: random.Random) -> str:
    """Textbook-style definitions and theorems, each with a freshly computed example."""
    kind = r.randrange(12)
    if kind == 0:
        k = r.randint(2, 60)
        return (f"Definition. An integer $n$ is even if $n = 2k$ for some integer $k$, and odd if $n = 2k + 1$. "
                f"For example, ${2 * k} = 2 \\cdot {k}$ is even and ${2 * k + 1} = 2 \\cdot {k} + 1$ is odd.")
    if kind == 1:
        p = r.choice([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47])
        a, b = r.choice([(2, 3), (2, 5), (3, 5), (2, 7), (3, 4), (4, 5)])
        return (f"A prime number is a positive integer greater than $1$ whose only divisors are $1$ and itself. "
                f"For instance ${p}$ is prime, while ${a * b} = {a} \\times {b}$ is not. "
                "Theorem (Euclid). There are infinitely many prime numbers.")
    if kind == 2:
        a, b, c = r.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17), (6, 8, 10)])
        return (f"Theorem (Pythagoras). In a right triangle with legs $a$ and $b$ and hypotenuse $c$, $a^2 + b^2 = c^2$. "
                f"For example, ${a}^2 + {b}^2 = {a * a} + {b * b} = {c * c} = {c}^2$.")
    if kind == 3:
        num, den = r.randint(1, 9), r.randint(2, 9)
        g = r.randint(2, 6)
        return (f"Two fractions are equivalent when they name the same number. Multiplying the numerator and the denominator "
                f"by the same nonzero number gives an equivalent fraction: $\\frac{{{num}}}{{{den}}} = \\frac{{{num * g}}}{{{den * g}}}$. "
                "A fraction is in lowest terms when the numerator and denominator have no common factor other than $1$.")
    if kind == 4:
        xs = [r.randint(1, 20) for _ in range(r.randint(3, 5))]
        m = Fraction(sum(xs), len(xs))
        # Integer means are written out; otherwise the reduced fraction and a decimal.
        ms = str(m) if m.denominator == 1 else f"{float(m):.2f}".rstrip("0")
        frac = f"\\frac{{{sum(xs)}}}{{{len(xs)}}}"
        if m.denominator not in (1, len(xs)):
            frac += f" = \\frac{{{m.numerator}}}{{{m.denominator}}}"
        eq = "=" if (m * 100).denominator == 1 else "\\approx"  # two decimals are exact or rounded
        return (f"The mean (average) of a list of numbers is their sum divided by how many numbers there are. "
                f"The mean of {', '.join(map(str, xs))} is ${frac} {eq} {ms}$.")
    if kind == 5:
        m, b = r.randint(-5, 6), r.randint(-9, 9)
        return (f"A linear function has the form $y = mx + b$, where $m$ is the slope and $b$ is the $y$-intercept. "
                f"The line $y = {m}x {signed(b)}$ has slope ${m}$ and crosses the $y$-axis at $(0, {b})$. "
                f"When $x = 2$, $y = {m} \\cdot 2 {signed(b)} = {2 * m + b}$.")
    if kind == 6:
        n = r.randint(3, 7)
        prod = " \\cdot ".join(str(i) for i in range(1, n + 1))
        return (f"The factorial of a positive integer $n$, written $n!$, is the product $1 \\cdot 2 \\cdots n$. "
                f"For example, ${n}! = {prod} = {math.factorial(n)}$. "
                "By convention $0! = 1$.")
    if kind == 7:
        a, b, c = r.randint(2, 9), r.randint(2, 9), r.randint(2, 9)
        return (f"The distributive property says $a(b + c) = ab + ac$. For example, ${a}({b} + {c}) = {a} \\cdot {b} + {a} \\cdot {c} "
                f"= {a * b} + {a * c} = {a * (b + c)}$.")
    if kind == 8:
        x = r.choice([i for i in range(-30, 31) if i])
        return (f"The absolute value $|x|$ of a number is its distance from $0$ on the number line, so $|x| \\ge 0$. "
                f"For example, $|{x}| = {abs(x)}$ and $|{-x}| = {abs(x)}$.")
    if kind == 9:
        a, b = r.randint(20, 100), r.randint(20, 100)
        return (f"The angles of a triangle add up to $180^\\circ$. If two angles measure ${a}^\\circ$ and ${min(b, 179 - a)}^\\circ$, "
                f"the third angle is $180 - {a} - {min(b, 179 - a)} = {180 - a - min(b, 179 - a)}$ degrees.")
    if kind == 10:
        a, b, c = r.randint(2, 9), r.randint(2, 9), r.randint(2, 9)
        return (f"Order of operations: evaluate parentheses first, then exponents, then multiplication and division, then addition "
                f"and subtraction. So ${a} + {b} \\times {c} = {a} + {b * c} = {a + b * c}$, but $({a} + {b}) \\times {c} = {(a + b) * c}$.")
    n = r.randint(2, 15)
    return (f"The square root $\\sqrt{{a}}$ of a nonnegative number $a$ is the nonnegative number whose square is $a$. "
            f"Since ${n}^2 = {n * n}$, we have $\\sqrt{{{n * n}}} = {n}$.")


def math_block(r: random.Random, t: Templates) -> str:
    """One block of math content from ``t``: a problem in some format, a table or a definition."""
    kind = r.choices(("problem", "table", "definition"), weights=[6, 1, 2])[0]
    if kind == "problem":
        return _math_problem_block(r, t)
    return (t.table if kind == "table" else t.definition)(r)


# --------------------------------------------------------------------------------------
# Noise: off-topic prose, navigation, footers, junk
# --------------------------------------------------------------------------------------


def _celebrity(r: random.Random) -> str:
    return f"{r.choice(NAMES_F + NAMES_M)} {r.choice(SURNAMES)}"


def _recipe(r: random.Random) -> str:
    dish = r.choice(DISHES)
    i1, i2, i3 = r.sample(INGREDIENTS, 3)
    pool = [
        f"Preheat the oven to {r.choice([325, 350, 375, 400, 180, 200])} degrees.",
        f"In a large bowl, mix {r.randint(1, 4)} cups of {i1} with {r.randint(1, 3)} tablespoons of {i2}.",
        f"Add the {i3} and stir until smooth.", f"Bake for {r.randint(15, 60)} minutes, or until golden brown.",
        f"Let it cool for {r.randint(5, 20)} minutes before serving.", f"Serves {r.randint(2, 8)}.",
        "My grandmother used to make this every Sunday and the whole house smelled amazing.",
        f"You can swap the {i2} for {i3} if you prefer.", "Store leftovers in an airtight container for up to three days.",
    ]
    return f"{r.choice(['Easy', 'Classic', 'Quick', 'The best', 'Healthy'])} {dish} recipe: " + " ".join(r.sample(pool, r.randint(3, 6)))


def _sports(r: random.Random) -> str:
    t1, t2 = r.sample(TEAMS, 2)
    c1, c2 = r.sample(CITIES, 2)
    s1, s2 = r.randint(1, 6), r.randint(0, 5)
    player, coach = _celebrity(r), r.choice(SURNAMES)
    pool = [
        f"The {c1} {t1} beat the {c2} {t2} {max(s1, s2)}-{min(s1, s2)} on {r.choice(DAYS)} night.",
        f"{player} scored twice in the second half to seal the win.", f"Coach {coach} said the team never stopped believing.",
        f"It was their {r.choice(['third', 'fourth', 'fifth', 'sixth'])} straight victory at home.",
        f"Tickets for the next game against the {t2} go on sale {r.choice(DAYS)}.",
        f"Fans packed the stadium despite the {r.choice(['rain', 'cold', 'heat', 'wind'])}.",
        f"{player} is expected to miss the next {r.randint(2, 6)} weeks with a knee injury.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _gossip(r: random.Random) -> str:
    a, b = _celebrity(r), _celebrity(r)
    pool = [
        f"{a} was spotted at {r.choice(VENUES)} with {b} last {r.choice(DAYS)}.",
        "Fans are wondering if the two are more than just friends.",
        f"A source close to the star said the couple met in {r.choice(MONTHS)}.",
        f"{a} wore a stunning {r.choice(['red', 'black', 'silver', 'green', 'white'])} dress that had everyone talking.",
        f"Neither {a} nor {b} has commented on the rumors.", "You won't believe what happened next!",
        f"{b} posted a cryptic message on social media hours later.",
    ]
    return " ".join(r.sample(pool, r.randint(3, 5)))


def _advert(r: random.Random) -> str:
    city = r.choice(CITIES)
    return r.choice([
        f"Looking for cheap flights to {city}? Compare prices from hundreds of airlines and save up to {r.randint(20, 70)}% today.",
        f"Lose weight fast with this one simple trick. Doctors hate it! Over {r.randint(2, 90)},000 people in {city} have tried it.",
        f"Summer sale: everything must go. Free shipping on orders over ${r.randint(25, 99)}. Offer ends {r.choice(DAYS)}.",
        f"New apartments in {city} from ${r.randint(900, 2500)} a month. Book a viewing now.",
    ])


def offtopic_prose(r: random.Random) -> str:
    """A recipe, sports report, gossip item or advert."""
    return r.choice([_recipe, _sports, _gossip, _advert])(r)


@dataclass(frozen=True)
class Site:
    """A fixed website: its name, menu and footer lines."""

    name: str
    nav: str
    footers: tuple[str, ...]


# Fixed sites: each page carries its site's exact menu and footer, so the same boilerplate
# strings recur across many documents as they do in a real crawl.
SITES: tuple[Site, ...] = (
    Site("MathHelpForum", "Home | Forums | Members | Search | Login | Register",
          ("© 2009-2023 MathHelpForum. All rights reserved. | Privacy Policy | Terms of Use | Contact Us",)),
    Site("AlgebraCorner", "AlgebraCorner.com  ›  Lessons  ›  Practice  ›  Worksheets  ›  About",
          ("Copyright © 2021 AlgebraCorner LLC. Reproduction without permission is prohibited.",
           "AlgebraCorner is a registered trademark. Site map · Accessibility · Advertise with us")),
    Site("HomeworkQA", "≡ Menu   Ask a Question   Browse Topics   Tutors   Sign in",
          ("HomeworkQA © 2018 – Questions and answers are licensed under CC BY-SA 4.0. Powered by QAEngine 3.2",)),
    Site("The Number Nook", "Home · Blog · Resources · Shop · Newsletter · Contact",
          ("© The Number Nook 2016. All content is for educational purposes only. Follow us on Twitter and Pinterest.",)),
    Site("StudyMathOnline", "Skip to main content\nStudyMathOnline | Courses | Grades 1-12 | Pricing | Log in | Start free trial",
          ("StudyMathOnline, Inc. © 2022. Terms | Privacy | Cookie settings | Do Not Sell My Personal Information",
           "Questions? Email support@studymathonline.example or call 1-800-555-0199 (Mon-Fri 9am-5pm)")),
    Site("mathpuzzles.example", "[Home] [Puzzles] [Archive] [Leaderboard] [FAQ] [Log out]",
          ("Page generated in 0.042 seconds. mathpuzzles.example runs on open-source software. © 2014-2020",)),
    Site("TutorTalk", "TutorTalk Community > Mathematics > Algebra & Pre-Algebra",
          ("All times are GMT -5. The time now is 10:42 PM. Powered by vBulletin® Copyright ©2000-2019. All rights reserved.",)),
    Site("K12 Math Hub", "K12 Math Hub  |  Grade 3  |  Grade 4  |  Grade 5  |  Grade 6  |  Teachers  |  Parents",
          ("© 2020 K12 Math Hub. Reproducible for classroom use only. Report a problem with this page.",)),
)
COOKIE_NOTICES: tuple[str, ...] = (
    "We use cookies to improve your experience on our website. By continuing to browse, you agree to our use of cookies. Accept | Learn more",
    "This site uses cookies to deliver our services and to show you relevant ads. By using our site, you acknowledge that you have read "
    "and understand our Cookie Policy and Privacy Policy.",
    "Cookie notice: we and our partners store and access information on your device. [Accept all] [Reject] [Manage options]",
)


def nav_snippet(r: random.Random, site: Site) -> str:
    """Per-page navigation debris: breadcrumbs, post metadata, pagination, share bars."""
    kind = r.randrange(7)
    user = f"{r.choice(NAMES_F + NAMES_M).lower()}{r.choice(['', '_', '.'])}{r.randint(1, 999)}"
    if kind == 0:
        return f"Home » {cap(r.choice(TOPICS))} » {r.choice(['Solved', 'Help', 'Lesson', 'Thread'])} #{r.randint(100, 99999)}"
    if kind == 1:
        return f"Posted by {user} on {r.choice(MONTHS)} {r.randint(1, 28)}, {r.randint(2008, 2023)} at {r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['AM', 'PM'])}"
    if kind == 2:
        return f"Reply | Quote | Report | Share\nViews: {r.randint(12, 99999):,} | Replies: {r.randint(0, 40)}"
    if kind == 3:
        return f"« Previous thread | Next thread »\nPage {r.randint(1, 3)} of {r.randint(3, 9)}   1 2 3 … Next ›"
    if kind == 4:
        return "Tags: " + ", ".join(r.sample(TOPICS, r.randint(2, 4)))
    if kind == 5:
        return f"Share this: Facebook Twitter Email Print\nLike this: Like Loading... Related: {cap(r.choice(TOPICS))} practice set {r.randint(1, 20)}"
    return f"Back to top ↑   |   {site.name} Mobile   |   Jump to: {cap(r.choice(TOPICS))}"


def _hex(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _junk(r: random.Random) -> str:
    kind = r.randrange(8)
    b64 = string.ascii_letters + string.digits + "+/"
    if kind == 0:
        return _hex(r, r.choice([32, 40, 64]))
    if kind == 1:
        return "".join(r.choice(b64) for _ in range(r.randint(40, 120))) + r.choice(["", "=", "=="])
    if kind == 2:
        return (f"?utm_source={r.choice(['newsletter', 'google', 'facebook', 'twitter'])}&utm_medium={r.choice(['email', 'cpc', 'social'])}"
                f"&utm_campaign={r.choice(['spring', 'fall', 'promo', 'bts'])}_{r.randint(2015, 2023)}&gclid={''.join(r.choice(b64[:62]) for _ in range(24))}")
    if kind == 3:
        return f"UA-{r.randint(1000000, 99999999)}-{r.randint(1, 9)} _ga=GA1.2.{r.randint(10**8, 10**9)}.{r.randint(10**9, 2 * 10**9)} sid={_hex(r, 16)}"
    if kind == 4:
        return "".join(r.choice("😀😂🔥💯👍🎉✨❤️🙏😍🤔👀💥⭐🚀") for _ in range(r.randint(4, 16)))
    if kind == 5:
        return (f"<div class=\"ad-slot-{r.randint(1, 9)}\" data-id=\"{_hex(r, 8)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 12)}\"></div>"
                + "&nbsp;" * r.randint(1, 4))
    if kind == 6:
        return f"var _0x{_hex(r, 4)}=['\\x{_hex(r, 2)}\\x{_hex(r, 2)}','{_hex(r, 6)}'];(function(a,b){{a.push(a.shift())}}(_0x{_hex(r, 4)},0x{_hex(r, 3)}));"
    return f"data:image/png;base64,iVBORw0KGgo{''.join(r.choice(b64) for _ in range(r.randint(30, 90)))}"


def noise_block(r: random.Random, site: Site, t: Templates) -> tuple[int, str]:
    """``(label, text)`` of one noise block on a page of ``site``: off-topic prose, junk or navigation."""
    label = r.choices([PROSE, JUNK, NAVIGATION], weights=[4, 4, 3])[0]
    if label == PROSE:
        return PROSE, t.prose(r)
    if label == JUNK:
        return JUNK, t.junk(r)
    return NAVIGATION, t.nav_snippet(r, site)


@dataclass(frozen=True)
class Templates:
    """The pools one side of the corpus is written from: problem generators (each a function of a
    ``random.Random`` returning a :class:`~rhocluster.corpus.synthetic_math.Problem`), table and
    definition blocks, sites, cookie notices, navigation debris, off-topic prose and junk."""

    word_problems: tuple[Callable[[random.Random], Problem], ...]
    algebra: tuple[Callable[[random.Random], Problem], ...]
    table: Callable[[random.Random], str]
    definition: Callable[[random.Random], str]
    sites: tuple[Site, ...]
    cookie_notices: tuple[str, ...]
    nav_snippet: Callable[[random.Random, Site], str]
    prose: Callable[[random.Random], str]
    junk: Callable[[random.Random], str]


TRAIN_TEMPLATES = Templates(
    word_problems=WORD_PROBLEMS,
    algebra=ALGEBRA,
    table=_math_table_block,
    definition=_math_definition_block,
    sites=SITES,
    cookie_notices=COOKIE_NOTICES,
    nav_snippet=nav_snippet,
    prose=offtopic_prose,
    junk=_junk,
)
"""The pools of every training corpus (web, hq, and the prose of pretrain)."""
