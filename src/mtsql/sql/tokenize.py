"""The Spider-format SQL tokenizer: the official evaluator's token stream, without NLTK.

The official evaluator (``process_sql.tokenize`` of test-suite-sql-eval) turns single quotes into double
quotes, masks every quoted literal with a placeholder, runs NLTK's ``word_tokenize`` (Punkt sentence
splitting, then the NLTK Treebank word rules on each sentence), lower-cases the tokens, restores the
literals and merges ``!``/``>``/``<`` with a following ``=``. Users cannot be asked to download Punkt
data, so this module re-implements both NLTK stages (NLTK 3.10, ``punkt_tab``) for the text that can reach
them: no quote character survives the masking, so NLTK's quote and clitic rules never fire and are left out.

Sentence splitting matters because NLTK splits a sentence-final period off its word (``T1.`` then ``*``
becomes ``t1``, ``.``, ``*``; ``3. AND`` becomes ``3``, ``.``, ``and`` but ``3. and`` stays ``3.``, ``and``).
Punkt's decisions use statistics of its English model: the abbreviation, collocation and sentence-starter
lists are small and embedded whole; its orthographic table (20k words) is embedded only for SQL keywords,
single letters and the words of the Spider schemas.

Known residuals (none occurs in the dev sets or in SQL-like text): an English word outside that vocabulary,
capitalised, after an initial or an abbreviation and whitespace (``J. Whereas``) is treated as never seen
by the model; and Python's ``re`` differs from the ``regex`` engine NLTK uses on some non-ASCII classes
(``\\w`` for combining marks, ``\\d`` for characters newer than Python's Unicode tables) used to detect
initials and numbers. ``\\s`` is emulated exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from mtsql.errors import MtsqlError

__all__ = ["SQLTokenizeError", "split_sentences", "tokenize", "word_tokenize"]


class SQLTokenizeError(MtsqlError, ValueError):
    """The query cannot be tokenized the official way (an odd number of quote characters)."""


def tokenize(sql: str) -> list[str]:
    """Tokens of ``sql`` exactly as the official evaluator's ``tokenize`` produces them.

    Raises :class:`SQLTokenizeError` where the official one fails (an unpaired quote).
    """
    return list(_tokenize_cached(str(sql)))


@lru_cache(maxsize=1 << 16)
def _tokenize_cached(sql: str) -> tuple[str, ...]:
    text = sql.replace("'", '"')
    quote_positions = [match.start() for match in _DOUBLE_QUOTE.finditer(text)]
    if len(quote_positions) % 2:
        raise SQLTokenizeError(f"unexpected quote (unpaired quote character) in {sql!r}")

    # Each literal "..." becomes a placeholder token named after its quote offsets, as the official does;
    # the placeholder's exact spelling matters because it may stay glued to neighbouring text.
    literals: dict[str, str] = {}
    pieces: list[str] = []
    last = 0
    for open_at, close_at in zip(quote_positions[::2], quote_positions[1::2], strict=True):
        placeholder = f"__val_{open_at}_{close_at}__"
        literals[placeholder] = text[open_at : close_at + 1]
        pieces.append(text[last:open_at])
        pieces.append(placeholder)
        last = close_at + 1
    pieces.append(text[last:])

    masked = "".join(pieces)
    if masked.isascii():  # ASCII lower-casing is per character, so lowering the sentences is equivalent
        tokens = [word for sentence in split_sentences(masked) for word in _treebank_tokenize(sentence.lower())]
    else:
        tokens = [word.lower() for word in word_tokenize(masked)]
    if literals:
        tokens = [literals.get(token, token) for token in tokens]
    return tuple(_merge_comparison_operators(tokens))


def _merge_comparison_operators(tokens: list[str]) -> list[str]:
    """Join ``!``/``>``/``<`` with a following ``=``, right to left, with the official's index arithmetic.

    An ``=`` at position 0 looks at the *last* token (Python's ``[-1]``) and, when that is a prefix,
    rebuilds the list as ``tokens[:-1] + [prefix + '='] + tokens[1:]``; this is reproduced on purpose.
    """
    if "=" not in tokens or ("!" not in tokens and ">" not in tokens and "<" not in tokens):
        return tokens
    for position in [index for index, token in enumerate(tokens) if token == "="][::-1]:
        before = tokens[position - 1]
        if before in _COMPARISON_PREFIXES:
            tokens = [*tokens[: position - 1], before + "=", *tokens[position + 1 :]]
    return tokens


_DOUBLE_QUOTE = re.compile('"')
_COMPARISON_PREFIXES = frozenset(("!", ">", "<"))


# --------------------------------------------------------------------------------------------------
# NLTK word_tokenize = Punkt sentence splitting + the NLTK (improved Treebank) word tokenizer.
# --------------------------------------------------------------------------------------------------


def word_tokenize(text: str) -> list[str]:
    """NLTK's ``word_tokenize`` (English), for text without quote characters, case preserved."""
    tokens: list[str] = []
    for sentence in split_sentences(text):
        tokens.extend(_treebank_tokenize(sentence))
    return tokens


# NLTK compiles its patterns with the third-party ``regex`` engine, whose \s (and so \S) excludes the
# information separators U+001C..U+001F that Python's ``re`` counts as whitespace.
_SPACE = r"[^\S\x1c-\x1f]"
_NON_SPACE = r"[\S\x1c-\x1f]"

# Treebank rules that can fire once quotes are masked, in NLTK's order. Rules that only pad single
# characters with spaces are applied with ``str.replace``; the others only when their trigger is present.
_OPENING_QUOTE_TRIGGER = re.compile("[«“‘„`]")
_OPENING_QUOTES = re.compile(r"([«“‘„]|`+)")
_FINAL_PERIOD_CLOSERS = frozenset("])}>\"'»”’ ")
_FINAL_PERIOD_AGAIN_CLOSERS = frozenset("])}>\"'")
_NOT_REGEX_SPACE = frozenset("\x1c\x1d\x1e\x1f")
_COLON_COMMA_BEFORE_NON_DIGIT = re.compile(r"([:,])([^\d])")
_COLON_COMMA_AT_END = re.compile(r"[:,]$")
_ELLIPSIS_RUN = re.compile(r"\.{2,}")
_SYMBOLS_AND_DASHES = tuple(";@#$%&\u2012\u2013\u2014\u2015")
_MARKS_BRACKETS_CLOSING_QUOTES = tuple("?!*[](){}<>»”’")
# MacIntyre contractions NLTK splits (those containing an apostrophe cannot occur here). NLTK runs these
# with the standard ``re`` engine, so ``\b`` and ``\s`` keep their ``re`` meaning.
_CONTRACTIONS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(can)(not)\b",
        r"\b(gim)(me)\b",
        r"\b(gon)(na)\b",
        r"\b(got)(ta)\b",
        r"\b(lem)(me)\b",
        r"\b(wan)(na)(?=\s)",
    )
)
_CONTRACTION_WORDS = ("cannot", "gimme", "gonna", "gotta", "lemme", "wanna")


