"""Prints a deterministic synthetic corpus for examples/data/make_tiny_vec.sh: 4000 sentences, each
about one topic (royalty, animals, colours, food), mixing that topic's words with some of a random second topic and shared function words,
so that skip-gram puts words of one topic close together ("king" near "queen")."""
import random

TOPICS = {
    "royalty": "king queen prince princess throne crown palace royal".split(),
    "animals": "dog cat horse cow sheep puppy kitten barn".split(),
    "colours": "red green blue yellow purple orange colour paint".split(),
    "food": "bread cheese apple soup butter cake dinner kitchen".split(),
}
FUNCTION = "the a and of in with was is to on".split()

rng = random.Random(20261129)
names = sorted(TOPICS)
for _ in range(4000):
    words = TOPICS[rng.choice(names)]
    other = TOPICS[rng.choice(names)]
    n = rng.randint(6, 10)
    out = []
    for _ in range(n):
        u = rng.random()
        out.append(rng.choice(words) if u < 0.45 else rng.choice(other) if u < 0.6 else rng.choice(FUNCTION))
    print(" ".join(out))
