"""Load the demo: Caffè Aurora, an Italian espresso-machine maker, and what people say about it.

    python manage.py demo                      # the hand-written data set; safe to run again
    python manage.py demo --password s3cret    # the same, with a password you choose
    python manage.py demo --conversations 100000   # plus 100,000 synthetic conversations
    python manage.py demo --conversations 1000000 --days 365 --tickets 20000 --links 200000
                                               # the benchmarks' data set (bench/run.py)

The hand-written part (43 conversations in Italian and English on seven channels, six
feedback tickets, four users) is played through the services, as people would: each conversation is
ingested, assigned, answered and moved on one step at a time, so every stage is reached
legitimately and the history is real. It is idempotent: conversations have stable
external ids, and one that already exists is left alone.

The synthetic part is written in bulk (COPY on PostgreSQL, executemany on SQLite,
bulk_create elsewhere), in batches, each batch one transaction, so memory stays bounded
and a million conversations take minutes. Its rows satisfy the cycle's rules as if the services had written them: every
row past listen has an assignee and the events of its steps, every row past interact has
an outbound reply in cycle 1, every row in sell has a "no product change needed" reaction.
Synthetic tickets come with their created and (shipped or declined) status Events; evidence
links go to stored conversations, sell and react first, with their "linked" Events.
"""

import json
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, batched

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from engage.choices import (
    CLOSED_TICKET_STATUSES,
    Direction,
    EventKind,
    Priority,
    Role,
    Sentiment,
    SourceKind,
    Stage,
    State,
    TicketStatus,
)
from engage.models import (
    Contact,
    Conversation,
    Event,
    FeedbackLink,
    FeedbackTicket,
    Message,
    Source,
    Tag,
)
from engage.services import conversations as services
from engage.services import feedback as feedback_services
from engage.services.conversations import Author, Item
from engage.services.ingest import content_hash
from engage.services.targets import first_response_due, response_targets

User = get_user_model()

ORDER = (Stage.LISTEN, Stage.INTERACT, Stage.REACT, Stage.SELL)

# username → (first name, last name, role, superuser)
USERS = {
    "admin": ("Ada", "Amministratrice", None, True),
    "manager": ("Marta", "Ferri", Role.COMMUNITY_MANAGER, False),
    "giulia": ("Giulia", "Esposito", Role.COMMUNITY_MANAGER, False),
    "product": ("Luca", "Bianchi", Role.PRODUCT_TEAM, False),
}
COMMUNITY_MANAGERS = ("manager", "giulia")

KEYWORDS = "caffè aurora, caffe aurora, aurora mini, aurora duo, aurora m1, aurora connect"

# key → (name, channel, kind, feed URL)
SOURCES = {
    "twitter": ("Twitter @CaffeAurora", "twitter", SourceKind.API, ""),
    "facebook": ("Facebook · Caffè Aurora", "facebook", SourceKind.API, ""),
    "instagram": ("Instagram @caffe.aurora", "instagram", SourceKind.API, ""),
    "blog": (
        "Blog «Il chicco perfetto»",
        "blog",
        SourceKind.FEED,
        "https://ilchiccoperfetto.example/feed/",
    ),
    "forum": (
        "Forum Espresso Italia",
        "forum",
        SourceKind.FEED,
        "https://forum.espressoitalia.example/c/aurora.rss",
    ),
    "review": ("Recensioni negozio online", "review", SourceKind.FILE, ""),
    "email": ("assistenza@caffeaurora.example", "email", SourceKind.API, ""),
}

# key → (title, problem, product area, final status)
TICKETS = {
    "descale": (
        "Promemoria decalcificazione nell'app Aurora Connect",
        "Chi ha acqua dura non sa quando decalcificare: la pressione cala, la pompa si "
        "rovina e arrivano in assistenza. Chiedono un promemoria basato sui caffè fatti.",
        "App Aurora Connect",
        TicketStatus.SHIPPED,
    ),
    "steam": (
        "Steam wand loses pressure on the Aurora Duo",
        "After 6–12 months the Duo's steam wand gets weak and milk no longer stretches.",
        "Aurora Duo",
        TicketStatus.IN_PROGRESS,
    ),
    "cups": (
        "Tazze alte non entrano sotto l'erogatore della Mini",
        "Con 8 cm di spazio le tazze da cappuccino e le mug non entrano.",
        "Aurora Mini",
        TicketStatus.PLANNED,
    ),
    "english": (
        "English manual and app for UK and US customers",
        "The English manual is a rough translation and the app ignores the phone's language.",
        "Documentation",
        TicketStatus.TRIAGED,
    ),
    "pods": (
        "Adattatore per capsule compostabili",
        "Alcuni clienti vorrebbero usare capsule compostabili con un adattatore.",
        "Accessori",
        TicketStatus.DECLINED,
    ),
    "tracking": (
        "Tracking della spedizione nelle email d'ordine",
        "Le email di conferma non hanno il numero di tracking; i clienti scrivono per chiederlo.",
        "Negozio online",
        TicketStatus.NEW,
    ),
}

STATUS_PATHS = {
    TicketStatus.NEW: (),
    TicketStatus.TRIAGED: (TicketStatus.TRIAGED,),
    TicketStatus.PLANNED: (TicketStatus.TRIAGED, TicketStatus.PLANNED),
    TicketStatus.IN_PROGRESS: (
        TicketStatus.TRIAGED,
        TicketStatus.PLANNED,
        TicketStatus.IN_PROGRESS,
    ),
    TicketStatus.SHIPPED: (
        TicketStatus.TRIAGED,
        TicketStatus.PLANNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.SHIPPED,
    ),
    TicketStatus.DECLINED: (TicketStatus.TRIAGED, TicketStatus.DECLINED),
}

# The reply that tells a person their request shipped (the "closing the loop" example).
TOLD_REPLY = (
    "Buone notizie: con l'aggiornamento 2.4 di Aurora Connect l'app ti avvisa quando è ora "
    "di decalcificare, in base ai caffè che fai. Grazie per avercelo chiesto!"
)


@dataclass(frozen=True)
class Post:
    """One hand-written conversation and how far the community managers took it."""

    key: str
    source: str
    handle: str
    name: str
    lang: str
    sentiment: str
    priority: str
    hours_ago: float
    text: str
    stage: Stage = Stage.LISTEN
    who: str | None = None
    reply: str = ""
    reply_after_minutes: int = 40
    link: tuple[str, str] | None = None  # (ticket key, quote)
    no_change: str = ""
    notes: tuple[str, ...] = ()
    restart: str = ""
    then: Stage = Stage.LISTEN  # the stage reached in cycle 2 after a restart
    then_reply: str = ""
    state: str = State.OPEN
    told: bool = False  # tell the person after the linked ticket ships
    tags: tuple[str, ...] = ()


LISTEN, INTERACT, REACT, SELL = Stage.LISTEN, Stage.INTERACT, Stage.REACT, Stage.SELL
POS, NEU, NEG = Sentiment.POSITIVE, Sentiment.NEUTRAL, Sentiment.NEGATIVE