def _treebank_tokenize(sentence: str) -> list[str]:
    """NLTK's ``NLTKWordTokenizer.tokenize`` restricted to quote-free text."""
    text = sentence
    if _OPENING_QUOTE_TRIGGER.search(text):
        text = _OPENING_QUOTES.sub(_pad_match, text)
        if "``" in text:
            text = text.replace("``", " `` ")
    has_period = "." in text
    if has_period:
        text = _split_final_period(text, _FINAL_PERIOD_CLOSERS, " . ")
    if "," in text or ":" in text:
        text = _COLON_COMMA_BEFORE_NON_DIGIT.sub(_pad_colon_comma, text)
        if text.endswith((",", ":", ",\n", ":\n")):
            text = _COLON_COMMA_AT_END.sub(_pad_match, text)
    if has_period:
        if ".." in text:
            text = _ELLIPSIS_RUN.sub(_pad_match, text)
        text = _split_final_period(_pad(text, _SYMBOLS_AND_DASHES), _FINAL_PERIOD_AGAIN_CLOSERS, " .")
    else:
        text = _pad(text, _SYMBOLS_AND_DASHES)
    text = " " + _pad(text, _MARKS_BRACKETS_CLOSING_QUOTES).replace("--", " -- ") + " "
    lowered = text.lower()
    # Each contraction has a doubled letter: a cheap filter before the six patterns.
    if ("nn" in lowered or "mm" in lowered or "tt" in lowered) and any(word in lowered for word in _CONTRACTION_WORDS):
        for pattern in _CONTRACTIONS:
            text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def _pad_match(match: re.Match[str]) -> str:
    return f" {match[0]} "


def _pad_colon_comma(match: re.Match[str]) -> str:
    return f" {match[1]} {match[2]}"


