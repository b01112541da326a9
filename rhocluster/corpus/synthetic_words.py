"""The vocabulary of the generated corpora (names, objects, places, teams, dishes, topics) and the
small text helpers that every generator in :mod:`rhocluster.corpus.synthetic` draws from."""

from __future__ import annotations

import random

NAMES_F = (
    "Olivia Emma Ava Sophia Mia Amelia Harper Lily Zoe Nora Chloe Grace Ella Aria Maya Ruby Leah Hannah "
    "Sara Nina Priya Aisha Mei Yuki Fatima Elena Lucia Ingrid Chiara Amara Keiko Rosa Tara Jasmine Ivy Wendy "
    "Carmen Beth Janet Paula"
).split()
NAMES_M = (
    "Liam Noah Oliver James Lucas Henry Mason Ethan Jack Owen Leo Ryan Adam Omar Ravi Kenji Diego Mateo "
    "Luca Hugo Felix Samuel Tom Ben Carlos Ahmed Wei Jamal Ivan Marco Pedro Arjun Dylan Gabe Nathan Victor "
    "Paul Frank Jose Kofi"
).split()
SURNAMES = (
    "Smith Garcia Chen Patel Okafor Novak Rossi Kim Silva Müller Johnson Brown Lopez Nguyen Tanaka Haddad "
    "Kowalski Dubois Larsen Moreau Reyes Fischer Ortiz Walsh Becker Sato Mensah Costa Hughes Park"
).split()

# (singular, plural, min price, max price) for shopping problems.
ITEMS = (
    ("pencil", "pencils", 1, 3), ("notebook", "notebooks", 2, 6), ("apple", "apples", 1, 2),
    ("book", "books", 5, 20), ("shirt", "shirts", 8, 25), ("toy car", "toy cars", 3, 12),
    ("cupcake", "cupcakes", 2, 5), ("ticket", "tickets", 6, 30), ("plant", "plants", 4, 15),
    ("bag of rice", "bags of rice", 3, 9), ("sandwich", "sandwiches", 4, 9), ("puzzle", "puzzles", 7, 18),
    ("pair of socks", "pairs of socks", 2, 7), ("candle", "candles", 3, 10), ("mug", "mugs", 4, 11),
    ("board game", "board games", 12, 40), ("box of crayons", "boxes of crayons", 2, 6),
    ("bottle of juice", "bottles of juice", 1, 4), ("comic book", "comic books", 3, 8),
    ("basketball", "basketballs", 10, 30),
)
COUNTABLES = (
    "marbles stickers cookies stamps seashells coins cards balloons crayons beads shells buttons "
    "strawberries eggs pebbles postcards keychains ribbons"
).split()
FRUITS = "apples oranges pears peaches plums lemons mangoes bananas".split()
PLACES_RECT = ("garden", "room", "field", "playground", "parking lot", "classroom", "pool", "yard", "kitchen floor")
VEHICLES = ("car", "train", "bus", "cyclist", "truck", "boat", "plane", "runner")
GOODS = ("bike", "video game", "guitar", "tablet", "skateboard", "telescope", "camera", "tent", "scooter")
ACTIVITIES = (  # (verb, base form, unit)
    ("reads", "read", "pages"), ("runs", "run", "miles"), ("swims", "swim", "laps"), ("bakes", "bake", "cookies"),
    ("writes", "write", "emails"), ("plants", "plant", "flowers"), ("folds", "fold", "paper cranes"),
    ("practices piano for", "practice", "minutes"), ("collects", "collect", "stamps"),
)
BAKED = ("muffins", "cookies", "bagels", "donuts", "rolls", "cupcakes", "pies")
GROUPS = (("students", "class"), ("players", "club"), ("people", "choir"), ("workers", "factory"), ("campers", "camp"))

CITIES = (
    "Springfield", "Riverton", "Lakeside", "Fairview", "Brookhaven", "Maplewood", "Kingsport", "Westbury", "Ashford",
    "Millbrook", "Northgate", "Pinecrest", "Harbor City", "Eastwood", "Stonebridge", "Oakdale",
)
TEAMS = "Hawks Tigers Rovers Comets Wolves Falcons Pirates Titans Rangers Bears Sharks Dragons Lions Storm".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
DISHES = (
    "banana bread", "lemon drizzle cake", "vegetable soup", "chicken curry", "apple crumble", "pancakes",
    "tomato pasta", "chocolate brownies", "potato salad", "mushroom risotto", "beef stew", "carrot cake",
)
INGREDIENTS = (
    "flour", "sugar", "butter", "milk", "rice", "chopped onions", "grated cheese", "olive oil", "brown sugar",
    "oats", "diced tomatoes", "cocoa powder", "vegetable stock", "cream", "honey", "garlic",
)
VENUES = ("a rooftop bar", "the airport", "a charity gala", "a film premiere", "a beach in Malibu",
           "a coffee shop", "a fashion show", "a music festival", "a private island", "a sold-out concert")
TOPICS = ("algebra", "fractions", "geometry", "percentages", "word problems", "equations", "number theory",
           "arithmetic", "statistics", "sequences", "pre-algebra", "homework help")


def person(r: random.Random) -> tuple[str, str, str]:
    """A first name with its subject and possessive pronouns."""
    if r.random() < 0.5:
        return r.choice(NAMES_F), "she", "her"
    return r.choice(NAMES_M), "he", "his"


def two_people(r: random.Random) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """Two people with different first names (each as :func:`person`)."""
    a = person(r)
    b = person(r)
    while b[0] == a[0]:
        b = person(r)
    return a, b


def cap(s: str) -> str:
    """``s`` with its first character upper-cased."""
    return s[:1].upper() + s[1:]


def signed(n: int) -> str:
    """'+ 3' / '- 3' for writing a term after another one."""
    return f"+ {n}" if n >= 0 else f"- {-n}"
