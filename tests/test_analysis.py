"""Language, sentiment and priority signals of posts, without a database.

Every example here is written for these tests; the blind evaluation sample lives elsewhere
and is not used to tune anything.
"""

import pytest

from engage import analysis
from engage.analysis import detect_language, priority_signals, sentiment, sentiment_score
from engage.choices import Sentiment


def it(text: str) -> str:
    return sentiment(text, "it")


def it_score(text: str) -> float:
    return sentiment_score(text, "it")


# --- Language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Buongiorno, il mio ordine non è ancora arrivato e nessuno risponde", "it"),
        ("Non è male", "it"),
        ("Nessun problema, grazie mille", "it"),
        ("Still waiting for my refund, this is ridiculous", "en"),
        ("My package never arrived", "en"),
        ("Hola, mi pedido todavía no ha llegado", "es"),
        ("Ma commande n'est jamais arrivée", "fr"),
        ("Meine Bestellung ist nicht angekommen", "de"),
        ("Meu pedido ainda não chegou", "pt"),
    ],
)
def test_clear_posts_get_their_language(text, language):
    assert detect_language(text) == language


def test_handles_links_and_hashtag_markers_do_not_sway_the_language():
    post = "@AmazonHelp #fail il pacco risulta consegnato ma non c'è https://t.co/x1Yz"
    assert detect_language(post) == "it"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😡😡😡", "👍", "ok", "grazie", "!!!", "@TimInfo https://t.co/abc", "iPhone XR"],
)
def test_emoji_only_single_words_and_ambiguous_scraps_have_no_language(text):
    assert detect_language(text) == ""


# --- Italian sentiment: words, negation, emphasis


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Servizio clienti gentilissimo, problema risolto subito", Sentiment.POSITIVE),
        ("Ottimo prodotto, lo consiglio", Sentiment.POSITIVE),
        ("Pessima esperienza, che delusione", Sentiment.NEGATIVE),
        ("App lenta e piena di errori", Sentiment.NEGATIVE),
        ("Quando riaprite il negozio di via Roma?", Sentiment.NEUTRAL),
        ("Vorrei sapere gli orari del punto vendita", Sentiment.NEUTRAL),
    ],
)
def test_italian_posts_read_as_a_person_would(text, expected):
    assert it(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Non è male", Sentiment.POSITIVE),
        ("Non è per niente male", Sentiment.POSITIVE),
        ("Non funziona", Sentiment.NEGATIVE),
        ("La fibra non funziona più da lunedì", Sentiment.NEGATIVE),
        ("Non va bene", Sentiment.NEGATIVE),
        ("Non lo consiglio a nessuno", Sentiment.NEGATIVE),
        ("Non mi hanno mai risposto", Sentiment.NEGATIVE),
        ("Il pacco non è mai arrivato", Sentiment.NEGATIVE),
        ("Nessun problema con la consegna", Sentiment.POSITIVE),
        ("Mai avuto problemi con voi", Sentiment.POSITIVE),
        ("Senza problemi, tutto come previsto", Sentiment.POSITIVE),
        ("Operatori poco gentili", Sentiment.NEGATIVE),
    ],
)
def test_negation_turns_the_meaning_around(text, expected):
    assert it(text) == expected


def test_male_on_its_own_is_negative():
    assert it("Mi hanno trattato male") == Sentiment.NEGATIVE


def test_negation_stops_at_the_end_of_the_clause():
    # "non" belongs to the first clause; "pessimo" is not negated by it.
    assert it("Non ho ricevuto nulla. Servizio pessimo") == Sentiment.NEGATIVE
    assert it_score("Non ho capito, servizio pessimo") == it_score("Servizio pessimo")


def test_boosters_strengthen_and_dampeners_soften():
    assert it_score("molto lento") < it_score("lento") < it_score("un po' lento") < 0
    assert it_score("davvero gentili") > it_score("gentili") > it_score("abbastanza gentili") > 0