def _pad(text: str, chars: tuple[str, ...]) -> str:
    """Surround every occurrence of each character with spaces (single-character rules commute)."""
    for char in chars:
        if char in text:
            text = text.replace(char, f" {char} ")
    return text


def _split_final_period(text: str, closers: frozenset[str], replacement: str) -> str:
    """NLTK's final-period rule ``([^.])(\\.)([closers]*)\\s*$``: only the text's last period can match."""
    dot = text.rfind(".")
    if dot < 1 or text[dot - 1] == ".":
        return text
    end = dot + 1
    while end < len(text) and text[end] in closers:
        end += 1
    rest = text[end:]
    if rest and not (rest.isspace() and _NOT_REGEX_SPACE.isdisjoint(rest)):
        return text
    return text[:dot] + replacement + text[dot + 1 : end] + " "


# ---------------------------------------------------------------------------------- Punkt (English)

_NON_WORD_CHARS = r"[)\";}\]*:@'({\[\u2018\u2019\u201c\u201d\xab\xbb!?]"
_MULTI_CHAR_PUNCT = r"(?:-{2,}|\.{2,}|(?:\." + _SPACE + r"){2,}\.)"
_WORD_START = r"[^(\"`{\[:;&#*@)}\]\-,]"
# A '.', '?' or '!' followed by punctuation or by whitespace and a next token: a candidate boundary.
_END_CANDIDATE = re.compile(
    r"[.?!](?=(?P<after>" + _NON_WORD_CHARS + "|" + _SPACE + r"+(?P<next>" + _NON_SPACE + r"+)))"
)
_PUNKT_WORD = re.compile(
    "|".join(
        (
            _MULTI_CHAR_PUNCT,
            # a word: starts with a word-start character, ends before whitespace, the end, punctuation
            # that cannot be inside a word, a multi-character punctuation, or a word-final comma
            f"(?={_WORD_START}){_NON_SPACE}+?"
            f"(?={_SPACE}|$|{_NON_WORD_CHARS}|{_MULTI_CHAR_PUNCT}"
            f"|,(?=$|{_SPACE}|{_NON_WORD_CHARS}|{_MULTI_CHAR_PUNCT}))",
            _NON_SPACE,
        )
    )
)
_BOUNDARY_REALIGNMENT = re.compile(
    r"[\"')\]}\u2018\u2019\u201c\u201d\xab\xbb]+?(?:" + _SPACE + r"+|(?=--)|$)", re.MULTILINE
)
_NUMERIC = re.compile(r"^-?[.,]?\d[\d,.-]*\.?$")
_INITIAL = re.compile(r"[^\W\d]\.$")
_ELLIPSIS = re.compile(r"\.\.+$")
_ASCII_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")  # Python's string.whitespace, used by Punkt here
_SENTENCE_END_CHARS = frozenset(".?!")
_PUNCTUATION_TOKENS = frozenset(";:,.!?")


def split_sentences(text: str) -> list[str]:
    """Punkt's English sentence split of ``text`` (NLTK ``sent_tokenize``), boundaries realigned."""
    if _END_CANDIDATE.search(text) is None:
        end = len(text.rstrip())
        return [text[:end]] if end else []
    return [text[start:stop] for start, stop in _realign(text, list(_raw_spans(text)))]


def _raw_spans(text: str) -> Iterator[tuple[int, int]]:
    last_break = 0
    for match, context in _candidate_contexts(text):
        if _context_has_break(context):
            yield last_break, match.end()
            last_break = match.start("next") if match.group("next") else match.end()
    yield last_break, len(text.rstrip())