# A table of data: one Post per conversation, kept compact on purpose.
# fmt: off
POSTS = (
    # Listen: just arrived, nobody on them yet (some already overdue).
    Post("tw-rumore-mini", "twitter", "marco_b83", "Marco Bellini", "it", NEG, "high", 3,
         "@CaffeAurora la mia Aurora Mini da stamattina fa un rumore fortissimo e il caffè "
         "esce a gocce. Qualcuno può aiutarmi? 😩", tags=("assistenza",)),
    Post("ig-primo-cappuccino", "instagram", "sofi.coffeelover", "Sofia", "it", POS, "low", 5,
         "Primo cappuccino con la nuova Aurora Duo ☕️❤️ la schiuma è perfetta! #caffeaurora",
         tags=("elogio",)),
    Post("forum-m1-light-roast", "forum", "barista_tom", "Tom", "en", NEU, "normal", 20,
         "Anyone tried the Aurora M1 grinder with light roasts? Wondering whether the burrs "
         "go fine enough for espresso.", tags=("macinino",)),
    Post("review-serbatoio", "review", "giovanna.r", "Giovanna R.", "it", NEG, "normal", 30,
         "Macchina bella ma il serbatoio è scomodo da riempire, bisogna spostarla ogni volta. "
         "Tre stelle."),
    Post("fb-garanzia-amazon", "facebook", "andrea.colombo", "Andrea Colombo", "it", NEU,
         "normal", 2,
         "Ciao, la garanzia vale anche se ho comprato la macchina su Amazon e non sul vostro "
         "sito?", tags=("garanzia",)),
    Post("tw-breaker", "twitter", "jess_brews", "Jess", "en", NEG, "urgent", 50,
         "@CaffeAurora my Duo tripped the breaker twice this morning and now smells like "
         "burning plastic. Is it safe to use??", tags=("sicurezza", "assistenza")),
    Post("mail-vetro-rotto", "email", "paolo.martini@example.it", "Paolo Martini", "it", NEG,
         "high", 26,
         "Ordine 48213 arrivato con il vetro del serbatoio rotto. Come procedo per la "
         "sostituzione?", tags=("spedizione",)),
    Post("blog-sei-mesi", "blog", "ilchiccoperfetto", "Il chicco perfetto", "it", POS, "low", 70,
         "Recensione: Aurora Mini dopo sei mesi. Costruzione solida, pressione stabile, unico "
         "difetto la lancia vapore un po' lenta.", tags=("recensione",)),
    Post("ig-london", "instagram", "londonlatte", "London Latte", "en", POS, "low", 8,
         "Finally got my Aurora Mini shipped to London 🇬🇧 looks gorgeous on the counter",
         tags=("elogio",)),
    Post("forum-preinfusione", "forum", "ale_espresso", "Alessandro", "it", NEU, "normal", 12,
         "Qualcuno sa se la Aurora Duo ha la pre-infusione regolabile? Nel manuale non la "
         "trovo."),
    Post("review-ireland", "review", "kevin.o", "Kevin O.", "en", NEG, "normal", 40,
         "Delivery took 12 days to Ireland and there was no tracking number in the order "
         "email. The machine itself is great.", tags=("spedizione",)),
    Post("tw-spam", "twitter", "vinci_subito", "Vinci Subito", "it", NEU, "low", 16,
         "@CaffeAurora seguici per vincere un iPhone gratis!!! 🎁🎁", who="giulia",
         notes=("Spam, chiuso.",), state=State.CLOSED),
    # Listen, claimed by someone but not answered yet.
    Post("fb-wifi-app", "facebook", "chiara.galli", "Chiara Galli", "it", NEG, "high", 6,
         "Da quando ho aggiornato l'app Aurora Connect non riesco più a collegare la macchina "
         "al wifi.", who="giulia", notes=("Chiesto ai dev se la 2.3.1 ha problemi col 5 GHz.",),
         tags=("app",)),
    Post("tw-110v", "twitter", "dan_makes_coffee", "Dan", "en", NEU, "normal", 9,
         "Is the Aurora Duo 110V version coming to the US this year?", who="manager"),
    # Interact: someone owns them and is talking with the person.
    Post("ig-guida-mamma", "instagram", "caffettiera_di_nonna", "Nonna Pina", "it", POS,
         "normal", 28,
         "Ho regalato una Aurora Mini a mia madre, la usa tutti i giorni. Avete una guida "
         "semplice da stampare?", stage=INTERACT, who="giulia",
         reply="Che bel regalo! Ti mandiamo in privato la guida rapida in PDF, a caratteri "
               "grandi. 😊"),
    Post("mail-m1-oleosi", "email", "f.deluca@example.it", "Francesca De Luca", "it", NEG,
         "high", 22, "Il macinino M1 si blocca con i chicchi molto oleosi. È normale?",
         stage=INTERACT, who="manager", tags=("macinino",)),
    Post("tw-drip-tray", "twitter", "emmawrites", "Emma", "en", NEG, "normal", 18,
         "@CaffeAurora third time the drip tray overflows onto my counter. Any tips or is "
         "mine faulty?", stage=INTERACT, who="giulia"),
    Post("forum-temperatura", "forum", "gigi_roma", "Gigi", "it", NEU, "normal", 35,
         "Consiglio: che temperatura usate per un espresso 100% arabica sulla Duo?",
         stage=INTERACT, who="manager",
         reply="Ciao Gigi, per un 100% arabica partiamo da 93 °C e aggiustiamo di un grado "
               "alla volta: raccontaci com'è venuto!", reply_after_minutes=90),
    Post("fb-perdita-acqua", "facebook", "roberta.sala", "Roberta Sala", "it", NEG, "urgent",
         4, "La macchina perde acqua da sotto! Ho staccato la corrente. Aiuto!",
         stage=INTERACT, who="manager",
         reply="Roberta, hai fatto benissimo a staccarla. Ti scriviamo in privato per "
               "organizzare il ritiro.", reply_after_minutes=12,
         notes=("Chieste foto: probabile guarnizione della caldaia.",), tags=("assistenza",)),
    Post("ig-collab", "instagram", "baristamilano", "Barista Milano", "it", POS, "normal", 14,
         "Collaborazione? Facciamo latte art per 40k follower, ci piacerebbe provare la Duo.",
         stage=INTERACT, who="giulia", notes=("Girato al marketing.",)),
    Post("tw-ricambi-de", "twitter", "kaffeeklaus", "Klaus", "en", NEU, "low", 30,
         "Do you ship Aurora spare parts to Germany? I need a new portafilter gasket.",
         stage=INTERACT, who="manager",
         reply="Hi Klaus, yes: spare parts ship to all of the EU. Here is the gasket: "
               "https://caffeaurora.example/ricambi/guarnizione", tags=("ricambi",)),
    # React: answered; what does the product learn from it?
    Post("forum-vapore-duo", "forum", "mauro_v", "Mauro", "it", NEG, "high", 120,
         "Dopo 6 mesi la lancia vapore della Duo ha perso pressione, il latte non monta più.",
         stage=REACT, who="manager",
         reply="Mauro, grazie: ti chiamiamo per un controllo gratuito e passiamo il caso ai "
               "tecnici.", link=("steam", "la lancia vapore della Duo ha perso pressione"),
         tags=("lancia vapore",)),
    Post("tw-steam-weaker", "twitter", "latteartlucy", "Lucy", "en", NEG, "normal", 96,
         "Steam wand on my Aurora Duo is getting weaker every week. Milk just won't stretch "
         "anymore.", stage=REACT, who="giulia",
         reply="Sorry Lucy! Could you DM us your serial number? We're looking into this.",
         link=("steam", "Steam wand … is getting weaker every week"), tags=("lancia vapore",)),
    Post("fb-vapore-anno", "facebook", "stefano.ricci", "Stefano Ricci", "it", NEG, "normal",
         80, "Anche la mia Duo: vapore debolissimo dopo un anno. È un difetto noto?",
         stage=REACT, who="manager",
         reply="Ciao Stefano, stiamo analizzando proprio questo: ti teniamo aggiornato.",
         link=("steam", "vapore debolissimo dopo un anno"), tags=("lancia vapore",)),
    Post("review-manual-en", "review", "tom.h", "Tom H.", "en", POS, "low", 60,
         "Solid machine, easy to clean. Would love a manual in proper English though, the "
         "translation is confusing in places.", stage=REACT, who="giulia",
         reply="Thanks Tom! Fair point on the manual: we've passed it on.",
         link=("english", "Would love a manual in proper English")),
    Post("mail-app-english", "email", "sarah.k@example.co.uk", "Sarah K.", "en", NEU,
         "normal", 100,
         "Is there an English version of the Aurora Connect app? My phone is set to English "
         "but the app shows Italian.", stage=REACT, who="giulia",
         reply="Hi Sarah, not yet, sorry: we've asked the app team.",
         link=("english", "the app shows Italian"), tags=("app",)),
    Post("tw-mug-mini", "twitter", "giorgio_tech", "Giorgio", "it", NEG, "normal", 110,
         "La Mini è compatta ma una mug non ci sta. Peccato, alzare di 2 cm l'erogatore "
         "sarebbe bastato.", stage=REACT, who="giulia",
         reply="Giorgio, hai ragione: lo abbiamo segnalato al prodotto.",
         link=("cups", "una mug non ci sta")),
    Post("forum-capsule", "forum", "capsulefree", "Capsule Free", "it", NEU, "low", 150,
         "Pensate di supportare capsule compostabili con un adattatore?",
         stage=REACT, who="manager",
         reply="Bella domanda: la giriamo al team prodotto e ti facciamo sapere.",
         link=("pods", "capsule compostabili con un adattatore")),
    Post("mail-tracking", "email", "ordini.vale@example.it", "Valentina", "it", NEG, "normal",
         100, "Ordine arrivato dopo 10 giorni e senza codice di tracking. Si può migliorare?",
         stage=REACT, who="manager", reply="Scusaci Valentina, hai ragione: lo segnaliamo.",
         link=("tracking", "senza codice di tracking"), tags=("spedizione",)),
    Post("ig-decalcifica-app", "instagram", "espressoathome_it", "Espresso at home", "it",
         NEU, "normal", 240,
         "Sarebbe top se l'app avvisasse quando serve la decalcificazione 🙏",
         stage=REACT, who="giulia", reply="Idea segnata! Ti aggiorniamo appena ci sono novità.",
         link=("descale", "se l'app avvisasse quando serve la decalcificazione"),
         tags=("calcare", "app")),
    # Sell: the cycle is complete; these people speak well of the brand.
    Post("forum-acqua-dura", "forum", "acqua_dura_bg", "Bergamasco", "it", NEG, "normal", 300,
         "Abito a Bergamo, acqua durissima: dopo 4 mesi la Mini è piena di calcare. Non c'è "
         "un modo di sapere quando decalcificare?", stage=SELL, who="manager",
         reply="Ciao! Con acqua così dura consigliamo ogni 6 settimane; stiamo lavorando a un "
               "promemoria nell'app.", reply_after_minutes=50,
         link=("descale", "Non c'è un modo di sapere quando decalcificare?"), told=True,
         tags=("calcare",)),
    Post("tw-descale-reminder", "twitter", "ben_coffeenerd", "Ben", "en", NEU, "normal", 280,
         "Feature request for the Aurora Connect app: remind me when it's time to descale. "
         "I always forget.", stage=SELL, who="giulia",
         reply="Great idea Ben, it's with the app team!",
         link=("descale", "remind me when it's time to descale"), tags=("calcare", "app")),
    Post("fb-pompa-calcare", "facebook", "lucia.marino", "Lucia Marino", "it", NEG, "high", 260,
         "Il tecnico dice che la pompa si è rovinata per il calcare. Nessuno mi aveva detto "
         "ogni quanto decalcificare!", stage=SELL, who="manager",
         reply="Lucia, ci dispiace: la riparazione è in garanzia e ti mandiamo il kit "
               "anticalcare.", link=("descale", "Nessuno mi aveva detto ogni quanto decalcificare"),
         notes=("Riparazione in garanzia approvata da @product.",), tags=("calcare",)),
    Post("ig-mug-cappuccino", "instagram", "mamma_espresso", "Mamma Espresso", "it", NEG,
         "normal", 130,
         "Le mie tazze da cappuccino non entrano sotto l'erogatore della Mini, devo usare le "
         "tazzine 😕", stage=SELL, who="manager",
         reply="Ti capiamo! Intanto il vassoio si toglie e guadagni 2 cm.",
         link=("cups", "tazze da cappuccino non entrano sotto l'erogatore")),
    Post("fb-vetro-grazie", "facebook", "irene.costa", "Irene Costa", "it", POS, "high", 90,
         "Vetro del serbatoio arrivato crepato, ma l'assistenza me l'ha già sostituito in 2 "
         "giorni. Grazie!", stage=SELL, who="giulia", reply="Grazie a te Irene, buon caffè! ☕",
         no_change="Danno da trasporto gestito dall'assistenza: nessuna modifica al prodotto.",
         tags=("spedizione", "elogio")),
    Post("review-consiglio", "review", "martina.p", "Martina P.", "it", POS, "low", 200,
         "Ottima macchina, assistenza velocissima. La consiglio a tutti.", stage=SELL,
         who="manager", reply="Grazie Martina, ci fa davvero piacere!",
         no_change="Elogio: ringraziata pubblicamente.", tags=("elogio",)),
    Post("ig-six-months", "instagram", "coffee_with_anna", "Anna", "en", POS, "low", 190,
         "Six months with my Aurora Mini and it still pulls shots like day one ❤️", stage=SELL,
         who="giulia", reply="Love to hear it Anna! Mind if we share your photo?",
         no_change="Praise, nothing to change.", tags=("elogio",)),
    Post("tw-assistenza-domenica", "twitter", "federico_m", "Federico", "it", POS, "normal",
         170, "Assistenza @CaffeAurora top: risposto in 20 minuti di domenica.", stage=SELL,
         who="manager", reply="Grazie Federico! 💪", reply_after_minutes=15,
         no_change="Elogio dell'assistenza.", state=State.CLOSED, tags=("elogio",)),
    Post("blog-espresso-diaries", "blog", "espressodiaries", "Espresso Diaries", "en", POS,
         "low", 220, "Review: the Aurora Duo is the best dual boiler under €1000.", stage=SELL,
         who="giulia", reply="Thank you for the thorough review!",
         no_change="A review: nothing to change.",
         notes=("Chiedere il permesso di citare la recensione sul sito.",),
         tags=("recensione",)),
    # Restarted: the feedback turned negative again, so a new cycle began in listen.
    Post("tw-errore-e3", "twitter", "paolaverdi", "Paola Verdi", "it", NEG, "high", 180,
         "Seconda volta che la Mini si blocca con errore E3. Mi avevate detto che era "
         "risolto.", stage=SELL, who="manager",
         reply="Paola, proviamo il reset firmware: ti mandiamo le istruzioni in privato.",
         no_change="Risolto con un reset del firmware.",
         restart="L'errore E3 si è ripresentato dopo il reset: nuovo ciclo.", then=INTERACT,
         then_reply="Paola, questa volta sostituiamo la scheda: il corriere passa domani.",
         tags=("assistenza",)),
    Post("fb-sostituita-perde", "facebook", "giuseppe.longo", "Giuseppe Longo", "it", NEG,
         "normal", 160, "La macchina sostituita ha lo stesso problema di perdita d'acqua.",
         stage=INTERACT, who="giulia", reply="Giuseppe, ci dispiace molto: verifichiamo subito.",
         restart="Il cliente è ancora insoddisfatto dopo la sostituzione: riascoltare.",
         tags=("assistenza",)),
    Post("mail-wrong-burrs", "email", "nick.b@example.com", "Nick B.", "en", NEG, "normal",
         140, "The replacement grinder burrs you sent are the wrong size.",
         stage=REACT, who="manager", reply="Sorry Nick, we'll send the right ones today.",
         restart="Wrong part shipped: a new need, start again.",
         notes=("Magazzino: codice M1-BURR-58 al posto di M1-BURR-64.",),
         tags=("ricambi", "macinino")),
    # Snoozed until a later date.
    Post("mail-festival", "email", "events@londoncoffeefestival.example", "LCF Events", "en",
         NEU, "low", 48,
         "We'd like to feature Aurora at the London Coffee Festival in April. Could we talk "
         "in March?", stage=INTERACT, who="giulia",
         reply="Hello! We'd love to: let's talk in March.", state=State.SNOOZED),
)
# fmt: on