def test_shouting_and_exclamation_marks_strengthen():
    assert it_score("Servizio PESSIMO") < it_score("Servizio pessimo")
    assert it_score("Servizio pessimo!!!") < it_score("Servizio pessimo")
    assert it_score("Grazie!!") > it_score("Grazie")


def test_the_clause_after_ma_or_pero_weighs_more():
    assert it("Prodotto ottimo ma la consegna è stata lentissima") == Sentiment.NEGATIVE
    assert it("La consegna è stata lenta, però il prodotto è ottimo") == Sentiment.POSITIVE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mai più con voi", Sentiment.NEGATIVE),
        ("Questa app fa schifo", Sentiment.NEGATIVE),
        ("Servizio clienti inesistente", Sentiment.NEGATIVE),
        ("Ci prendete in giro da un mese", Sentiment.NEGATIVE),
        ("Grazie per niente", Sentiment.NEGATIVE),
        ("Non vedo l'ora che arrivi!", Sentiment.POSITIVE),
        ("Il tecnico è passato, ora è tutto a posto", Sentiment.POSITIVE),
        ("Niente da dire, servizio impeccabile", Sentiment.POSITIVE),
    ],
)
def test_multiword_expressions_count_as_one(text, expected):
    assert it(text) == expected


def test_spelling_variants_are_recognised():
    # Accents, capitals and elongated words are how people write on social media.
    assert it_score("Mai piu") == it_score("Mai più")
    assert it("BRAVISSIMIIII") == Sentiment.POSITIVE
    assert it("perchè è così lento?") == Sentiment.NEGATIVE


def test_polite_formulas_do_not_colour_a_request():
    assert it("Buona giornata, cordiali saluti") == Sentiment.NEUTRAL
    assert it("Potete aiutarmi per favore?") == Sentiment.NEUTRAL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("😡😡😡", Sentiment.NEGATIVE),
        ("👎", Sentiment.NEGATIVE),
        ("😍😍", Sentiment.POSITIVE),
        ("👍", Sentiment.POSITIVE),
        ("❤️", Sentiment.POSITIVE),
        (":(", Sentiment.NEGATIVE),
    ],
)
def test_emoji_only_posts_have_a_sentiment_without_a_language(text, expected):
    language = detect_language(text)
    assert language == ""
    assert sentiment(text, language) == expected


def test_emoji_add_to_the_words():
    assert it_score("Consegna in ritardo 😡") < it_score("Consegna in ritardo")
    assert it("Arrivato tutto 😍") == Sentiment.POSITIVE


def test_scores_stay_between_minus_one_and_one():
    worst = "PESSIMO!!! Vergogna, truffatori, ladri, servizio di merda, mai più 😡😡😡🤬"
    best = "FANTASTICI!!! Bravissimi, gentilissimi, velocissimi, consigliatissimi 😍😍❤️"
    assert -1.0 <= it_score(worst) < -0.95
    assert 0.95 < it_score(best) <= 1.0
    assert it_score("") == 0.0


# --- English and other languages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks, great service!", Sentiment.POSITIVE),
        ("Worst customer service ever", Sentiment.NEGATIVE),
        ("The app is not bad at all", Sentiment.POSITIVE),
        ("What time does the store open?", Sentiment.NEUTRAL),
    ],
)
def test_english_is_scored_by_vader(text, expected):
    assert sentiment(text, "en") == expected


def test_english_gets_the_emoji_vader_leaves_unscored():
    # vader alone scores this 0: it reads 😡 as the words "pouting face".
    assert sentiment("Still waiting for my refund 😡", "en") == Sentiment.NEGATIVE
    assert sentiment("Fixed in five minutes 👍", "en") == Sentiment.POSITIVE


def test_undetected_or_other_languages_use_the_italian_lexicon_when_it_recognises_words():
    assert sentiment("grazie mille", "") == Sentiment.POSITIVE
    assert sentiment("che schifo", "de") == Sentiment.NEGATIVE