def _candidate_contexts(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each candidate with the word before it; a candidate whose word overlaps the next one is dropped."""
    previous: re.Match[str] | None = None
    previous_start = previous_stop = 0
    for match in _END_CANDIDATE.finditer(text):
        between = text[previous_stop : match.start()]
        last_space = 0  # Punkt reports "none" and "at offset 0" alike, as 0
        for offset in range(len(between) - 1, -1, -1):
            if between[offset] in _ASCII_WHITESPACE:
                last_space = offset
                break
        word_start = last_space + previous_stop + 1 if last_space else previous_start
        if previous is not None and previous_stop <= word_start:
            yield previous, text[previous_start:previous_stop] + previous.group() + previous.group("after")
        previous, previous_start, previous_stop = match, word_start, match.start()
    if previous is not None:
        yield previous, text[previous_start:previous_stop] + previous.group() + previous.group("after")


def _realign(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Move closing brackets/quotes that open the next sentence onto the sentence they follow."""
    shift = 0
    for index, (start, stop) in enumerate(spans):
        start += shift
        if index + 1 == len(spans):
            if text[start:stop]:
                yield start, stop
            continue
        next_start, next_stop = spans[index + 1]
        found = _BOUNDARY_REALIGNMENT.match(text[next_start:next_stop])
        if found:
            yield start, next_start + len(found.group(0).rstrip())
            shift = found.end()
        else:
            shift = 0
            if text[start:stop]:
                yield start, stop


class _Token:
    """A Punkt word token with the annotations the boundary decision needs."""

    __slots__ = ("abbr", "ellipsis", "kind", "sentbreak", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.kind = _NUMERIC.sub("##number##", text.lower())
        self.sentbreak = False
        self.abbr = False
        self.ellipsis = False

    @property
    def kind_without_period(self) -> str:
        kind = self.kind
        return kind[:-1] if len(kind) > 1 and kind[-1] == "." else kind

    @property
    def kind_without_sentence_period(self) -> str:
        return self.kind_without_period if self.sentbreak else self.kind


def _punkt_words(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for line in text.split("\n"):
        if line.strip():
            tokens.extend(_Token(word) for word in _PUNKT_WORD.findall(line))
    return tokens


def _context_has_break(context: str) -> bool:
    """Punkt's ``text_contains_sentbreak``: some token other than the last is a sentence break."""
    tokens = _punkt_words(context)
    for token in tokens:
        _first_pass(token)
    for index, token in enumerate(tokens[:-1]):
        _second_pass(token, tokens[index + 1])
        if token.sentbreak:
            return True
    return False


def _first_pass(token: _Token) -> None:
    text = token.text
    if text in _SENTENCE_END_CHARS:
        token.sentbreak = True
    elif _ELLIPSIS.match(text):
        token.ellipsis = True
    elif text.endswith(".") and not text.endswith(".."):
        stem = text[:-1].lower()
        if stem in _PUNKT_ABBREVIATIONS or stem.split("-")[-1] in _PUNKT_ABBREVIATIONS:
            token.abbr = True
        else:
            token.sentbreak = True


def _second_pass(token: _Token, following: _Token) -> None:
    if not token.text.endswith("."):
        return
    kind = token.kind_without_period
    next_kind = following.kind_without_sentence_period
    is_initial = _INITIAL.match(token.text) is not None
    if (kind, next_kind) in _PUNKT_COLLOCATIONS:
        token.sentbreak, token.abbr = False, True
        return
    if (token.abbr or token.ellipsis) and not is_initial:
        starts = _orthographic_sentence_start(following)
        if starts is True or (following.text[0].isupper() and next_kind in _PUNKT_SENTENCE_STARTERS):
            token.sentbreak = True
            return
    if is_initial or kind == "##number##":
        starts = _orthographic_sentence_start(following)
        if starts is False or (
            starts is None and is_initial and following.text[0].isupper() and next_kind not in _ORTHO_SEEN_LOWERCASE
        ):
            token.sentbreak, token.abbr = False, True


def _orthographic_sentence_start(token: _Token) -> bool | None:
    """Punkt's orthographic heuristic: True (starts a sentence), False (does not), None (unknown)."""
    if token.text in _PUNCTUATION_TOKENS:
        return False
    kind = token.kind_without_sentence_period
    first = token.text[0]
    if first.isupper() and kind in _ORTHO_CAPITAL_STARTS_SENTENCE:
        return True
    if first.islower() and kind not in _ORTHO_LOWERCASE_ONLY_AT_SENTENCE_START:
        return False
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The Punkt English model (NLTK ``punkt_tab/english``, Kiss & Strunk, trained on the WSJ): complete lists.
_PUNKT_ABBREVIATIONS = _words(
    "a.a a.c a.d a.g a.h a.m a.m.e a.s a.t adm ala ariz aug ave b.f b.v bros c c.i.t c.o.m.b c.v "
    "calif chg cie co col colo conn corp cos ct d d.c d.h d.w dec dr e e.f e.h e.l e.m f f.g f.j feb "
    "fla fri ft g g.d g.f g.k ga gen h h.c h.f h.m i.m.s ill inc j.b j.c j.j j.k j.p j.r jan jr k kan "
    "ky l l.a l.f l.p lt ltd m m.b.a m.d.c m.j maj messrs mg mich minn mr mrs ms n n.c n.d n.h n.j "
    "n.m n.v n.y nev nov oct ok okla ore p p.a.m p.m pa ph.d prof r r.a r.h r.i r.j r.k r.t rep reps "
    "s s.a s.a.y s.c s.g s.p.a s.s sen sep sept sr st sw t t.j tenn tues u.k u.n u.s u.s.a u.s.s.r v "
    "va vs vt w w.c w.r w.va w.w wash wed wis yr "
) | {". . "}
_PUNKT_COLLOCATIONS = frozenset(
    [
        ("##number##", word)
        for word in _words(
            "abreast aes business cbot colgate commodities cooper corrections credit dividend financing "
            "genentech henley insider international leisure letters notable pay-fone pegasus pepper "
            "review rj wedgestone who zimmer "
        )
    ]
    + [("b", word) for word in ("edelman", "levine", "smith", "stewart", "wigton")]
    + [("i", "magnin"), ("i", "toussie"), ("j", "aron"), ("j", "fialka"), ("j", "walter"), ("o", "ludcke")]
)
_PUNKT_SENTENCE_STARTERS = _words(
    "according although among both but despite even he however i if in indeed instead it many "
    "meanwhile moreover most nevertheless nonetheless nor sales separately similarly since so some "
    "the there these they this though thus under when while yet "
)
# Orthographic facts. Words seen in lower case at a sentence start and never with a capital (complete):
_ORTHO_LOWERCASE_ONLY_AT_SENTENCE_START = frozenset(("administrators", "b-week", "r-revised", "z-holiday"))
# Words (types) seen in lower case that the model never saw capitalised inside a sentence, then the other
# words seen in lower case; both restricted to SQL keywords, single letters, the words of the lists above
# and the Spider schemas' words.
_ORTHO_CAPITAL_STARTS_SENTENCE = _words(
    "a.m. abandoned abbreviation abreast accelerate acceleration accelerator acceptance accident "
    "accreditation accuracy active address addresses administrators adopted adults affected "
    "affiliated affiliation affirmative agent agents aggression agreed agreements airline airports "
    "album allowed amount annual apartment appearances applications appointment apt architect arrange "
    "arrival arrived artist artwork aspect assessments assigned assignment assignments assisting "
    "attacking attendance attraction attribute attributes audience author authors availability "
    "available awarded b-week band bars bats became bed bedroom beds begin behavior between billing "
    "billions birth body bonus booked bookings boys branch brand breed breeds bronze budgeted builder "
    "buildup built burden bus buyer call camera campuses candidate candidates car cartoon cast "
    "catalog categories caused cd-v. cell cells certificate chair chance channels character "
    "characteristic charge check checking circuit circuits circulation cite citing citizenship claim "
    "claimed classes classification client climber cloud codes colors commander comment commit "
    "compatible complaints completed completion component composer conductor connection consider "
    "contact contacts content contents continent continents continuation conversion copies copy "
    "copyright cost counties coupon course courses cows create created creation credits crossing "
    "customer cycle date dates deaths debate debut decor default defensive definition degree degrees "
    "delegate delivered deliveries delivery departed departments dependent derived description "
    "destroyed detail details detention directed discipline discontinued disk disposed disposition "
    "distance distinct diving document documents dogs dollars domestic dose double draft drafts drama "
    "draw drink drivers duration effective electoral eliminated elimination else employee employer "
    "engineer engineers enrollments entered entrepreneur entry enzyme episode era escape evaluation "
    "event examination except exercise exists expenses expires facility faculty fame famous fastest "
    "fate fault feature features feet female fielding file files final finances fines finish fix flag "
    "flight floor followers follows foot format formed founded founder franchise friend fully gender "
    "genres geographic girls given goals governor grants grid gross guest guests happy heading height "
    "highest hire hired hiring hometown horse horsepower host hosts hour hours identity image images "
    "inches incident incorporated indeed individual individuals initial injured injury inner "
    "installation instead instrument into inventory invested invoices issued item items jerk joined "
    "journalist jumping kick kicking kid kids killed language languages lap latitude launch launched "
    "leisure length lens lesson lessons letters lieutenant liked likes list lists lives location "
    "locations lot mailed maintenance male manage manager manufacturer marking mascot match mean "
    "medication member membership meter meters method metric mg. mid midnight-to-5-a.m. miles "
    "millions minute mobile monthly moreover moved movements museums nationality native needed "
    "negative neutral nevertheless nickname nomination nominee nonetheless nor notable note "
    "notification number objectives occupancy occupation offered officer offset opened opening "
    "openings operate oppose organizations organized origin original outcome outer outstanding "
    "overall owner p.m. page pages paid par paragraphs parallel parking parks participant "
    "participants passengers passing password patient payable per percent percentage performance "
    "performer performers permanent person personal phone photos phrase physician pick pieces pilot "
    "pitching planned platform platforms play played player plays points poker poll position "
    "positioning postal potential pounds preferred premise premises prerequisite previous principal "
    "problem problems procedures processing product professionals professor program projects "
    "propulsion protein provided province publication publisher purchased purchases qualifying "
    "quantity r-revised races range ranking rankings rating ratio reactions receipt received "
    "recommendations recorded region regional regions registered registration regular relationship "
    "rent rental replace replacement represented requested required residents resolution response "
    "restaurant result results returned revision rid right rings roles rooms round routes schedule "
    "scholarship scientist score season seasons seating section sections seed select selling semester "
    "senator sent separately settled sex shipment shipping shooting shot shots similarly size skill "
    "skills sliding slots so songs source speed spent sponsor sport stage stages stamina standing "
    "started starting statement statements status stint stored stories strength structure structures "
    "studio subjects subscription sum supplied supplier suppliers surface tackle tags task teacher "
    "teaches team technician temperature temporary text things though throws thus ticket tie timed "
    "tip title took tourist tourney tracks train trained transactions transcripts transfer transit "
    "treatment treatments tries trigger trim triple true type typical unavailable unique us user "
    "using valid values vault vehicle vendor version vision visitor visitors visits votes vs. weather "
    "web wedding weeks weight wheels win winner working writer writes written yes yet z-holiday "
)
_ORTHO_ALSO_SEEN_LOWERCASE = _words(
    "a access according account accounts acquired acting activities activity actor actual additional "
    "age agree aid air aircraft airlines airport all allergy alter although among and any approved "
    "area areas artists as assessment asset assets attorney authority average award away b bad "
    "balance ball bank bar base basketball battle be benefits best bid big billion birthday black "
    "block book border born both broadcast budget building buildings business but buying by c "
    "calendar campaigns campus capacity capital card cards carrier cars case cases category cattle "
    "certification chain change channel charges chip church cited cities city claims class clean "
    "clients closed club coach code college color commission committee commodities common companies "
    "company competition complaint comptroller concert conference contract contracts control council "
    "count countries country county cover credit crime cross culture currency current customers d "
    "daily damage damaged data day days death decision defense department departure despite device "
    "did director discount district dividend division dog dollar drop due earnings editor elected "
    "election employees employment end equity estimate even events exit extension facilities "
    "factories false family farm fee fees festival film finance financial financing first fleet "
    "flights food football for force foreign form forms free freight from fuel full furniture game "
    "games gas general get gold good government graduate graduation grant graphics group groups half "
    "hall hand handling hardware has having he head headquarters held high history home horses hotel "
    "hotels house how however human if in index industry insider institution instruments insurance "
    "international investor investors is issue issues it job jobs join journal key lake last late "
    "latest leader league left letter level life like limit line lines loan loans local long loss "
    "losses lost lots low lower lowest machine made main major make maker makers making management "
    "manufacturers many market marketing markets master meanwhile measure media medicine memory "
    "methods middle mill million minister minor minutes mission model money month most mountain move "
    "movie museum music musical name names natural net network news next no none not notes nurse of "
    "office officers official old on open operating option or order orders organization other out "
    "owners package paper papers parent park part parties parts party pay payment payments penalties "
    "people pet photo picture place placed players point police policies policy popular population "
    "power president pressure price primary producer production products professional profits "
    "programs project properties property public purchase qualify quality race railway raised random "
    "rank rate rates ratings record reference refund register release repair report reported reports "
    "representative research reservations return revenue review road role room route s safety salary "
    "sales savings school scientists scores screen sea seats secretary series service services set "
    "settlement settlements share ship shipments shop shops short show sign silver since singer small "
    "software sold some song special sports staff star stars start starts state station stay stock "
    "stop store stores storm street student students subject summary support system table taken takes "
    "target tasks tax teachers test tests the theme then there these they thing third this ties time "
    "times to top total town track trade training transaction treasurer trip truck trucks trust types "
    "under union unit university upper used users value vehicles vice video view viewers visit volume "
    "vote voting week weekly when where while white who wind wine winning wins with won work works "
    "worldwide worth year years z "
)
_ORTHO_SEEN_LOWERCASE = _ORTHO_CAPITAL_STARTS_SENTENCE | _ORTHO_ALSO_SEEN_LOWERCASE