class Command(BaseCommand):
    help = (
        "Load the Caffè Aurora demo (users manager, giulia, product, admin). Idempotent: "
        "running it again adds nothing. Each run sets and prints fresh random passwords for "
        "the demo users, unless --password gives one for all of them. --conversations N also "
        "adds N synthetic conversations in bulk (COPY on PostgreSQL), ~2,000 a second."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            help="Use this password for every demo user instead of fresh random ones.",
        )
        parser.add_argument(
            "--conversations",
            type=int,
            default=0,
            metavar="N",
            help="Also add N synthetic conversations (with contacts, messages and events).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Synthetic conversations per transaction (default 5000).",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=90,
            help="Spread the synthetic conversations over this many days up to now (default 90).",
        )
        parser.add_argument(
            "--tickets",
            type=int,
            default=0,
            metavar="T",
            help="Also add T synthetic feedback tickets (after the conversations).",
        )
        parser.add_argument(
            "--links",
            type=int,
            default=0,
            metavar="L",
            help="Also link L stored conversations to the synthetic tickets as evidence.",
        )
        parser.add_argument("--seed", type=int, help="Random seed for the synthetic rows.")

    def handle(self, *args, **options):
        if min(options["conversations"], options["tickets"], options["links"]) < 0:
            raise CommandError("--conversations, --tickets and --links must be ≥ 0.")
        if options["batch_size"] < 1 or options["days"] < 1:
            raise CommandError("--batch-size and --days must be ≥ 1.")
        if options["links"] and not options["tickets"]:
            raise CommandError("--links needs --tickets: evidence is linked to tickets.")
        started = time.monotonic()
        with transaction.atomic():
            users = self.users()
            sources = self.sources()
            created = DemoLoader(users).load()
        self.stdout.write(
            f"Demo data: {created} new conversation(s) in {time.monotonic() - started:.1f}s."
        )
        if options["conversations"]:
            SyntheticLoader(
                users,
                list(sources.values()),
                seed=options["seed"],
                batch_size=options["batch_size"],
                days=options["days"],
                stdout=self.stdout,
            ).load(options["conversations"])
        if options["tickets"]:
            SyntheticTickets(
                users, seed=options["seed"], days=options["days"], stdout=self.stdout
            ).load(options["tickets"], options["links"])
        self.summary()
        self.logins(users, options["password"])

    def users(self) -> dict:
        users = {}
        for username, (first, last, role, superuser) in USERS.items():
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@caffeaurora.example",
                    "is_staff": superuser,
                    "is_superuser": superuser,
                },
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            if role:
                user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def sources(self) -> dict[str, Source]:
        sources = {}
        for key, (name, channel, kind, url) in SOURCES.items():
            # The demo's feeds live at example addresses: they are paused, so that a
            # running scheduler does not record failures for them.
            sources[key], _created = Source.objects.get_or_create(
                name=name,
                defaults={
                    "channel": channel,
                    "kind": kind,
                    "url": url,
                    "keywords": KEYWORDS,
                    "is_active": kind != SourceKind.FEED,
                },
            )
        return sources

    def summary(self) -> None:
        stages = dict(Conversation.objects.order_by().values_list("stage").annotate(n=Count("id")))
        parts = ", ".join(f"{stage} {stages.get(stage, 0):,}" for stage in Stage.values)
        self.stdout.write(
            f"In the database: {sum(stages.values()):,} conversations ({parts}), "
            f"{FeedbackTicket.objects.count()} feedback tickets."
        )

    def logins(self, users: dict, password: str | None) -> None:
        self.stdout.write("")
        self.stdout.write("Logins (passwords are set again on every run):")
        for username, user in users.items():
            secret = password or secrets.token_urlsafe(9)
            user.set_password(secret)
            user.save(update_fields=["password"])
            first, last, role, superuser = USERS[username]
            what = "superuser, /admin/" if superuser else str(Role(role).label).lower()
            self.stdout.write(f"  {username:<8} {secret:<16} {first} {last} ({what})")
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                "Open http://127.0.0.1:8000/ and log in as manager (community manager) or "
                "product (product team); the admin is at http://127.0.0.1:8000/admin/."
            )
        )


