"""The order a sweep visits its (address, port) index space in: ZMap's cyclic-group walk.

Why: probing addresses in order would hit one /24 (one customer's router, one small office)
with a burst of connections; a random order spreads the load over the whole scope. Storing a
shuffled list does not work for large scopes, so, as ZMap does, the order is the cyclic group
(Z/pZ)* for a prime p > N walked by a random generator g: element k is ``x0 * g**k mod p``,
elements above N are skipped, and every index in [0, N) comes exactly once. Only (p, g, x0)
and a position are state, which makes shards and resume trivial:

* shard i of n takes positions k = i, i+n, i+2n, ...: disjoint, and together the whole group,
  provided every shard walks the same group, hence one seed for all shards of a survey;
* a resumed walk restarts at ``x0 * g**(i + n*position)``, one modular exponentiation.

p is a *safe* prime (p = 2q + 1, q prime), so p - 1 factors as 2q and testing whether g
generates the group is two exponentiations.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

_SMALL_PRIMES = [n for n in range(3, 2000) if all(n % d for d in range(2, int(n**0.5) + 1))]
#: Miller-Rabin with these bases is exact below 3.3e24; above that, 40 random bases more make a
#: composite slipping through less likely than a hardware fault.
_WITNESSES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41]


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based; the CLI writes it as ``i/N`` with 1 <= i <= N)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index + 1}/{self.count} does not exist")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> the second of four shards; a one-line ``ValueError`` otherwise."""
        try:
            number, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard {text!r} must be written i/N, e.g. 1/4") from None
        if not 1 <= number <= count:
            raise ValueError(f"shard {text!r}: i must be between 1 and N")
        return cls(number - 1, count)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def owns(self, label: str) -> bool:
        """Whether ``label`` (e.g. "ip port" of an imported target) is this shard's: a stable hash
        modulo the count, so the shards of a list are disjoint and complete on every machine."""
        digest = hashlib.sha256(label.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


class CyclicPermutation:
    """A pseudo-random permutation of ``range(size)`` restricted to one shard, determined by ``seed``."""

    def __init__(self, size: int, seed: int, shard: Shard = Shard()) -> None:
        if size < 0:
            raise ValueError("permutation size must not be negative")
        self.size = size
        self.shard = shard
        rng = random.Random(seed)
        self.prime = safe_prime_above(size)
        self.generator = _random_generator(self.prime, rng)
        self.start = rng.randrange(1, self.prime)
        #: Group elements this shard walks through (some of them > size, skipped).
        self.positions = max(0, -(-(self.prime - 1 - shard.index) // shard.count))
        self._step = pow(self.generator, shard.count, self.prime)

    def walk(self, position: int = 0) -> Iterator[tuple[int, int]]:
        """``(position, index)`` pairs of this shard from ``position`` on, skipping elements >= size."""
        prime, size, step = self.prime, self.size, self._step
        element = self.start * pow(self.generator, self.shard.index + self.shard.count * position, prime) % prime
        for current in range(position, self.positions):
            if element <= size:
                yield current, element - 1
            element = element * step % prime


def safe_prime_above(n: int) -> int:
    """The smallest safe prime p = 2q + 1 with p > n (at least 5, so the group has a generator
    other than the trivial ones)."""
    q = max(2, n // 2)
    while True:
        p = 2 * q + 1
        if p > n and is_probable_prime(q) and is_probable_prime(p):
            return p
        q += 1


def is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    if n == 2:
        return True
    for small in _SMALL_PRIMES:
        if n % small == 0:
            return n == small
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    witnesses = _WITNESSES if n < 3_317_044_064_679_887_385_961_981 else (
        _WITNESSES + [random.Random(n).randrange(2, n - 1) for _ in range(40)]
    )
    for a in witnesses:
        x = pow(a % n, d, n)
        if x in (0, 1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_generator(p: int, rng: random.Random) -> int:
    """A random generator of (Z/pZ)* for a safe prime p: g has order p - 1 = 2q unless g**2 or
    g**q is 1."""
    q = (p - 1) // 2
    while True:
        g = rng.randrange(2, p - 1)
        if pow(g, 2, p) != 1 and pow(g, q, p) != 1:
            return g
