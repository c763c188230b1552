"""Language handling for routing, search and similar ideas: normalisation, tokens, stop words, stemming and
Swedish compounds.

Pure, synchronous, no I/O. The router reads Swedish most of the time and English sometimes, so every token
is looked at through both languages and the text's detected language decides which readings count.

Swedish needs more than a stemmer:

- Snowball's Swedish stemmer is uneven on definite forms ("skolan" stays "skolan" while "skolor" becomes
  "skol"), so a :class:`Lexicon` indexes every known word under the stems of its generated inflections
  (``skola`` -> skola, skolan, skolor, skolorna, skolans ...; ``cykel`` -> cykeln, cyklar ...; umlaut plurals
  such as ``bostad`` -> bostäder). An inflected token is then one stem and one dictionary look-up away.
- Compounds are written as one word ("fjärrvärmenätet", "skolmatsalen", "busshållplatsen"). A token that is
  not a known word is split by dynamic programming into known parts: non-final parts in their compounding
  forms (base form, stem, linking -s-/-e-, -a -> -u/-o as in "gatubelysning"), the final part in any inflected
  form. The known parts come from the keywords plus :data:`SWEDISH_MORPHEMES`, a general list of common
  Swedish words, so that "cykelbanorna" splits into cykel + bana without "cykelbana" being listed anywhere.
  One unknown part is tolerated at either end (as in "golvvärmen" -> ? + värme) when every known part has at
  least four letters.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import Stemmer  # PyStemmer: the C build (libstemmer) of the Snowball algorithms

Language = Literal["sv", "en"]

# ------------------------------------------------------------------------------------------------------------
# Normalisation and tokens

_JOINERS = re.compile(r"(?<=[^\W_])[-‐‑–:'’´](?=[^\W_])")
"""Hyphens, colons and apostrophes inside a word join its parts: e-tjänst -> etjänst, LKAB:s -> lkabs."""
_TOKEN = re.compile(r"(\d*+[^\W\d_][^\W_]*+)|\d++")
"""A word (the group): letters (any script), possibly with digits after the first letter (co2, e10) or before (4g).