class DemoLoader:
    """Plays the hand-written posts through the services, as the team would have."""

    def __init__(self, users: dict):
        self.users = users
        self.now = timezone.now()
        self.tickets: dict[str, FeedbackTicket] = {}
        self.new_tickets: set[str] = set()
        self.new_posts: dict[str, Conversation] = {}
        self.tags: dict[str, Tag] = {}

    def load(self) -> int:
        for post in POSTS:
            conversation, created = services.create_conversation(self.item(post))
            if not created:
                continue
            self.new_posts[post.key] = conversation
            self.enrich(conversation, post)
            self.play(conversation, post)
        self.move_tickets()
        self.tell()
        return len(self.new_posts)

    def item(self, post: Post) -> Item:
        name, channel, _kind, _url = SOURCES[post.source]
        return Item(
            source=name,
            external_id=f"demo-{post.key}",
            channel=channel,
            author=Author(handle=post.handle, name=post.name),
            text=post.text,
            url=_post_url(channel, post.handle, post.key),
            created_at=self.now - timedelta(hours=post.hours_ago),
            priority=post.priority,
        )

    def enrich(self, conversation: Conversation, post: Post) -> None:
        # The demo's language and sentiment are curated (the story needs them as they
        # are), so its messages count as enriched and the enrichment job leaves them be;
        # tags are labels with no history of their own.
        Conversation.objects.filter(pk=conversation.pk).update(
            language=post.lang, sentiment=post.sentiment
        )
        Message.objects.filter(conversation=conversation).update(
            language=post.lang, sentiment=post.sentiment, enriched_at=self.now
        )
        for name in post.tags:
            if name not in self.tags:
                self.tags[name], _created = Tag.objects.get_or_create(name=name)
        if post.tags:
            conversation.tags.add(*(self.tags[name] for name in post.tags))

    def play(self, conversation: Conversation, post: Post) -> None:
        pk, target = conversation.pk, ORDER.index(post.stage)
        worker = self.users[post.who] if post.who else None
        if worker is not None:
            services.assign(pk, worker, actor=worker)
        if target >= 1:
            services.advance(pk, actor=worker)
        if post.reply:
            self.reply(conversation, post.reply, worker, after=post.reply_after_minutes)
        if target >= 2:
            services.advance(pk, actor=worker)
        if post.link:
            self.link(conversation, *post.link, actor=worker)
        if post.no_change:
            services.record_no_change(pk, actor=worker, reason=post.no_change)
        if target >= 3:
            services.advance(pk, actor=worker)
        for text in post.notes:
            services.add_note(pk, actor=worker, text=text)
        if post.restart:
            services.restart(pk, actor=worker, reason=post.restart)
            if ORDER.index(post.then) >= 1:
                services.advance(pk, actor=worker)
            if post.then_reply:
                services.log_reply(pk, actor=worker, text=post.then_reply)
        if post.state == State.SNOOZED:
            services.set_state(
                pk, State.SNOOZED, actor=worker, snoozed_until=self.now + timedelta(days=10)
            )
        elif post.state != State.OPEN:
            services.set_state(pk, post.state, actor=worker)

    def reply(self, conversation: Conversation, text: str, worker, *, after: int) -> None:
        sent_at = min(
            conversation.received_at + timedelta(minutes=after), self.now - timedelta(minutes=1)
        )
        services.log_reply(conversation.pk, actor=worker, text=text, sent_at=sent_at)

    def link(self, conversation: Conversation, key: str, quote: str, *, actor) -> None:
        ticket = (
            self.tickets.get(key) or FeedbackTicket.objects.filter(title=TICKETS[key][0]).first()
        )
        if ticket is None:
            title, problem, area, _status = TICKETS[key]
            ticket = feedback_services.create_ticket(
                actor=actor,
                title=title,
                problem=problem,
                product_area=area,
                conversation_id=conversation.pk,
                quote=quote,
            )
            product = self.users["product"]
            feedback_services.update_ticket(ticket.pk, actor=product, owner=product)
            self.new_tickets.add(key)
        else:
            feedback_services.link_evidence(ticket.pk, conversation.pk, actor=actor, quote=quote)
        self.tickets[key] = ticket

    def move_tickets(self) -> None:
        """Walk each new ticket to its status; shipping and declining flag follow-ups."""
        product = self.users["product"]
        for key in sorted(self.new_tickets):
            for status in STATUS_PATHS[TICKETS[key][3]]:
                feedback_services.change_ticket_status(self.tickets[key].pk, status, actor=product)

    def tell(self) -> None:
        """Close the loop for one person: the reply that tells them clears the follow-up."""
        for post in POSTS:
            conversation = self.new_posts.get(post.key)
            if post.told and conversation is not None and post.link[0] in self.new_tickets:
                services.log_reply(conversation.pk, actor=self.users[post.who], text=TOLD_REPLY)