def test_undetected_or_other_languages_fall_back_to_vader():
    assert sentiment("awesome", "") == Sentiment.POSITIVE
    assert sentiment("terrible", "fr") == Sentiment.NEGATIVE
    assert sentiment("ciao", "") == Sentiment.NEUTRAL


def test_sentiment_speaks_the_choices_vocabulary():
    labels = {sentiment(text, "it") for text in ("ottimo", "pessimo", "ciao a tutti")}
    assert labels == {"positive", "negative", "neutral"}
    assert labels == set(Sentiment.values)


# --- Priority signals


def signals(text: str, sentiment: str = Sentiment.NEUTRAL) -> frozenset[str]:
    return priority_signals(text, language=detect_language(text), sentiment=sentiment)


@pytest.mark.parametrize(
    "text",
    [
        "I want my money back",
        "Please REFUND me, the item was broken",
        "I'll file a chargeback with my bank",
        "Cancel my order now",
        "My lawyer will hear about this",
        "Voglio il rimborso",
        "Rimborsatemi subito",
        "Ridatemi i miei soldi",
        "Rivoglio i soldi indietro",
        "Ho mandato la disdetta a marzo",
        "Eserciterò il diritto di recesso",
        "Ho fatto reclamo",
        "Mi rivolgo a un avvocato",
        "Ho chiesto di annullare l'ordine",
    ],
)
def test_refund_and_legal_threats_are_flagged(text):
    assert "refund" in signals(text)


@pytest.mark.parametrize(
    "text",
    [
        "Still waiting for an answer",
        "No response to my emails",
        "I ordered 3 weeks ago",
        "Been on hold for an hour",
        "Sono ancora in attesa",
        "Nessuna risposta alle mie email",
        "Il modem non va da giorni",
        "Sto aspettando il tecnico",
        "Ho ordinato dieci giorni fa",
        "Vi ho scritto 2 settimane fa",
        "Non rispondete mai",
    ],
)
def test_waiting_is_flagged(text):
    assert "waiting" in signals(text)


def test_signals_match_both_languages_whatever_the_detected_one():
    post = "Hello, where is my rimborso? Sto aspettando"
    assert signals(post) == {"refund", "waiting"}
    assert priority_signals(post, language="de", sentiment="neutral") == {"refund", "waiting"}


def test_negative_comes_from_the_sentiment():
    assert signals("Servizio pessimo", sentiment=Sentiment.NEGATIVE) == {"negative"}
    assert signals("Servizio pessimo", sentiment=Sentiment.NEUTRAL) == frozenset()


def test_ordinary_posts_raise_no_signal():
    assert signals("Grazie, tutto perfetto!", sentiment=Sentiment.POSITIVE) == frozenset()
    # Days and weeks count only as a wait: "every day" is not one.
    assert signals("Uso la vostra app tutti i giorni") == frozenset()
    assert signals("I use your app every day") == frozenset()


def test_all_three_signals_together():
    post = "Da 3 settimane aspetto il rimborso, nessuna risposta. Vergogna!"
    language = detect_language(post)
    assert language == "it"
    found = priority_signals(post, language=language, sentiment=sentiment(post, language))
    assert found == {"negative", "refund", "waiting"}


# --- The lexicon files


@pytest.mark.parametrize("name", ["it.tsv", "emoji.tsv", "signals.tsv"])
def test_lexicon_files_are_well_formed(name):
    rows = list(analysis._read_tsv(name))
    assert rows
    for row in rows:
        if name == "signals.tsv":
            assert row[0] in {"refund", "waiting"}, row
            term = row[1]
        else:
            assert 2 <= len(row) <= 3, row
            assert all(-4 <= float(score) <= 4 for score in row[1:]), row
            term = row[0]
        if name != "emoji.tsv":
            assert term == term.lower(), f"{term!r}: write terms in lowercase"
            assert term.isascii(), f"{term!r}: write terms without accents"


def test_the_italian_lexicon_has_a_few_hundred_terms():
    rows = list(analysis._read_tsv("it.tsv"))
    assert len(rows) >= 300
    assert len({row[0] for row in rows}) == len(rows), "a term is listed twice"