A run of digits with no letter after it matches the second alternative, which yields an empty group and is
dropped. The alternatives do not overlap and the quantifiers are possessive, so a run of digits is read once:
tokenising is linear in the length of the text. (The earlier pattern had "digits, then a letter" as an alternative
of its own, which re-read the rest of a digit run from every digit in it: quadratic, 10,000 digits took a second.)"""
_SWEDISH_LETTERS = re.compile(r"[åäö]")

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
"""Routing reads no more of an idea than intake accepts (title 3-200 characters, description up to 10,000)."""

MAX_TOKEN_LENGTH = 40
"""Longer 'words' (unspaced scripts, pasted hashes) are kept whole but never split into compound parts."""


def normalise(text: str) -> str:
    """Unicode NFC, lower case, word-internal hyphens/colons/apostrophes joined, other punctuation removed.

    å, ä and ö (and every other letter of any script) are kept as they are: "Åtgärda värmen!" -> "åtgärda värmen".
    """
    return " ".join(tokenize(text))


def tokenize(text: str) -> list[str]:
    """The words of ``text`` after :func:`normalise` (numbers on their own are dropped). Linear in its length."""
    return [word for word in _TOKEN.findall(_JOINERS.sub("", unicodedata.normalize("NFC", text).lower())) if word]


def bounded(title: str | None, description: str | None) -> tuple[str, str]:
    """The part of an idea's text that routing reads: what intake accepts, so that a longer text from another
    front end costs no more than the longest idea intake lets through."""
    return (title or "")[:MAX_TITLE_CHARS], (description or "")[:MAX_DESCRIPTION_CHARS]


# ------------------------------------------------------------------------------------------------------------
# Stop words

SWEDISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    och det att i en jag hon som han på den med var sig för så till är men ett om hade de av icke mig du
    henne då sin nu har inte hans honom skulle hennes där min man ej vid kunde något från ut när efter upp vi
    dem vara vad över än dig kan sina här ha mot alla under någon eller allt mycket sedan ju denna själv detta
    åt utan varit hur ingen mitt ni bli blev oss din dessa några deras blir mina samma vilken er sådan vår
    blivit dess inom mellan sådant varför varje vilka ditt vem vilket sådana vart dina vars vårt våra ert era
    vilkas sitt ska skall kommer få får fick göra gör gjort gjorde finns fanns också även bara redan lite mer
    mera mest många fler flera väldigt vill ville borde bör måste behöver behövs kanske idag alltid aldrig
    ofta genom både dock samt enligt per via annat andra annan annars olika hela helt tex ex osv dvs etc
    någonting ingenting inget något sen nog jo nej ja ens bland hos emot mig utifrån kring runt eftersom
    därför medan innan fram tillbaka iväg väl lika dag dagar sätt ta tar tog går gå gick sig sina egen eget
    egna tycker tror känns verkar kunna ändå oftast ibland gärna in ner längs två tre fyra fem sex sju
    åtta nio tio hundra tusen första andra tredje
    """.split()
)

ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been before being below
    between both but by can cannot could couldn did didn do does doesn doing don down during each few for from
    further had hadn has hasn have haven having he her here hers herself him himself his how i if in into is
    isn it its itself just let me more most mustn my myself no nor not of off on once only or other ought our
    ours ourselves out over own same shan she should shouldn so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was wasn we were weren what
    when where which while who whom why will with won would wouldn you your yours yourself yourselves also
    get gets got would could should might must may make makes made many much lot lots every each instead
    even still already often always never really quite like want wants need needs one ones us s t two
    three four five six seven eight nine ten hundred first second third
    """.split()
)

_DETECT_AMBIGUOUS = frozenset({"i", "in", "is", "man", "men", "under", "by", "at", "do", "so", "dem", "for"})
_SV_DETECT = SWEDISH_STOP_WORDS - ENGLISH_STOP_WORDS - _DETECT_AMBIGUOUS
_EN_DETECT = ENGLISH_STOP_WORDS - SWEDISH_STOP_WORDS - _DETECT_AMBIGUOUS


def language_scores(tokens: Iterable[str]) -> tuple[float, float]:
    """Evidence for Swedish and for English in ``tokens``: unambiguous stop words, plus å/ä/ö for Swedish."""
    sv = en = 0.0
    for token in tokens:
        if token in _SV_DETECT:
            sv += 1.0
        elif token in _EN_DETECT:
            en += 1.0
        elif _SWEDISH_LETTERS.search(token):
            sv += 0.5
    return sv, en


def detect_language(text: str, default: Language = "sv") -> Language:
    """'sv' or 'en' for a text that came without a language; ``default`` when there is no evidence either way."""
    sv, en = language_scores(tokenize(text))
    if sv == en:
        return default
    return "sv" if sv > en else "en"


def active_languages(tokens: Iterable[str]) -> tuple[bool, bool]:
    """Which readings of the tokens count: (Swedish, English). Both when the text is mixed or gives no evidence."""
    sv, en = language_scores(tokens)
    if sv == 0 and en == 0:
        return True, True
    return sv >= 0.4 * en, en >= 0.4 * sv


# ------------------------------------------------------------------------------------------------------------
# Stemming

# PyStemmer is libstemmer_c, compiled from the same Snowball sources as the pure-Python snowballstemmer this module
# used before: the same stems, several times faster. A Stemmer object keeps state while it stems and "must not be
# called concurrently", and stemming also runs in worker threads (analytics indexes a large batch of ideas in
# asyncio.to_thread while its requests stem on the event loop), so each is used under a lock; with the lru_cache in
# front, the lock is taken only for a word not seen before. PyStemmer's own cache is off: the lru_cache is the cache.
_SV_STEMMER = Stemmer.Stemmer("swedish", 0)
_EN_STEMMER = Stemmer.Stemmer("english", 0)
_SV_LOCK = threading.Lock()
_EN_LOCK = threading.Lock()


@lru_cache(maxsize=200_000)
def stem_sv(word: str) -> str:
    """Snowball Swedish stem of a lower-case word."""
    with _SV_LOCK:
        return _SV_STEMMER.stemWord(word)


@lru_cache(maxsize=200_000)
def stem_en(word: str) -> str:
    """Snowball English (Porter2) stem of a lower-case word."""
    with _EN_LOCK:
        return _EN_STEMMER.stemWord(word)


def stem(word: str, language: Language) -> str:
    return stem_sv(word) if language == "sv" else stem_en(word)


# Umlaut and other irregular plurals; also applied to compounds ending in the word (bostad -> bostäder).
_SV_IRREGULAR: dict[str, tuple[str, ...]] = {
    "stad": ("städer", "städerna", "stan", "stans"),
    "bok": ("böcker", "böckerna"),
    "hand": ("händer", "händerna"),
    "land": ("länder", "länderna"),
    "strand": ("stränder",),
    "brand": ("bränder",),
    "tand": ("tänder",),
    "natt": ("nätter", "nätterna"),
    "fot": ("fötter",),
    "rot": ("rötter",),
    "son": ("söner",),
    "bonde": ("bönder",),
    "man": ("män", "männen"),
    "mus": ("möss",),
    "gås": ("gäss",),
    "bror": ("bröder",),
    "mor": ("mödrar",),
    "far": ("fäder",),
    "dotter": ("döttrar",),
    "öga": ("ögon",),
    "öra": ("öron",),
    "ko": ("kor",),
    "vän": ("vänner",),
    "mänska": ("människor",),
}
_SV_SUFFIXES = (
    "", "n", "en", "et", "er", "ar", "or", "r", "na", "erna", "arna", "orna", "s", "ns", "ens", "ets", "ers",
    "ars", "ors", "t", "a", "e", "ade", "at", "as", "ad", "de", "te", "ts", "ande", "ende", "are", "ning",
)  # fmt: skip
_VOWELS = "aeiouyåäöé"
_SYNCOPE = re.compile(rf"[^{_VOWELS}]e[lrn]$")
_SHORT_MN = re.compile(rf"^[^{_VOWELS}]*[{_VOWELS}][mn]$")


def swedish_forms(word: str) -> set[str]:
    """Plausible inflected forms of a Swedish base form (nouns, adjectives and verbs alike; over-generation is
    harmless because the forms are only used to recognise words that really occur)."""
    bases = {word}
    if word[-1:] in ("a", "e") and len(word) > 2:
        bases.add(word[:-1])  # skola -> skol|or, pojke -> pojk|ar, möte -> möt|en
    if _SYNCOPE.search(word):
        bases.add(word[:-2] + word[-1])  # cykel -> cykl|ar, fiber -> fibr|er, vatten -> vattn|et
    if _SHORT_MN.match(word):
        bases.add(word + word[-1])  # rum -> rumm|et
    forms = {base + suffix for base in bases for suffix in _SV_SUFFIXES}
    for head, plurals in _SV_IRREGULAR.items():
        if word.endswith(head):
            forms.update(word[: len(word) - len(head)] + plural for plural in plurals)
    return forms


def english_forms(word: str) -> set[str]:
    forms = {word, word + "s", word + "es", word + "ing", word + "ed"}
    if word.endswith("y") and len(word) > 2:
        forms.add(word[:-1] + "ies")
    if word.endswith("e"):
        forms.update((word[:-1] + "ing", word + "d"))
    return forms


def compounding_forms(word: str) -> set[str]:
    """How a Swedish word looks as the first part of a compound: skola -> skol, skole, skolo, gata -> gatu,
    arbete -> arbets, hyra -> hyres, plus the base form and the stem, each with and without a linking -s-."""
    base_stem = stem_sv(word)
    forms = {word, base_stem, word + "s", base_stem + "s"}
    if word.endswith("a"):
        forms.update((word[:-1], word[:-1] + "u", word[:-1] + "o", word[:-1] + "e", word[:-1] + "es"))
    if word.endswith("e"):
        forms.update((word[:-1], word[:-1] + "s"))
    return {form for form in forms if form}


# ------------------------------------------------------------------------------------------------------------
# The general Swedish vocabulary compounds are split against

SWEDISH_MORPHEMES: tuple[str, ...] = tuple(
    """
    hus rum väg bana plats nät system tjänst kort bil tid dag natt vecka månad år kväll morgon barn kök mat sal
    gård plan park skog sjö fjäll berg gruva stad by torg gata bro tak vägg golv dörr fönster trappa hiss
    källare förråd tvätt stuga lokal byggnad fastighet kontor skylt lampa ljus spår stig led kö lista avgift
    pris kostnad stöd hjälp grupp lag förening klubb träning hall plan central centrum station hållplats linje
    tur resa rese resor biljett fordon maskin verktyg utrustning material vara varor butik handel affär
    företag bolag förvaltning avdelning enhet kontor chef ledare medarbetare anställd personal kollega kund
    invånare medborgare brukare patient elev lärare förälder familj vuxen ungdom ung äldre gamla pensionär
    kvinna man flicka pojke person folk grann granne vän människa mänska liv hälsa vård omsorg sjuk kris
    trygghet säkerhet larm kamera sensor mätare mätning data information nyhet sida webb digital dator skärm
    telefon mobil app program tjänst konto inloggning lösenord post brev paket papper pappersark blankett
    avtal kontrakt faktura betalning räkning lön budget ekonomi pengar skatt bidrag ansökan beslut ärende
    regel rutin process arbete arbets jobb uppdrag projekt plan strategi mål möte samtal dialog utbildning
    kurs lektion klass skola bok läsning språk musik konst film teater dans sång spel lek idrott sport fotboll
    hockey skid skidor skid spår simning sim bad is snö vinter sommar vår höst väder kyla värme vind sol regn
    vatten luft ljud buller lukt rök damm smuts sop sopa skräp påse kärl tunna container behållare kompost
    jord sand grus sten trä virke metall glas plast kartong textil kläder skor möbel möbler pryl sak saker
    energi el kraft ström värme kyla ventilation fläkt pump panna radiator element ledning rör brunn kran
    avlopp dusch toalett badrum tvättmaskin torktumlare spis kyl frys diskmaskin lägenhet bostad hem boende
    hyra hyres gäst värd ägare kvarter område zon del sida kant mitt centrum norr söder öster väster ny gammal
    stor liten lång kort hög låg bred smal snabb långsam varm kall ljus mörk tyst ren fri öppen stängd egen
    gemensam lokal allmän offentlig privat kommunal statlig social grön blå vit svart röd sam all fjärr när
    mot över under efter före inne ute upp ner hem bort fram tillbaka kontroll plan planering byggande bygge
    rivning flytt flyttning utveckling förändring förbättring översyn uppföljning analys rapport statistik
    karta skiss ritning modell ljus belysning lampa stolpe signal skylt mark väg körfält trottoar övergång
    korsning rondell cirkulation parkering garage laddning laddare batteri motor bensin diesel olja gas
    skoter snöskoter båt tåg flyg flyg buss cykel gång fot promenad pendling resa hämtning lämning tömning
    insamling sortering fraktion station central anläggning verk fabrik industri gruvbolag lager varulager
    produkt tillverkning service underhåll reparation renovering ombyggnad tillbyggnad nybygge städning
    skötsel tillsyn inspektion besiktning besök möte träff fest evenemang aktivitet kalas marknad utställning
    mässa föreställning konsert visning visning guide turism turist besökare gäst hotell restaurang café
    kafé kiosk matsal lunch middag frukost mellanmål måltid portion kost dryck fika kaffe te socker frukt
    grönsak potatis kött fisk bröd mjölk vattenkokare uppvärmning kylning isolering fönster tak fasad
    entré port portar trapphus uppgång källarförråd vind vindsförråd balkong uteplats lekplats gräsmatta
    rabatt träd blomma buske odling trädgård planta djur hund katt häst ren fågel fisk insekt
    fri tids fritids kultur kulturell förskole grundskole gymnasie hög högstadie mellanstadie lågstadie
    special stöd assistans assistent boendestöd vårdare sköterska läkare tandläkare psykolog kurator
    rektor pedagog fritidspedagog barnskötare vaktmästare fastighetsskötare städare kock chaufför förare
    tekniker ingenjör arkitekt planerare handläggare inspektör samordnare koordinator administratör
    sekreterare ekonom jurist kommunikatör politiker nämnd styrelse fullmäktige råd rådet
    fel felanmälan anmälan klagomål synpunkt förslag idé tips fråga svar besked kö väntetid
    kort lång dygn timme minut sekund klocka schema kalender bokning
    """.split()
)
"""Common Swedish words used as compound parts, so that unlisted compounds split into listed words.