POST_URLS = {
    "twitter": "https://x.com/{handle}/status/{key}",
    "facebook": "https://facebook.com/caffeaurora/posts/{key}",
    "instagram": "https://instagram.com/p/{key}",
    "blog": "https://blogs.example/{handle}/{key}",
    "forum": "https://forum.espressoitalia.example/t/{key}",
    "review": "https://caffeaurora.example/recensioni/{key}",
}


def _post_url(channel: str, handle: str, key: str) -> str:
    template = POST_URLS.get(channel)
    return template.format(handle=handle, key=key) if template else ""


# Synthetic conversations.

# fmt: off
FIRST_NAMES = {
    "it": ("Luca", "Giulia", "Marco", "Francesca", "Alessandro", "Chiara", "Matteo", "Sara",
           "Davide", "Elena", "Simone", "Valentina", "Paolo", "Anna", "Federico", "Laura"),
    "en": ("James", "Emma", "Oliver", "Sophie", "Harry", "Grace", "Jack", "Chloe", "Liam",
           "Mia", "Noah", "Ella", "Ethan", "Ava", "Ryan", "Lily"),
}
LAST_NAMES = {
    "it": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
           "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Costa", "Giordano"),
    "en": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Walker",
           "Wright", "Clarke", "Hall", "Green", "Wood", "Hughes", "Murphy", "Kelly"),
}
# fmt: on
# The machines people write about; Italian parts are all masculine so the templates agree.
PRODUCTS = ("Aurora Mini", "Aurora Duo")
PARTS = {
    "it": ("il serbatoio", "il portafiltro", "il display", "il vassoio", "il manometro"),
    "en": ("the steam wand", "the pump", "the water tank", "the gasket", "the display"),
}
# (sentiment, template)
# fmt: off
TEMPLATES = {
    "it": (
        (NEG, "La mia {product} ha smesso di funzionare dopo {n} settimane e {part} fa un "
              "rumore strano. Come posso fare?"),
        (NEG, "Ordine arrivato dopo {n} giorni con {part} danneggiato. Che delusione."),
        (NEG, "Secondo guasto in {n} mesi sulla mia {product}. Per quel prezzo non è "
              "accettabile."),
        (NEU, "Qualcuno sa ogni quanto va decalcificata l'{product}? Qui l'acqua è dura."),
        (NEU, "Con l'{product} si può usare il caffè già macinato? Grazie"),
        (NEU, "Dove trovo un ricambio per {part} della mia {product}?"),
        (POS, "Colazione perfetta con la mia {product} ☕ dopo {n} mesi è ancora come nuova!"),
        (POS, "Assistenza Caffè Aurora gentilissima: {part} sostituito in {n} giorni."),
        (POS, "Consiglio l'{product} a tutti: espresso da bar a casa ❤️"),
        (NEU, "Sarebbe bello se l'{product} avesse un timer per l'accensione automatica."),
    ),
    "en": (
        (NEG, "My {product} stopped working after {n} weeks and {part} makes a weird noise. "
              "What can I do?"),
        (NEG, "Order took {n} days to arrive and {part} was damaged. Not impressed."),
        (NEG, "Second fault in {n} months on my {product}. Not OK at this price."),
        (NEU, "How often should I descale the {product}? Hard water here."),
        (NEU, "Does the {product} work with pre-ground coffee? Thanks"),
        (NEU, "Where can I buy a spare for {part} of the {product}?"),
        (POS, "Perfect breakfast with my {product} ☕ still like new after {n} months!"),
        (POS, "Caffè Aurora support is great: {part} replaced in {n} days."),
        (POS, "Recommend the {product} to everyone: café espresso at home ❤️"),
        (NEU, "Would love an auto-on timer on the {product}."),
    ),
}
# fmt: on
REPLIES = {
    "it": (
        "Ciao {name}, ci dispiace! Ti scriviamo in privato per risolvere.",
        "Grazie {name}! Ti mandiamo subito le istruzioni.",
        "Ciao {name}, ottima domanda: la risposta è nella guida che ti abbiamo inviato.",
        "Grazie mille {name}, ci fa piacere! ☕",
    ),
    "en": (
        "Hi {name}, sorry about that! We've sent you a DM to sort it out.",
        "Thanks {name}! Instructions are on their way.",
        "Hi {name}, good question: the answer is in the guide we just sent you.",
        "Thank you {name}, glad you like it! ☕",
    ),
}
NO_CHANGE_REASONS = {
    "it": (
        "Domanda d'uso: risolta con le istruzioni.",
        "Elogio: nessuna modifica.",
        "Guasto singolo gestito in garanzia.",
    ),
    "en": (
        "Usage question: answered with instructions.",
        "Praise: nothing to change.",
        "Single fault handled under warranty.",
    ),
}
# Cumulative weights: stage listen/interact/react/sell; priority low/normal/high/urgent.
STAGE_WEIGHTS = tuple(accumulate((40, 30, 18, 12)))
PRIORITY_WEIGHTS = tuple(accumulate((15, 60, 20, 5)))


