"""A conservative estimate of how guessable an app key is.

Length alone lets obvious placeholders through (``"a" * 40``, ``"changeme changeme changeme!"``,
``"a random secret of 32 bytes or more"``). :func:`estimate_bits` finds the cheapest way to
describe a key as a sequence of pieces, each with a cost in bits, the way a guesser would
enumerate it:

- a character: log2 of the size of the character classes the key uses (digits 10, lower case
  26, upper case 26, ASCII symbols 33, anything else 128), or of how many distinct characters
  it uses plus one bit, whichever is smaller;
- a common word, maybe capitalised, maybe followed by one separator: log2 of the word list's
  size, or 7 bits when it follows another word (English carries about 1.3 bits a letter);
- a run such as ``aaaa``, ``abcd``, ``9876``: its first character, length and direction;
- a repeat of text seen earlier in the key: where it was and how long it is.

The estimate is deliberately simple and errs towards accepting random keys: a key from
``koasession keygen``, ``secrets.token_urlsafe(32)`` or ``secrets.token_hex(32)`` scores over
200 bits and 32 random bytes over 170, while placeholder phrases, keyboard and alphabet runs
and repeated words score under 100. Keys made by hand from English words score low by design.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from .errors import ConfigurationError

#: Keys estimated below this many bits are refused unless ``allow_weak_keys`` is set.
MIN_KEY_BITS = 100
# Longer keys are judged on this prefix: it is already far past the limit when random.
_ANALYSED_CHARS = 256
_SEPARATORS = frozenset(" -_.,:;/+")

# Common English words and the words placeholder keys are made of. A guesser's list is far
# longer; this one only needs to recognise what people type when they invent a "secret".
_WORD_TEXT = """
    a i an at be by do go he if in is it me my no of on or so to up us we am as ok
    the and for are but not you all any can had her was one our out day get has him his how
    man new now old see two way who boy did its let put say she too use key keys app web api
    dev test demo prod local admin root user pass word login auth token secret secrets private
    public session sessions cookie cookies sign signed signing hmac salt hash code value data
    random string text bytes byte bits long short strong weak secure safe example sample
    default change changeme please replace insert enter your here this that with from into
    least more most than then them they there their what when where which while will would
    should could must need needs never ever only just also very much many some same other
    another older newer oldest newest still accepted accept valid invalid real fake dummy
    placeholder temp temporary local localhost development develop production staging live
    server client service site page home main master slave primary backup config setting
    settings option options env environment variable keyboard cat dog mouse horse battery
    staple correct hello world welcome letmein qwerty azerty asdf zxcv abc xyz iloveyou
    qwertyuiop asdfghjkl zxcvbnm qwertz azertyuiop 1qaz 2wsx zaq1 xsw2
    monkey dragon sunshine princess football baseball shadow superman batman trustno
    password passw0rd passwd pwd secret1 admin1 koa koasession starlette fastapi django flask
    python node express framework project company team name first second third last next
    zero one two three four five six seven eight nine ten eleven twelve thirteen twenty
    thirty forty fifty hundred thousand million
    red blue green black white yellow orange purple pink gray grey brown gold silver
    love like good bad best better great big small little high low open close closed lock
    unlock door gate house room box file files folder path url link net org com www http
    https mail email phone number numbers letter letters char chars character characters
    make made keep kept give gave take took come came know knew think thought look want
    work works working time times year years month week today tomorrow night morning
    people person thing things place world life hand part child eye woman women men
    case point group problem fact right left wrong true false yes null none nothing
    something anything everything nobody somebody anybody everybody always sometimes
    quick brown fox jumps jumped over lazy sky sun moon star stars sea river tree trees
    water fire earth wind rain snow ice stone rock sand city town road street car train
    plane ship boat bird fish cow pig sheep goat lion tiger bear wolf fox rabbit apple
    banana cherry lemon grape bread milk coffee tea beer wine cake pizza food eat drink
    run walk jump fly swim sleep dream read write speak talk tell ask answer call send
    show hide find lose win play stop start begin end finish go went gone live die kill
    save store load build break fix move turn set reset hold help try use used using
    know knows knowing nobody knows happy sad angry funny crazy cool hot cold warm fast
    slow hard soft easy heavy light dark bright clean dirty rich poor young full empty
    free busy ready sure real only own same different important special simple super
    mega ultra hyper top new super duper magic power energy money cash bank card king
    queen prince castle knight sword shield game games player score level boss hero
    music song dance art book story news film movie video photo picture image sound
    voice word words sentence phrase line lines paper pen table chair bed window wall
    floor roof garden park school college university class teacher student office job
    family friend friends mother father brother sister son daughter baby kid kids girl
    head face heart blood body mind soul spirit god angel devil heaven hell ghost
    computer internet network system software hardware program programming developer
    database table query request response error debug release version update upgrade
    account profile member members group groups role roles access control guard shield
    encrypt encryption decrypt crypto cipher certificate signature verify verified
    protect protected protection security insecure unsafe hidden unknown mystery
    across after again against before behind below between beyond during except inside
    outside since through toward under until upon within without about above also
    because however therefore although though unless whether either neither both each
    every few less own such enough quite rather really almost already later soon yet