General vocabulary, not tied to any area: a word here only helps to split, it routes nothing by itself."""

_SHORT_PARTS = frozenset({"el", "is", "ny", "tv", "it", "va", "sol", "bo"})
"""Two- and three-letter words that may stand as the first part of a fully known compound (elbil, isbana)."""
_MIN_PART = 3
_MIN_PART_BESIDE_UNKNOWN = 4
_MIN_UNKNOWN = 3
_MAX_PART = 24
_MIN_SPLIT = 5


@dataclass(frozen=True, slots=True)
class Part:
    """A known word found in a token: its base form (lemma) and whether it is the head (last part)."""

    lemma: str
    head: bool
    whole: bool
    """True when the token is the word itself (inflected), False for a part of a compound."""


class Lexicon:
    """Known words of one language, found from any inflected form and (Swedish) from inside compounds.

    ``words`` are base forms ("fjärrvärme", "hyresgäst", "district heating" is two words: add them one by one).
    ``morphemes`` add general vocabulary that helps split compounds (Swedish only).
    """

    def __init__(self, words: Iterable[str], language: Language = "sv", morphemes: Iterable[str] = ()) -> None:
        self.language: Language = language
        words, morphemes = tuple(words), tuple(morphemes)
        priority: dict[str, int] = {}
        entries: dict[str, set[str]] = {}

        def add(key: str, lemma: str, rank: int) -> None:
            if not key:
                return
            current = priority.get(key)
            if current is None or rank < current:
                priority[key] = rank
                entries[key] = {lemma}
            elif rank == current:
                entries[key].add(lemma)

        # Rank: 0 = stem of a keyword's base form, 1 = stem of a generated form, 2/3 = the same for morphemes.
        for offset, group in ((0, words), (2, morphemes)):
            for word in group:
                word = normalise(word)
                if not word or " " in word:
                    continue
                if language == "sv":
                    add(stem_sv(word), word, offset)
                    for form in swedish_forms(word):
                        add(stem_sv(form), word, offset + 1)
                else:
                    add(stem_en(word), word, offset)
                    for form in english_forms(word):
                        add(stem_en(form), word, offset + 1)
        self._words: dict[str, tuple[str, ...]] = {key: tuple(sorted(v)) for key, v in entries.items()}

        self._modifiers: dict[str, str] = {}
        if language == "sv":
            for group in (words, morphemes):
                for word in group:
                    word = normalise(word)
                    if not word or " " in word:
                        continue
                    for form in compounding_forms(word):
                        if len(form) >= _MIN_PART or word in _SHORT_PARTS:
                            self._modifiers.setdefault(form, word)
        self._cache: dict[str, tuple[Part, ...]] = {}

    def key(self, token: str) -> str:
        return stem_sv(token) if self.language == "sv" else stem_en(token)

    def lookup(self, token: str) -> tuple[Part, ...]:
        """The known words in a normalised ``token``: the word itself, or the parts of a compound (may be empty)."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        key = self.key(token)
        whole = self._words.get(key)
        if whole is not None:
            parts = tuple(Part(lemma, head=True, whole=True) for lemma in whole)
        elif self.language == "sv" and _MIN_SPLIT <= len(key) <= MAX_TOKEN_LENGTH:
            parts = self._split(key)
        else:
            parts = ()
        if len(self._cache) >= 100_000:
            self._cache.clear()
        self._cache[token] = parts
        return parts

    def decompose(self, token: str) -> tuple[Part, ...]:
        """The compound parts of a token even when the token is a known word itself ("elcykel" -> el, cykel)."""
        key = self.key(token)
        if self.language != "sv" or not _MIN_SPLIT <= len(key) <= MAX_TOKEN_LENGTH:
            return ()
        return self._split(key, whole_allowed=False)

    def _split(self, stem: str, whole_allowed: bool = True) -> tuple[Part, ...]:
        """Best split of a Swedish stem into known parts: fewest unknown parts, then fewest parts."""
        n = len(stem)
        # best[i] = (unknown parts, parts, min known length, path) for stem[:i]
        best: list[tuple[int, int, int, tuple[tuple[str, ...] | None, ...]] | None] = [None] * (n + 1)
        best[0] = (0, 0, 99, ())
        for end in range(1, n + 1):
            final = end == n
            candidate = best[end]
            for start in range(max(0, end - _MAX_PART), end):
                previous = best[start]
                if previous is None or (final and start == 0 and not whole_allowed):
                    continue
                piece = stem[start:end]
                lemma: tuple[str, ...] | None
                if final:
                    lemma = self._words.get(piece)
                    if lemma is None and start > 0 and piece in self._modifiers:
                        lemma = (self._modifiers[piece],)  # a base form left unstemmed as the last part
                else:
                    lemma = (self._modifiers[piece],) if piece in self._modifiers else None
                unknown, count, shortest, path = previous
                if lemma is None:
                    # an unknown stretch is only allowed at the start or the end, once
                    if unknown or len(piece) < _MIN_UNKNOWN or not (start == 0 or final):
                        continue
                    option = (1, count + 1, shortest, (*path, None))
                else:
                    if len(piece) < _MIN_PART and not (lemma[0] in _SHORT_PARTS and not final):
                        continue
                    option = (unknown, count + 1, min(shortest, len(piece)), (*path, lemma))
                if candidate is None or option[:2] < candidate[:2]:
                    candidate = option
            best[end] = candidate
        result = best[n]
        if result is None:
            return ()
        unknown, count, shortest, path = result
        if count < 2 or (unknown and shortest < _MIN_PART_BESIDE_UNKNOWN) or unknown >= count:
            return ()
        last = len(path) - 1
        return tuple(
            Part(lemma, head=index == last, whole=False)
            for index, lemmas in enumerate(path)
            if lemmas
            for lemma in lemmas
        )

    def lemmas(self, token: str) -> tuple[str, ...]:
        """Base forms of the known words in ``token`` (convenience for tests and tools)."""
        return tuple(part.lemma for part in self.lookup(token))

    def __contains__(self, word: str) -> bool:
        return self.key(normalise(word)) in self._words


def content_keys(text: str) -> frozenset[str]:
    """Stems of the content words of ``text`` (stop words of both languages removed): a bag for similarity."""
    tokens = tokenize(text)
    use_sv, use_en = active_languages(tokens)
    keys = set()
    for token in tokens:
        if len(token) < 2 or token in SWEDISH_STOP_WORDS or token in ENGLISH_STOP_WORDS:
            continue
        keys.add(stem_sv(token) if use_sv or not use_en else stem_en(token))
    return frozenset(keys)