def event_row(
    kind: EventKind,
    at,
    *,
    conversation_id=None,
    ticket_id=None,
    actor=None,
    cycle=None,
    from_stage="",
    to_stage="",
    reason="",
    data=None,
) -> dict:
    """An Event as a row for the writers, as engage.history.record would store it."""
    return {
        "conversation_id": conversation_id,
        "ticket_id": ticket_id,
        "kind": kind.value,
        "actor_id": actor,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "cycle": cycle,
        "reason": reason,
        "data": data or {},
        "created_at": at,
    }


class SyntheticLoader:
    """Adds N conversations in bulk, batch by batch, each batch one transaction."""

    def __init__(
        self, users: dict, sources: list[Source], *, seed, batch_size: int, stdout, days: int = 90
    ):
        self.rng = random.Random(seed)
        self.days = days
        self.targets = response_targets()
        self.batch_size = batch_size
        self.stdout = stdout
        self.sources = sources
        self.managers = [users[name].pk for name in COMMUNITY_MANAGERS]
        self.manager_names = {
            users[name].pk: (users[name].get_username(), users[name].get_full_name())
            for name in COMMUNITY_MANAGERS
        }
        self.now = timezone.now()
        # A run id that no earlier or concurrent run shares.
        self.run = f"{self.now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        self.writer = {"postgresql": CopyWriter, "sqlite": SqliteWriter}.get(
            connection.vendor, OrmWriter
        )()
        self.priorities = tuple(Priority)

    def load(self, total: int) -> None:
        started = last_report = time.monotonic()
        done = rows = 0
        self.stdout.write(
            f"Adding {total:,} synthetic conversations in batches of {self.batch_size:,} "
            f"({self.writer.name}), run {self.run}…"
        )
        while done < total:
            size = min(self.batch_size, total - done)
            with transaction.atomic():
                rows += self.batch(done, size)
            done += size
            now = time.monotonic()
            if now - last_report >= 2 or done == total:
                last_report = now
                elapsed = max(now - started, 1e-9)
                self.stdout.write(
                    f"  {done:,}/{total:,} conversations, {rows:,} rows, "
                    f"{done / elapsed:,.0f} conversations/s, {rows / elapsed:,.0f} rows/s"
                )
        elapsed = max(time.monotonic() - started, 1e-9)
        self.stdout.write(
            f"Added {total:,} synthetic conversations ({rows:,} rows) in {elapsed:.1f}s: "
            f"{total / elapsed:,.0f} conversations/s, {rows / elapsed:,.0f} rows/s."
        )

    def batch(self, offset: int, size: int) -> int:
        rng, now = self.rng, self.now
        contacts, plans = [], []
        last_contact: dict[str, int] = {}
        for n in range(offset, offset + size):
            source = rng.choice(self.sources)
            lang = "it" if rng.random() < 0.6 else "en"
            # About half the people write more than once: reuse the last one of the channel.
            reuse = last_contact.get(source.channel)
            if reuse is None or rng.random() < 0.5:
                first = rng.choice(FIRST_NAMES[lang])
                last = rng.choice(LAST_NAMES[lang])
                handle = f"{first}.{last}".lower().replace(" ", "") + f".{self.run}.{n}"
                contacts.append(
                    {
                        "channel": source.channel,
                        "handle": handle,
                        "name": f"{first} {last}",
                        "profile_url": "",
                        "created_at": now,
                    }
                )
                reuse = last_contact[source.channel] = len(contacts) - 1
            plans.append((n, source, lang, reuse))
        contact_ids = self.writer.insert(Contact, contacts, ids=True)

        conversations, steps = [], []
        for n, source, lang, contact_index in plans:
            row, step = self.conversation(n, source, lang, contacts[contact_index])
            row["contact_id"] = contact_ids[contact_index]
            conversations.append(row)
            steps.append(step)
        conversation_ids = self.writer.insert(Conversation, conversations, ids=True)

        messages, replies = [], []
        for pk, row, step in zip(conversation_ids, conversations, steps, strict=True):
            messages.append(
                {
                    "conversation_id": pk,
                    "source_id": row["source_id"],
                    "external_id": row["external_id"],
                    "direction": Direction.INBOUND.value,
                    "author_handle": step["handle"],
                    "author_name": step["name"],
                    "author_user_id": None,
                    "text": row["text"],
                    "url": row["url"],
                    "sent_at": row["received_at"],
                    "cycle": 1,
                    "created_at": row["received_at"],
                    "in_reply_to": "",
                    "duplicate_of_id": None,
                    "content_hash": content_hash(row["text"]),
                    "language": row["language"],
                    "sentiment": row["sentiment"],
                    "enriched_at": row["received_at"],
                }
            )
            if step["reply"]:
                replies.append(len(messages))
                messages.append(
                    {
                        "conversation_id": pk,
                        "source_id": row["source_id"],
                        "external_id": None,
                        "direction": Direction.OUTBOUND.value,
                        "author_handle": self.manager_names[row["assignee_id"]][0],
                        "author_name": self.manager_names[row["assignee_id"]][1],
                        "author_user_id": row["assignee_id"],
                        "text": step["reply"],
                        "url": "",
                        "sent_at": row["first_response_at"],
                        "cycle": 1,
                        "created_at": row["first_response_at"],
                        "in_reply_to": "",
                        "duplicate_of_id": None,
                        "content_hash": "",
                        "language": "",
                        "sentiment": "",
                        "enriched_at": row["first_response_at"],
                    }
                )
        message_ids = self.writer.insert(Message, messages, ids=True)
        reply_ids = iter(message_ids[index] for index in replies)

        events = []
        for pk, row, step in zip(conversation_ids, conversations, steps, strict=True):
            events.extend(self.events(pk, row, step, reply_ids))
        self.writer.insert(Event, events, ids=False)
        return len(contacts) + len(conversations) + len(messages) + len(events)

    def conversation(self, n: int, source: Source, lang: str, contact: dict) -> tuple[dict, dict]:
        rng, now = self.rng, self.now
        stage = rng.choices(range(4), cum_weights=STAGE_WEIGHTS)[0]
        priority = rng.choices(self.priorities, cum_weights=PRIORITY_WEIGHTS)[0]
        sentiment, template = rng.choice(TEMPLATES[lang])
        text = template.format(
            product=rng.choice(PRODUCTS), part=rng.choice(PARTS[lang]), n=rng.randint(2, 12)
        )
        received = now - timedelta(minutes=rng.randint(5, self.days * 24 * 60))
        # The cycle's steps, in time order; none later than now.
        at = [received]
        for low, high in ((5, 360), (1, 5), (10, 1800), (1, 5), (60, 4320), (1, 5)):
            at.append(min(at[-1] + timedelta(minutes=rng.randint(low, high)), now))
        assigned, in_interact, replied, in_react, reacted, in_sell = at[1:]
        assignee = rng.choice(self.managers) if stage >= 1 or rng.random() < 0.2 else None
        first_name = contact["name"].split(" ")[0]
        reply = rng.choice(REPLIES[lang]).format(name=first_name) if stage >= 2 else ""
        state = State.CLOSED if stage == 3 and rng.random() < 0.3 else State.OPEN
        # One version per change the services would have made.
        version = 1 + (assignee is not None) + stage + (1 if reply else 0) + (state != State.OPEN)
        external_id = f"synthetic-{self.run}-{n}"
        row = {
            "source_id": source.pk,
            "external_id": external_id,
            "channel": source.channel,
            "url": _post_url(source.channel, contact["handle"], external_id),
            "text": text,
            "language": lang,
            "sentiment": sentiment.value,
            "priority": int(priority),
            "stage": ORDER[stage].value,
            "cycle": 1,
            "stage_entered_at": (received, in_interact, in_react, in_sell)[stage],
            "assignee_id": assignee,
            "state": state.value,
            "snoozed_until": None,
            "needs_follow_up": False,
            "received_at": received,
            "first_response_due_at": first_response_due(received, priority, self.targets),
            "first_response_at": replied if reply else None,
            "sla_state": "",
            # The funnel's record, as Conversation.enter_stage keeps it.
            "interact_reached_at": in_interact if stage >= 1 else None,
            "react_reached_at": in_react if stage >= 2 else None,
            "sell_reached_at": in_sell if stage >= 3 else None,
            "time_in_listen": in_interact - received if stage >= 1 else None,
            "time_in_interact": in_react - in_interact if stage >= 2 else None,
            "time_in_react": in_sell - in_react if stage >= 3 else None,
            "time_in_sell": None,
            "version": version,
            "created_at": received,
            "updated_at": (received, in_interact, in_react, in_sell)[stage],
        }
        step = {
            "stage": stage,
            "handle": contact["handle"],
            "name": contact["name"],
            "assigned": assigned,
            "in_interact": in_interact,
            "replied": replied,
            "in_react": in_react,
            "reacted": reacted,
            "in_sell": in_sell,
            "reply": reply,
            "no_change": rng.choice(NO_CHANGE_REASONS[lang]) if stage >= 3 else "",
            "closed": state == State.CLOSED,
        }
        return row, step

    def events(self, pk: int, row: dict, step: dict, reply_ids) -> list[dict]:
        """The Events the services would have written for this row's steps."""
        actor = row["assignee_id"]

        def event(kind, at, *, actor=actor, **fields):
            return event_row(kind, at, conversation_id=pk, actor=actor, cycle=1, **fields)

        events = [event(EventKind.CREATED, row["received_at"], actor=None)]
        if actor is not None:
            username = self.manager_names[actor][0]
            events.append(
                event(EventKind.ASSIGNED, step["assigned"], data={"from": None, "to": username})
            )
        stage = step["stage"]
        if stage >= 1:
            events.append(
                event(
                    EventKind.STAGE_CHANGED,
                    step["in_interact"],
                    from_stage=LISTEN.value,
                    to_stage=INTERACT.value,
                )
            )
        if stage >= 2:
            events.append(
                event(EventKind.REPLY_LOGGED, step["replied"], data={"message": next(reply_ids)})
            )
            events.append(
                event(
                    EventKind.STAGE_CHANGED,
                    step["in_react"],
                    from_stage=INTERACT.value,
                    to_stage=REACT.value,
                )
            )
        if stage >= 3:
            events.append(
                event(EventKind.NO_CHANGE_RECORDED, step["reacted"], reason=step["no_change"])
            )
            events.append(
                event(
                    EventKind.STAGE_CHANGED,
                    step["in_sell"],
                    from_stage=REACT.value,
                    to_stage=SELL.value,
                )
            )
        if step["closed"]:
            events.append(
                event(
                    EventKind.STATE_CHANGED,
                    step["in_sell"],
                    data={"from": State.OPEN.value, "to": State.CLOSED.value, "until": None},
                )
            )
        return events