"""
_WORDS = frozenset(_WORD_TEXT.split())
_MAX_WORD = max(map(len, _WORDS))
_WORD_BITS = math.log2(len(_WORDS))
# Shannon's estimate for English is about 1.3 bits a letter: some 7 bits for a following word.
_NEXT_WORD_BITS = 7.0


def _char_class(ch: str) -> str:
    if not ch.isascii():
        return "other"
    if ch.isdigit():
        return "digit"
    if ch.islower():
        return "lower"
    if ch.isupper():
        return "upper"
    return "symbol"


_CLASS_SIZE = {"digit": 10, "lower": 26, "upper": 26, "symbol": 33, "other": 128}


def _char_bits(text: str) -> float:
    """Bits per character of a guesser who knows which character classes the key uses."""
    return math.log2(max(2, sum(_CLASS_SIZE[c] for c in set(map(_char_class, text)))))


def _run_length(low: str, i: int) -> int:
    """Length of the run at ``i`` whose characters step by the same -1, 0 or +1."""
    n = len(low)
    if i + 1 >= n:
        return 1
    step = ord(low[i + 1]) - ord(low[i])
    if step not in (-1, 0, 1):
        return 1
    j = i + 1
    while j + 1 < n and ord(low[j + 1]) - ord(low[j]) == step:
        j += 1
    return j - i + 1


def estimate_bits(key: str) -> tuple[float, str]:
    """Estimated guessing entropy of ``key`` in bits, and what made it low (or ``""``)."""
    text = key[:_ANALYSED_CHARS]
    low = text.lower()
    n = len(text)
    # A guesser who knows which classes the key draws from, or (fewer) which characters it uses.
    char_bits = min(_char_bits(text), math.log2(max(2, len(set(text)))) + 1)
    # Two best costs per position: reaching it by any path, and by a path ending in a word
    # (the next word then costs what English text carries per word, not a dictionary draw).
    best = [0.0] + [math.inf] * n
    after_word = [math.inf] * (n + 1)
    how = [""] * (n + 1)
    how_word = [""] * (n + 1)
    for i in range(n):
        here = best[i]
        # one character
        if here + char_bits < best[i + 1]:
            best[i + 1], how[i + 1] = here + char_bits, how[i] + "c"
        # a word, maybe capitalised, maybe followed by a separator
        for j in range(i + 1, min(n, i + _MAX_WORD) + 1):
            if low[i:j] not in _WORDS:
                continue
            word = text[i:j]
            case_bit = 0.0 if word == low[i:j] else 1.0
            total, path = here + _WORD_BITS + case_bit, how[i]
            # One capitalisation style for a whole phrase (ThisIsMyKey, THIS-IS-MY-KEY).
            style_bit = 0.0 if word in (low[i:j], word.capitalize(), word.upper()) else 1.0
            if after_word[i] + _NEXT_WORD_BITS + style_bit < total:
                total, path = after_word[i] + _NEXT_WORD_BITS + style_bit, how_word[i]
            ends = [(j, total)]
            if j < n and text[j] in _SEPARATORS:
                ends.append((j + 1, total + 1))
            for end, cost in ends:
                if cost < best[end]:
                    best[end], how[end] = cost, path + "w"
                if cost < after_word[end]:
                    after_word[end], how_word[end] = cost, path + "w"
        # a run: aaaa, abcd, 4321
        run = _run_length(low, i)
        for j in range(i + 3, i + run + 1):
            cost = char_bits + math.log2(j - i) + 1
            if here + cost < best[j]:
                best[j], how[j] = here + cost, how[i] + "s"
        # a repeat of earlier text (at least 3 characters)
        if i >= 1:
            length = 0
            while i + length < n and low.find(low[i : i + length + 1], 0, i + length) >= 0:
                length += 1
            for j in range(i + 3, i + length + 1):
                cost = math.log2(i) + math.log2(j - i) + 1
                if here + cost < best[j]:
                    best[j], how[j] = here + cost, how[i] + "r"
    path = how[n]
    reasons = []
    if "r" in path:
        reasons.append("repeated text")
    if "s" in path:
        reasons.append("a run of consecutive or equal characters")
    if "w" in path:
        reasons.append("common words")
    if len(set(text)) < 10:
        reasons.append(f"only {len(set(text))} distinct character(s)")
    return best[n], " and ".join(reasons[:2])


# Keys printed in koasession's README, docs and examples, and classic framework placeholders:
# public, so never secret, however long. Compared without case, spaces or punctuation.
_PUBLISHED = (
    "a random secret of 32 bytes or more",
    "an older key still accepted",
    "an older key of 32 bytes or more too",
    "an older key",
    "development key, not a secret: 32+ bytes",
    "keyboard cat",
    "your secret key",
    "super secret key",
    "secret key",
    "change me",
    "changeme",
    "my secret",
    "s3cr3t",
)


def _normal(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


_PUBLISHED_NORMAL = frozenset(map(_normal, _PUBLISHED))


def is_published(key: str) -> bool:
    """True when ``key`` is a key printed in our documentation or a well-known placeholder."""
    return _normal(key) in _PUBLISHED_NORMAL


#: The message for an empty key list, the same from every class that takes keys.
NO_KEYS_MESSAGE = (
    "at least one key is required: pass keys=[...] with a random secret of 32 bytes or more, "
    "made with `koasession keygen`"
)


def check_keys(keys: object, *, required: bool = True) -> list[str | bytes]:
    """The one structural check of an app key list; return it as a list.

    Refuses, with a :class:`~koasession.errors.ConfigurationError`, a single ``str``/``bytes``
    instead of a list, something not iterable, an empty list (when ``required``), a key that is
    neither ``str`` nor ``bytes``, a ``str`` key not encodable as UTF-8 and an empty key. It does
    not judge strength: :func:`koasession.options.validate_keys` does that, unless weak keys are
    allowed. ``Signer``, ``CookieCipher`` and the middleware options all call this.
    """
    if isinstance(keys, (str, bytes)):
        raise ConfigurationError("keys must be a list of keys, the first signing: keys=[key]")
    if isinstance(keys, (AbstractSet, Mapping)):
        # A set has no order (a str's hash differs per process), so each worker could sign with
        # another key, and dropping the old key at the end of a rotation would log people out.
        raise ConfigurationError(
            f"keys must be an ordered list, the first signing: keys=[new_key, old_key]; "
            f"a {type(keys).__name__} has no order of its own"
        )
    try:
        key_list: list[str | bytes] = list(keys)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigurationError(
            f"keys must be a list of str or bytes; got {type(keys).__name__}"
        ) from None
    if required and not key_list:
        raise ConfigurationError(NO_KEYS_MESSAGE)
    for index, key in enumerate(key_list):
        if isinstance(key, str):
            try:
                raw = key.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigurationError(f"keys[{index}] is not encodable as UTF-8") from None
        elif isinstance(key, bytes):
            raw = key
        else:
            # The type only: the value of something passed as a key may be a secret.
            raise ConfigurationError(
                f"keys[{index}] must be str or bytes; got {type(key).__name__}"
            )
        if not raw:
            raise ConfigurationError(f"keys[{index}] is empty")
    return key_list