class OrmWriter:
    """bulk_create: portable. auto_now_add columns get the time of loading."""

    name = "bulk_create"

    def insert(self, model, rows: list[dict], *, ids: bool) -> list[int]:
        objects = model.objects.bulk_create([model(**row) for row in rows], batch_size=1000)
        return [obj.pk for obj in objects] if ids else []


class SqliteWriter:
    """executemany on SQLite, about five times faster than bulk_create.

    The batch's transaction holds SQLite's write lock from its start (settings open
    transactions IMMEDIATE), so ids read as "the highest so far" stay free until commit.
    """

    name = "SQLite executemany"

    def insert(self, model, rows: list[dict], *, ids: bool) -> list[int]:
        if not rows:
            return []
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            reserved = []
            if ids:
                # Table names come from the model, never from input.
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608
                first = cursor.fetchone()[0] + 1
                reserved = list(range(first, first + len(rows)))
            columns = (["id"] if ids else []) + list(rows[0])
            names = ", ".join(connection.ops.quote_name(column) for column in columns)
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                (
                    ([reserved[index]] if ids else []) + [_sqlite_value(v) for v in row.values()]
                    for index, row in enumerate(rows)
                ),
            )
        return reserved


# (title, product area) of the synthetic tickets; "{product}" is one of PRODUCTS.
TICKET_TOPICS = (
    ("Descaling reminder on {product}", "firmware"),
    ("Auto-on timer for {product}", "firmware"),
    ("Steam wand leaks on {product}", "hardware"),
    ("Pump noise after a few weeks ({product})", "hardware"),
    ("Damaged parts on delivery", "logistics"),
    ("Spare parts shop for {product}", "after-sales"),
    ("Clearer descaling guide", "documentation"),
    ("Pre-ground coffee support on {product}", "hardware"),
    ("Bigger water tank for {product}", "hardware"),
    ("Faster warranty replacements", "after-sales"),
)
# Cumulative weights: new, triaged, planned, in progress, shipped, declined.
TICKET_STATUS_WEIGHTS = tuple(accumulate((30, 20, 15, 10, 15, 10)))
TICKET_BATCH = 5000
# Tickets recounted per statement: a bulk UPDATE's CASE grows with each one.
TICKET_COUNT_BATCH = 1000


class SyntheticTickets:
    """Adds T feedback tickets and L evidence links from stored conversations (those past
    listen first), with the Events the services would write: ticket created, its status
    change when shipped or declined, evidence linked. A few tickets draw most evidence, as
    in life (demand follows a power law)."""

    def __init__(self, users: dict, *, seed, days: int, stdout):
        self.rng = random.Random(seed)
        self.days = days
        self.stdout = stdout
        self.product = users["product"].pk
        self.managers = [users[name].pk for name in COMMUNITY_MANAGERS]
        self.now = timezone.now()
        self.writer = {"postgresql": CopyWriter, "sqlite": SqliteWriter}.get(
            connection.vendor, OrmWriter
        )()

    def load(self, tickets: int, links: int) -> None:
        started = time.monotonic()
        with transaction.atomic():
            ticket_rows = self.ticket_rows(tickets)
            ticket_ids = self.writer.insert(FeedbackTicket, ticket_rows, ids=True)
            self.writer.insert(Event, self.ticket_events(ticket_ids, ticket_rows), ids=False)
        linked = self.links(ticket_ids, ticket_rows, links)
        self.count(ticket_ids)
        self.stdout.write(
            f"Added {tickets:,} synthetic tickets and {linked:,} evidence links "
            f"in {time.monotonic() - started:.1f}s."
        )

    def ticket_rows(self, count: int) -> list[dict]:
        rng, rows = self.rng, []
        statuses = list(TicketStatus)
        for n in range(count):
            title, area = rng.choice(TICKET_TOPICS)
            created = self.now - timedelta(minutes=rng.randint(60, self.days * 24 * 60))
            status = rng.choices(statuses, cum_weights=TICKET_STATUS_WEIGHTS)[0]
            changed = min(created + timedelta(hours=rng.randint(1, 24 * 30)), self.now)
            rows.append(
                {
                    "title": f"{title.format(product=rng.choice(PRODUCTS))} #{n + 1}",
                    "problem": "",
                    "product_area": area,
                    "status": status.value,
                    "owner_id": self.product,
                    "created_by_id": rng.choice(self.managers),
                    "merged_into_id": None,
                    "status_changed_at": changed if status != TicketStatus.NEW else created,
                    "created_at": created,
                    "updated_at": changed,
                }
            )
        return rows

    def ticket_events(self, ids: list[int], rows: list[dict]) -> list[dict]:
        events = []
        for pk, row in zip(ids, rows, strict=True):
            events.append(
                event_row(
                    EventKind.TICKET_CREATED,
                    row["created_at"],
                    ticket_id=pk,
                    actor=row["created_by_id"],
                    data={"title": row["title"]},
                )
            )
            if row["status"] in CLOSED_TICKET_STATUSES:
                events.append(
                    event_row(
                        EventKind.TICKET_STATUS_CHANGED,
                        row["status_changed_at"],
                        ticket_id=pk,
                        actor=self.product,
                        data={"from": TicketStatus.NEW.value, "to": row["status"]},
                    )
                )
        return events

    def links(self, ticket_ids: list[int], ticket_rows: list[dict], count: int) -> int:
        """Link `count` conversations (or as many as there are), each to one ticket chosen
        with a power-law weight, in batches of TICKET_BATCH."""
        if not count or not ticket_ids:
            return 0
        rng = self.rng
        conversations = list(
            Conversation.objects.filter(merged_into__isnull=True)
            .order_by("-stage", "id")  # sell, react, listen, interact: the later steps first
            .values_list("pk", "text", "cycle", "received_at", "assignee_id")[:count]
        )
        rng.shuffle(conversations)
        weights = list(accumulate(1 / (rank + 1) for rank in range(len(ticket_ids))))
        tickets = rng.choices(range(len(ticket_ids)), cum_weights=weights, k=len(conversations))
        for start in range(0, len(conversations), TICKET_BATCH):
            links, events = [], []
            chunk = conversations[start : start + TICKET_BATCH]
            for (pk, text, cycle, received, assignee), index in zip(
                chunk, tickets[start : start + TICKET_BATCH], strict=True
            ):
                ticket = ticket_rows[index]
                at = min(received + timedelta(hours=rng.randint(1, 72)), self.now)
                told = ticket["status"] in CLOSED_TICKET_STATUSES and rng.random() < 0.5
                actor = assignee or rng.choice(self.managers)
                links.append(
                    {
                        "ticket_id": ticket_ids[index],
                        "conversation_id": pk,
                        "quote": text[:140],
                        "cycle": cycle,
                        "created_by_id": actor,
                        "created_at": at,
                        "told_at": max(at, ticket["status_changed_at"]) if told else None,
                    }
                )
            with transaction.atomic():
                link_ids = self.writer.insert(FeedbackLink, links, ids=True)
                for link_id, link, index in zip(
                    link_ids, links, tickets[start : start + TICKET_BATCH], strict=True
                ):
                    events.append(
                        event_row(
                            EventKind.FEEDBACK_LINKED,
                            link["created_at"],
                            conversation_id=link["conversation_id"],
                            actor=link["created_by_id"],
                            cycle=link["cycle"],
                            data={
                                "ticket": ticket_ids[index],
                                "title": ticket_rows[index]["title"],
                                "link": link_id,
                            },
                        )
                    )
                self.writer.insert(Event, events, ids=False)
        return len(conversations)

    def count(self, ticket_ids: list[int]) -> None:
        """Store the counts of the tickets (FeedbackTicket.COUNTS) from the links written, with
        the services' own recount, TICKET_COUNT_BATCH tickets at a time."""
        for batch in batched(ticket_ids, TICKET_COUNT_BATCH):
            with transaction.atomic():
                feedback_services.refresh_ticket_counts(batch)


def _sqlite_value(value):
    # The storage Django's SQLite backend uses: naive UTC text, JSON text, 0/1, microseconds.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, timedelta):  # a duration is its microseconds
        return value // timedelta(microseconds=1)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


class CopyWriter:
    """PostgreSQL COPY: several times faster than multi-row INSERT.

    Ids that later rows refer to are taken from the table's sequence first, so they are
    unique even when other processes insert at the same time.
    """

    name = "PostgreSQL COPY"

    def insert(self, model, rows: list[dict], *, ids: bool) -> list[int]:
        if not rows:
            return []
        table = model._meta.db_table
        with connection.cursor() as cursor:
            reserved = []
            if ids:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    [table, len(rows)],
                )
                reserved = [pk for (pk,) in cursor.fetchall()]
            columns = (["id"] if ids else []) + list(rows[0])
            names = ", ".join(connection.ops.quote_name(column) for column in columns)
            # Table and column names come from the model, never from input.
            # JSON goes as its text; COPY parses it into jsonb.
            json_columns = [
                i for i, value in enumerate(rows[0].values()) if isinstance(value, dict)
            ]
            statement = f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for index, row in enumerate(rows):
                    values = list(row.values())
                    for i in json_columns:
                        values[i] = json.dumps(values[i])
                    copy.write_row([reserved[index], *values] if ids else values)
        return reserved
