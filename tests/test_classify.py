"""Specifications of the topic classifier (worker/classify.py, with its phrase language in worker/phrases.py
and its scanning in worker/scanning.py) and its evaluation (worker/evaluate_topics.py).

The shipped rule set is config/topics.yaml; rule-kind tests load small definitions written to tmp_path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from livebrief.errors import ConfigError
from worker.classify import Classification, TopicSet, classify, lead, load_topics
from worker.evaluate_topics import compare_labels, evaluate, format_report, join_corpus, main, panel
from worker.scanning import WORD_START, Scanner, word_starts

ROOT = Path(__file__).resolve().parent.parent
TOPICS_FILE = ROOT / "config" / "topics.yaml"
SMALL_EVAL = Path(__file__).resolve().parent / "fixtures" / "topics-eval-small.jsonl"


@pytest.fixture(scope="module")
def topics() -> TopicSet:
    return load_topics(TOPICS_FILE)


def topics_of(title: str, topics: TopicSet, text: str = "") -> list[str]:
    return classify(title, text, topics).topics


def write_topics(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(body, encoding="utf-8")
    return path


# --- the shipped definitions: what each topic covers ----------------------------------------------


def test_missile_strike_that_kills_civilians_is_strikes_and_humanitarian(topics: TopicSet) -> None:
    title = "Russian missile strike on shopping centre in Kremenchuk kills 18"
    assert sorted(topics_of(title, topics)) == ["humanitarian", "strikes"]


@pytest.mark.parametrize(
    "title",
    [
        "Russian forces pound Kharkiv with artillery overnight",
        "Explosions rock Kyiv as air raid sirens sound",
        "Ukraine launches counteroffensive in the south",
        "Ukrainian drone hits oil refinery in Russia's Rostov region",
        "Car bomb kills Russian-installed official in occupied Melitopol",
    ],
)
def test_armed_attacks_under_way_are_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Russia and Ukraine agree to continue ceasefire talks",
        "Lavrov meets Kuleba in Antalya, no progress on ceasefire",
        "Macron calls Putin in bid to defuse Ukraine crisis",
        "NATO formally invites Finland and Sweden to join the alliance",
    ],
)
def test_diplomacy_between_governments_is_talks(topics: TopicSet, title: str) -> None:
    assert "talks" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Over a million refugees have fled Ukraine, UN says",
        "Humanitarian corridor opens for civilians trapped in Mariupol",
        "Russia accused of deporting Ukrainian children to filtration camps",
        "Kyiv will need a decade to demine liberated territory",
    ],
)
def test_what_happens_to_civilians_is_humanitarian(topics: TopicSet, title: str) -> None:
    assert "humanitarian" in topics_of(title, topics)


# --- the shipped definitions: traps ---------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Amazon workers plan Black Friday strikes over pay",
        "Teachers' union votes to strike next month",
        "Apple strikes back, taking Russia's market regulator to court",
        "Oil major strikes a deal with Russian supplier",
    ],
)
def test_labour_strikes_and_figurative_strikes_are_not_strikes(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_bomb_cyclone_is_weather_not_strikes(topics: TopicSet) -> None:
    assert topics_of("A bomb cyclone will unleash snow on the east coast", topics) == []


def test_attack_ad_is_politics_not_strikes(topics: TopicSet) -> None:
    assert topics_of("Newsom targets DeSantis in attack ad: freedom is under attack", topics) == []


def test_warning_of_an_attack_that_has_not_happened_is_not_strikes(topics: TopicSet) -> None:
    assert topics_of("US warns Russia has plans for 'large scale' attack on Ukraine", topics) == []


@pytest.mark.parametrize(
    "title",
    ["No strikes on Kyiv overnight, officials say", "Ukraine reports no shelling in Kharkiv for first time in weeks",
     "Kyiv quiet as no Russian missile strikes reported for second night", "Not a single strike on Kyiv overnight",
     "Officials say the feared missile strike on Kyiv didn’t happen",
     "Air raid alert lifted after no missiles hit Kyiv",
     "Explosion at Kyiv fuel depot was a false alarm, officials say",
     "Russian offensive in the north that was expected this week has not materialised"],
)
def test_an_attack_reported_as_not_having_happened_is_not_strikes(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_a_no_elsewhere_in_the_headline_does_not_undo_a_strike(topics: TopicSet) -> None:
    title = "Missile strike kills 3 in Odesa; no air raid alert sounded"
    assert topics_of(title, topics) == ["strikes", "humanitarian"]


def test_people_killed_by_lightning_are_no_topic(topics: TopicSet) -> None:
    assert topics_of("Lightning strike kills 2 hikers in Colorado", topics) == []


@pytest.mark.parametrize("label", ["Related:", "SEE ALSO:", "Read more »", "More on this story |", "Related coverage:"])
def test_a_line_pointing_to_another_story_does_not_give_its_topics(topics: TopicSet, label: str) -> None:
    text = f"Museums in Lviv reopen their doors to visitors.\n{label} Russian missile strike kills 5 in Odesa"
    assert topics_of("Lviv museums reopen", topics, text) == []


def test_a_live_label_opens_news_and_is_read(topics: TopicSet) -> None:
    text = "Museums in Lviv reopen their doors to visitors.\nLive: Russian missile strike kills 5 in Odesa"
    assert topics_of("Lviv museums reopen", topics, text) == ["strikes", "humanitarian"]


def test_climate_summit_is_not_talks(topics: TopicSet) -> None:
    assert topics_of("Oil lease sale held days after climate summit", topics) == []


def test_celebrity_who_talks_about_a_show_is_not_talks(topics: TopicSet) -> None:
    title = "'Peacemaker' director James Gunn talks hair-metal playlist and opening credits"
    assert topics_of(title, topics) == []


def test_trailer_for_a_show_named_peacemaker_is_no_topic(topics: TopicSet) -> None:
    assert topics_of("Peacemaker | Official Trailer | HBO Max", topics) == []


def test_company_in_talks_to_buy_is_not_talks(topics: TopicSet) -> None:
    assert topics_of("Netflix in talks to acquire video game studio", topics) == []


def test_lawsuit_by_refugees_is_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Rohingya refugees sue Facebook for $150B", topics) == []


def test_evacuating_diplomats_is_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Russia evacuating diplomatic staff from Ukraine", topics) == []


def test_weapons_deliveries_are_no_topic(topics: TopicSet) -> None:
    assert topics_of("Estonia sending anti-aircraft missiles to Ukraine", topics) == []


def test_summary_text_is_read_with_the_title(topics: TopicSet) -> None:
    result = classify("Overnight in the east", "Russian shelling hit Kramatorsk again.", topics)
    assert "strikes" in result.topics


def test_only_the_lead_of_a_long_text_is_read(topics: TopicSet) -> None:
    """A feed carrying whole articles: the topic comes from the headline and the lead, not from a passing
    mention in the background (and the cost per item stays that of a summary)."""
    background = "Officials reviewed the budget for the coming year in a long meeting. " * 30  # ~2,100 chars
    assert topics_of("City council meets", topics, text=background + "Russian shelling hit Kramatorsk.") == []
    assert "strikes" in topics_of("City council meets", topics, text="Russian shelling hit Kramatorsk. " + background)


def test_the_lead_is_cut_at_a_space_so_no_word_is_read_as_a_shorter_one(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path, "defaults:\n  lead_chars: 200\ntopics:\n  war:\n    phrases:\n"
                                                "      0.9: [attack]\n"))
    text = "x" * 193 + " attacker"  # character 200 falls inside "attacker", right after "attack"
    assert lead(text, 200) == "x" * 193
    assert classify("Headline", text, topics).topics == []
    assert classify("Headline", "x" * 190 + " attack", topics).topics == ["war"]


def test_the_lead_length_is_set_in_the_topics_file(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.9: [shelling]\n"
    text = "word " * 220 + "shelling"  # past the default 1,000 characters
    assert classify("Headline", text, load_topics(write_topics(tmp_path, body))).topics == []
    longer = load_topics(write_topics(tmp_path, "defaults:\n  lead_chars: 1200\n" + body))
    assert longer.lead_chars == 1200
    assert classify("Headline", text, longer).topics == ["war"]
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, "defaults:\n  lead_chars: 10\n" + body))
    assert any("defaults.lead_chars" in p for p in err.value.problems)


# --- scores and evidence --------------------------------------------------------------------------


def test_every_topic_gets_a_score_between_zero_and_one(topics: TopicSet) -> None:
    result = classify("Missile strike kills 18 as peace talks stall", "", topics)
    assert set(result.scores) == set(topics.names)
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())


def test_evidence_names_the_phrases_that_fired(topics: TopicSet) -> None:
    result = classify("Russian missile strike on Odesa", "", topics)
    assert any("missile strike" in e for e in result.evidence["strikes"])


def test_item_about_nothing_has_no_topics_and_zero_scores(topics: TopicSet) -> None:
    result = classify("Pringles wants a spider named after it", "", topics)
    assert result == Classification(topics=[], scores=dict.fromkeys(topics.names, 0.0), evidence={})


# --- each rule kind, on definitions written for the test ------------------------------------------


def test_weighted_phrases_combine_as_noisy_or(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path, "topics:\n  fruit:\n    phrases:\n      0.5: [apple, pear]\n"))
    assert classify("an apple", "", topics).scores["fruit"] == 0.5
    assert classify("an apple and a pear", "", topics).scores["fruit"] == 0.75


def test_phrase_matches_whole_words_and_star_endings(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path, "topics:\n  war:\n    phrases:\n      0.9: [bombard*]\n"))
    assert classify("City bombarded overnight", "", topics).topics == ["war"]
    assert classify("Warning about bombs", "", topics).topics == []


def test_exclusion_hides_its_words_from_positive_phrases(tmp_path: Path) -> None:
    body = "topics:\n  strikes:\n    phrases:\n      0.9: [strike*]\n    exclude: [strikes back]\n"
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Empire strikes back", "", topics).topics == []
    assert classify("Strikes on the port", "", topics).topics == ["strikes"]


def test_context_rule_counts_only_near_its_context(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    rules:\n      - {match: [attack], weight: 0.8, near: [troops, missile], window: 3}\n"
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Troops attack the town", "", topics).topics == ["war"]
    assert classify("Shark attack on the beach", "", topics).topics == []
    far = "Troops were seen on the road long before anyone spoke of an attack"
    assert classify(far, "", topics).topics == []


def test_unless_near_blocks_a_rule_and_says_so_in_evidence(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    rules:\n      - {match: [attack], weight: 0.8, near: [troops], unless_near: [warn*]}\n"
    topics = load_topics(write_topics(tmp_path, body))
    result = classify("Officials warn troops may attack", "", topics)
    assert result.topics == []
    assert any("ignored near 'warn'" in e for e in result.evidence["war"])


def test_dampener_lowers_the_score(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.8: [airstrike]\n    dampen:\n      0.5: [warns]\n"
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Airstrike on the depot", "", topics).scores["war"] == 0.8
    assert classify("Army warns of airstrike", "", topics).scores["war"] == 0.4


def test_threshold_is_set_per_topic(tmp_path: Path) -> None:
    body = (
        "topics:\n"
        "  strict:\n    threshold: 0.9\n    phrases:\n      0.7: [ceasefire]\n"
        "  lenient:\n    threshold: 0.3\n    phrases:\n      0.7: [ceasefire]\n"
    )
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Ceasefire holds", "", topics).topics == ["lenient"]


def test_vocabulary_can_be_used_inside_a_phrase(tmp_path: Path) -> None:
    body = (
        "vocab:\n  leaders: [putin, macron]\ntopics:\n  talks:\n    phrases:\n      0.9: ['@leaders calls @leaders']\n"
    )
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Macron calls Putin", "", topics).topics == ["talks"]
    assert classify("Macron calls for calm", "", topics).topics == []


def test_a_user_added_topic_needs_no_code(tmp_path: Path) -> None:
    body = (
        "topics:\n  energy:\n    description: gas and oil supply\n"
        "    phrases:\n      0.8: [gas pipeline*, nord stream]\n"
        "    rules:\n      - {match: [gas], weight: 0.5, near: [russia*, europe]}\n"
    )
    topics = load_topics(write_topics(tmp_path, body))
    assert topics.names == ["energy"]
    assert classify("Nord Stream flows cut again", "", topics).topics == ["energy"]
    assert classify("Russian gas to Europe falls", "", topics).topics == ["energy"]
    assert classify("Gas prices at the pump", "", topics).topics == []


# --- load_topics errors ---------------------------------------------------------------------------


def test_missing_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_topics(path)
    assert err.value.path == str(path)


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_topics(write_topics(tmp_path, "topics: [unclosed\n"))


def test_a_re_phrase_valid_alone_but_not_inside_its_topic_is_a_config_error(tmp_path: Path) -> None:
    """A global flag compiles at the start of a re: phrase, not where the phrase sits in its topic's
    alternation: reported at load with the topic named, not raised as a bare regex error."""
    body = "topics:\n  war:\n    rules:\n      - {match: ['re:(?i)shelling', attack], weight: 0.8}\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any(p.startswith("topics.war: a re: phrase is not valid") for p in err.value.problems)


def test_a_re_phrase_valid_alone_but_not_inside_a_context_list_is_a_config_error(tmp_path: Path) -> None:
    """Context lists are compiled on first use, not at load; their alternatives are checked at load, so the
    rules' error still shows there, not when the first text needs the list."""
    body = "topics:\n  war:\n    rules:\n      - {match: [attack], weight: 0.8, near: ['re:(?i)troops', tank]}\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any(p.startswith("topics.war: a re: phrase is not valid") for p in err.value.problems)


def test_a_context_list_is_compiled_when_a_text_first_needs_it_and_shared_by_rules_with_the_same_list(
    tmp_path: Path,
) -> None:
    body = (
        "vocab:\n  arms: [troops, missile*]\n"
        "topics:\n  war:\n    rules:\n"
        "      - {match: [attack], weight: 0.8, near: ['@arms']}\n"
        "      - {match: [raid], weight: 0.7, near: ['@arms']}\n"
        "      - {match: [siege], weight: 0.6, near: [tanks]}\n"
    )
    topics = load_topics(write_topics(tmp_path, body))
    rules = topics._topics["war"].rules
    lists = {name: rule.near for name, rule in rules.items()}
    assert lists["r0_0"] is lists["r1_0"] and lists["r0_0"] is not lists["r2_0"]
    assert all(near is not None and near._pattern is None for near in lists.values())
    assert classify("Missiles and a raid on the port", "", topics).topics == ["war"]
    assert lists["r1_0"] is not None and lists["r1_0"]._pattern is not None
    assert lists["r2_0"] is not None and lists["r2_0"]._pattern is None  # no "siege" in that text
    assert classify("A raid by pirates", "", topics).topics == []
    topics.compile_all()  # what a forking worker does before it forks
    assert all(near is not None and near._pattern is not None for near in lists.values())


def test_weight_out_of_range_names_the_topic_and_field(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      1.5: [shelling]\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any("topics.war.phrases" in p and "1.5" in p for p in err.value.problems)


def test_the_same_weight_twice_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.5: [summit]\n      0.5: [envoy]\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert "duplicate key 0.5" in str(err.value)


def test_unknown_field_is_reported(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.5: [shelling]\n    treshold: 0.4\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any("topics.war.treshold" in p for p in err.value.problems)


def test_unknown_vocabulary_is_reported(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    rules:\n      - {match: [attack], weight: 0.5, near: ['@nowhere']}\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any("topics.war" in p and "@nowhere" in p for p in err.value.problems)


def test_bad_raw_regex_is_reported(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.5: ['re:(unclosed']\n"
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_topics(write_topics(tmp_path, body))


def test_a_gap_glued_to_a_word_is_reported_not_read_as_dots(tmp_path: Path) -> None:
    body = "topics:\n  war:\n    phrases:\n      0.5: ['walks out (of )?... talks']\n"
    with pytest.raises(ConfigError) as err:
        load_topics(write_topics(tmp_path, body))
    assert any("'...' must stand alone" in p and "(of )?..." in p for p in err.value.problems)


def test_topic_without_rules_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="topics.empty"):
        load_topics(write_topics(tmp_path, "topics:\n  empty:\n    description: nothing\n"))


def test_file_without_topics_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="topics"):
        load_topics(write_topics(tmp_path, "vocab: {}\n"))


# --- phrasings beyond the obvious keywords (issue 3: recall on differently worded items) ------------
# All invented headlines; each names the category of wording it stands for.


@pytest.mark.parametrize(
    "title",
    [
        "Scholz makes first trip to Kyiv since the invasion",  # a leader's visit or trip
        "Erdogan pays surprise visit to Tehran",
        "Hungary agrees to ratify Finland and Sweden NATO bids",  # accession deal
        "Turkey drops its objection to Swedish NATO membership",
        "Kremlin demands guarantee of no further NATO enlargement",  # a negotiating demand
        "China and Russia sign friendship treaty",  # an agreement between governments
        "Germany and Qatar in talks over gas supplies",  # "A and B in talks"
        "Putin and Erdogan meet in Sochi",  # "A and B meet"
        "Brazil's president to skip the G-20 gathering, officials say",  # a meeting called a gathering
        "NATO allies agree new strategy at Madrid meeting",  # a summit outcome without "summit"
        "Moscow says Kyiv rejected its latest proposal",  # a proposal answered
    ],
)
def test_diplomacy_worded_without_talks_is_talks(topics: TopicSet, title: str) -> None:
    assert "talks" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Fire engulfs ammunition depot in occupied Crimea",  # explosion or fire at a military site
        "Ukrainian drone drops grenade on Russian tank",  # a weapon used on a target
        "HIMARS used against Russian positions near Kherson",
        "Russian colonel killed near Kharkiv",  # combat deaths and wounded
        "Two Ukrainian soldiers wounded in Donetsk region",
        "Russian forces raze village in Luhansk region",  # destruction
        "Russia has destroyed 200 schools in Ukraine, minister says",  # a destruction tally
    ],
)
def test_combat_worded_without_strike_is_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Photographer shot dead near Kyiv",  # a civilian named by role
        "Russian troops killed a volunteer delivering food in Chernihiv",
        "UN condemns abuse of detainees in occupied Kherson",  # treatment of civilians or captives
        "Elderly woman stranded in Mariupol without food",  # stranded in the war zone
    ],
)
def test_harm_to_civilians_named_by_role_is_humanitarian(topics: TopicSet, title: str) -> None:
    assert "humanitarian" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Fireworks blast kills 3 at warehouse in Texas",  # an accident has no conflict context
        "Factory explosion kills 5 in China",
        "Journalist killed in car crash in Ohio",
        "Police officer shot dead in Chicago",
        "Biden visits hospital in Ohio",
        "Apple and Google in talks over search deal",
        "Netflix signs multi-year deal with a producer",
        "Taylor Swift announces first foreign tour since pandemic",
        "Russian troops to storm Kyiv, analysts say",  # a move only announced
        "Oil depot fire in Texas after lightning",
    ],
)
def test_look_alikes_without_conflict_context_are_no_topic(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_troops_only_announced_to_advance_are_not_strikes_but_continuing_advance_is(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Russian troops to advance towards Kharkiv, official says", topics)
    assert "strikes" in topics_of("Ukrainian troops continue to advance near Kharkiv", topics)


def test_a_context_rule_that_does_not_count_leaves_its_place_to_a_weaker_phrase(tmp_path: Path) -> None:
    # "quake kills 12" is both: the strong rule matches first there but wants a war word; the weaker
    # phrase at the same place still counts.
    body = (
        "topics:\n  harm:\n    rules:\n"
        '      - {match: ["kills #"], weight: 0.9, near: [war]}\n'
        "      - {match: [kills], weight: 0.6, near: [quake]}\n"
    )
    topics = load_topics(write_topics(tmp_path, body))
    assert classify("Quake kills 12 in the mountains", "", topics).scores["harm"] == 0.6
    assert classify("War kills 12 in the mountains", "", topics).scores["harm"] == 0.9
    assert classify("Storm kills 12 in the mountains", "", topics).topics == []


# --- phrasings found missing by a blind evaluation (issue 3); every headline below is invented ------


@pytest.mark.parametrize(
    "title",
    [
        # military losses: counts of soldiers, officers killed, a side's losses
        "Ukraine says 40 Russian soldiers killed near Bakhmut overnight",
        "Two Russian generals killed in Kherson region, Kyiv says",
        "Russian colonel reportedly killed near Izium",
        "Ukrainian military deaths rise as fighting intensifies in the east",
        "With 12 generals down and 20k+ troops lost, the offensive stalls in Donbas",
        "Russia's losses mount as Ukrainian forces hold the line near Kharkiv",
        # fighting and resistance in named places, partisans
        "Stubborn resistance in Mariupol slows Russian advance",
        'Moscow tells defenders to stop "pointless resistance" in Lysychansk',
        "Partisans blow up railway bridge used by Russian troops near Melitopol",
        "Special forces take the fight deep into occupied territory",
        # air targets downed, weapons at work on the front, military targets hit
        "Air defence downs six air targets over Odesa",
        "HIMARS rocket systems are working powerfully on the front line, general says",
        "Ukrainian forces target ammunition depots far behind the front",
        # ground changing hands
        "Russia withdraws troops from Kherson city after Ukrainian counteroffensive",
        "Ukrainian flag raised over Kherson after Russian retreat",
    ],
)
def test_military_losses_resistance_and_weapons_at_work_are_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        # a leader's message to another leader, announced or reported from a call or letter
        "Scholz to tell Putin sanctions will follow any invasion",
        "Macron told Putin that Europe would stand united, Elysee says",
        "Letter from Zelensky to Biden asks for more help",
        "Film reveals transcripts of Macron calls with Putin",
        # security demands and the replies to them
        "Russia demands NATO troops withdraw from the Baltic states",
        "Kremlin says US reply to Russia's security demands falls short",
        "Moscow renews demand to keep Georgia out of NATO",
        # leaders and ministers travelling to another country
        "Erdogan heads to Moscow for talks on grain",
        "Scholz arrives in Beijing for first visit as chancellor",
        "Blinken visits Kyiv in show of support",
        "Erdogan meets Putin during Putin visit to Tehran",
        # EU / NATO membership: backing, objections dropped, proposals
        "Germany backs Ukraine's EU membership bid",
        "Hungary drops objections to Sweden joining NATO",
        "Georgia welcomes EU backing for membership",
        "Prime minister proposes fast-track EU membership for Moldova",
        # a seat at the table; alliances being formed
        "Russia and Ukraine back at the negotiating table in Istanbul",
        "Britain, Poland and Ukraine form trilateral partnership",
    ],
)
def test_leader_messages_security_demands_visits_and_membership_are_talks(topics: TopicSet, title: str) -> None:
    assert "talks" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Ukraine and Russia carry out prisoner swap, 50 servicemen return home",
        "Dozens of defenders freed from Russian captivity in exchange",
        "Migrant crisis on Poland-Belarus border deepens as temperatures fall",
        "Belarus border crisis worsens as migrants freeze in forest",
        "Villagers say Russian troops massacred dozens in Bucha",
        "Deadly missile strike on Odesa apartment block",
    ],
)
def test_prisoner_returns_migrant_crises_and_massacres_are_humanitarian(topics: TopicSet, title: str) -> None:
    assert "humanitarian" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Five injured as unexploded World War II bomb explodes at building site in Berlin",
        "Three hurt as old bomb goes off near railway station",
        "Soldier opens fire on comrades at military base, kills four",
        "Russian troops desert their units amid low morale, intelligence says",
        "Poland prepares evacuation plans in case of war with Russia",
        "Thousands of civilians drafted into the army in Odesa region",
        "Biden warns Putin of severe costs in speech",
        "Pop star arrives in Kyiv for charity concert",
        "US military aid arrives in Poland",
        "Club members back membership bid for new golf course",
        "Ukraine's economy suffers heavy losses from war, World Bank says",
        "Partisan divide in Congress deepens over budget",
        "Singer pens letter to Biden from prison",
        "Senator's call to block Ukraine from NATO draws criticism",
    ],
)
def test_accidents_crime_morale_plans_and_drafting_are_no_topic(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_numbers_written_with_k_count_as_numbers(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Ukraine says 30k+ Russian soldiers killed since February", topics)


# --- conflicts and crises beyond Ukraine (invented headlines) --------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "Soldiers open fire on pro-democracy rally in Sudan, three dead",
        "Security forces fire on mourners at funeral, killing 4",
        "Protesters shot dead by troops in capital",
        "Militia beat and detained elderly man in occupied village",
        "Aid workers kidnapped by gunmen in Nigeria freed",
        "Ten aid staff detained by rebels in Yemen",
        "Junta executed dozens of detainees after coup, rights group says",
        "UN: millions of Yemenis on the brink of starvation",
        "Convoy of medicine departs for Tigray",
        "Blankets and tents airlifted to Afghanistan as winter bites",
        "Rights group documents mass arrests of Rohingya",
        "Satellite images reveal new internment camps",
        "Monitors warn of 'widespread' detentions of journalists in Myanmar",
    ],
)
def test_civilians_harmed_detained_or_relieved_in_any_crisis_are_humanitarian(topics: TopicSet, title: str) -> None:
    assert "humanitarian" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Iran and Saudi Arabia restore diplomatic relations after seven years",
        "Bahrain and Qatar agree to re-establish diplomatic ties",
        "Houthi delegation arrives in Muscat",
        "Summit paves the way for Ukraine to join EU",
    ],
)
def test_restored_ties_delegations_and_paths_to_membership_are_talks(topics: TopicSet, title: str) -> None:
    assert "talks" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Rebels say they have recaptured key town from army",
        "Israeli forces conduct overnight raid in Jenin",
        "Army retook the city after three days of fighting",
        "Commandos carry out raid in Somalia, civilian casualties feared",
    ],
)
def test_ground_retaken_and_raids_carried_out_in_any_conflict_are_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Police shoot man after protest in Ohio",
        "Police make mass arrests at climate protest in London",
        "County jail detention facilities overcrowded, sheriff says",
        "Texas executed man convicted of killing officer",
        "Chelsea recapture top spot with win over Arsenal",
        "Republicans retake the House",
        "Trade delegation from Ohio visits Japan",
        "Olympic delegation lands in Beijing",
        "Senator shoots down proposal for new tax",
        "Farmer shoots down neighbour's drone with a slingshot",
        "Country cuts diplomatic ties with Taiwan",
        "Families restore ties after decades",
        "Company sells wheat to Egypt",
        "Police raid offices of opposition newspaper",
        "FBI raid on Florida home",
        "Kidnapping suspect arrested by police",
        "Man, 80, beaten in robbery; police seek suspect",
        "Army could retake the city within weeks, analysts say",
    ],
)
def test_crime_politics_sport_and_plans_stay_out_of_the_wider_rules(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_a_market_rally_is_not_a_crackdown_on_a_rally(topics: TopicSet) -> None:
    assert "humanitarian" not in topics_of("Army attacks spark stock market rally", topics)


def test_a_fear_about_the_toll_does_not_undo_the_attack(topics: TopicSet) -> None:
    # "feared" governs the casualties, not whether the raid happened; a feared raid still does not count
    assert "strikes" in topics_of("Special forces conduct raid in Yemen, dozens feared dead", topics)
    assert "strikes" not in topics_of("Villagers fear a raid by militants in Yemen", topics)


# --- traps found by the fifth blind set (blind4); every headline below is invented -----------------


def test_candidates_set_to_join_after_a_member_drops_its_hold_is_talks(topics: TopicSet) -> None:
    title = "Moldova cleared to join the EU once Romania lifts its hold, diplomats say"
    assert "talks" in topics_of(title, topics)


def test_a_protest_against_a_summit_is_not_talks(topics: TopicSet) -> None:
    assert topics_of("Anti-war activists rally outside the G7 summit venue", topics) == []


def test_arms_moving_after_a_leaders_visit_is_not_talks(topics: TopicSet) -> None:
    title = "After Erdogan's visit, arms shipments through the Bosphorus doubled"
    assert topics_of(title, topics) == []


@pytest.mark.parametrize(
    "title",
    [
        "Madrid mayor tricked into video call with fake Kyiv counterpart",
        "Olympic committee president holds video call with tennis star",
        "IOC president's video call with tennis star raises doubts",
    ],
)
def test_video_calls_of_mayors_hoaxes_and_sports_officials_are_not_talks(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


def test_arson_attack_on_an_office_is_not_strikes(topics: TopicSet) -> None:
    assert topics_of("Molotov-wielding arsonists attack Russian recruiting station overnight", topics) == []


def test_tanks_deployed_for_storming_a_town_is_a_plan_not_strikes(topics: TopicSet) -> None:
    assert topics_of("Moscow moving reserve tank units east for storming Avdiivka", topics) == []


def test_a_shootout_among_soldiers_of_one_army_is_not_strikes(topics: TopicSet) -> None:
    title = "Drunken brawl among Russian soldiers in occupied Melitopol ends in shootout, 3 soldiers dead"
    assert "strikes" not in topics_of(title, topics)


@pytest.mark.parametrize(
    "title",
    [
        "Booby trap in Kharkiv region injures 12 Russian soldiers",
        "Hidden grenade injures Russian soldiers at checkpoint",
    ],
)
def test_soldiers_injured_by_a_side_are_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)


def test_a_ship_hit_while_carrying_supplies_is_strikes_not_a_delivery(topics: TopicSet) -> None:
    title = "Kyiv says it hit a Russian barge ferrying fuel, generators and supplies"
    assert "strikes" in topics_of(title, topics)


def test_the_wars_toll_on_dolphins_is_not_strikes(topics: TopicSet) -> None:
    assert topics_of("Sonar and explosions from the Russian navy blamed for dolphin deaths", topics) == []


def test_an_armys_dead_counted_with_its_tanks_are_not_humanitarian(topics: TopicSet) -> None:
    title = "Russia's losses so far: 20,500 dead and 900 tanks destroyed, Kyiv says"
    assert "humanitarian" not in topics_of(title, topics)


def test_arrest_of_a_suspected_strike_spotter_is_not_humanitarian(topics: TopicSet) -> None:
    title = "Odesa resident detained on suspicion of guiding Russian missile strikes"
    assert "humanitarian" not in topics_of(title, topics)


def test_family_of_a_fighter_missing_in_the_war_is_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Family of a Canadian veteran missing near Kharkiv pleads for news", topics) == []


@pytest.mark.parametrize(
    "title",
    [
        "Belarusian regime kills two protesters in Minsk",
        "Eight pro-democracy protesters shot dead in Mandalay as junta cracks down",
    ],
)
def test_state_forces_killing_protesters_is_humanitarian(topics: TopicSet, title: str) -> None:
    assert "humanitarian" in topics_of(title, topics)


def test_reprisal_killings_of_a_former_regimes_soldiers_are_humanitarian(topics: TopicSet) -> None:
    title = "Rights group documents killings of former police officers under Taliban rule"
    assert "humanitarian" in topics_of(title, topics)


def test_captured_foreigners_to_be_returned_home_are_humanitarian(topics: TopicSet) -> None:
    title = "Ministry promises to free captured Britons and reunite them with relatives"
    assert "humanitarian" in topics_of(title, topics)


def test_money_raised_for_a_war_countrys_children_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Singer auctions guitar for Syrian orphans", topics)


def test_a_civilian_executed_by_soldiers_is_humanitarian(topics: TopicSet) -> None:
    title = "Village priest tortured and killed by occupying troops near Kherson, witnesses say"
    assert "humanitarian" in topics_of(title, topics)


def test_bombing_to_kill_rescuers_is_humanitarian(topics: TopicSet) -> None:
    title = "Repeat bombing of the same site kills arriving medics, rescuers say"
    assert "humanitarian" in topics_of(title, topics)


def test_residents_evacuated_from_a_volcano_are_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Residents evacuated as Greek island volcano spews toxic gas", topics) == []


def test_an_evacuation_out_of_a_crisis_country_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Afghan women's football team evacuated to Portugal", topics)


# --- evaluation -----------------------------------------------------------------------------------


def test_evaluation_on_the_small_fixture_set(topics: TopicSet) -> None:
    report = evaluate(SMALL_EVAL, topics)
    assert report.items == 32
    assert report.macro_f1 >= 0.9
    assert report.none_accuracy == 1.0
    text = format_report(report)
    assert "macro-F1" in text and "strikes" in text


def test_evaluation_counts_false_positives_and_lists_mistakes(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path, "topics:\n  war:\n    phrases:\n      0.9: [attack]\n"))
    records = [
        {"id": "a", "title": "Attack on the port", "topics": ["war"]},
        {"id": "b", "title": "Shark attack", "topics": []},
        {"id": "c", "title": "Quiet day", "topics": []},
    ]
    report = evaluate(records, topics)
    assert (report.per_topic["war"].tp, report.per_topic["war"].fp) == (1, 1)
    assert report.none_accuracy == 0.5
    assert [m.id for m in report.mistakes] == ["b"]


def test_labels_without_text_are_joined_to_a_corpus_by_id() -> None:
    joined, missing = join_corpus([{"id": "x", "topics": []}, {"id": "y", "topics": []}], {"x": "A headline"})
    assert joined == [{"id": "x", "topics": [], "title": "A headline"}]
    assert missing == ["y"]


def test_agreement_scores_a_second_annotator_against_the_first_on_shared_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "topics": ["strikes"]}, {"id": "b", "topics": []}, {"id": "c", "topics": ["talks"]},
        {"id": "only-first", "topics": ["talks"]},
    ]))
    second.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "topics": ["strikes", "humanitarian"]}, {"id": "b", "topics": []}, {"id": "c", "topics": []},
    ]))
    assert main([str(first), "--agreement", str(second)]) == 0
    out = capsys.readouterr().out
    assert "3 items" in out  # only the ids both labelled
    assert "no-topic accuracy: 1.000 (1/1)" in out
    assert "exact match: 1/3" in out
    report = compare_labels([{"id": "a", "topics": ["strikes"]}], [{"id": "a", "topics": ["strikes"]}])
    assert report.macro_f1 == 1.0


def _panel_sets() -> dict[str, list[dict[str, object]]]:
    x = {"id": "x", "title": "Attack on the port"}
    y = {"id": "y", "title": "Quiet day"}
    z = {"id": "z", "title": "Shark attack"}
    return {
        "a.jsonl": [{**x, "topics": ["war"]}, {**y, "topics": []}, {**z, "topics": []},
                    {"id": "w", "title": "Only one set labelled this", "topics": ["war"]}],
        "b.jsonl": [{**x, "topics": ["war"]}, {**y, "topics": []}, {**z, "topics": []}],
        "c.jsonl": [{**x, "topics": ["war"]}, {**y, "topics": ["war"]}, {**z, "topics": []}],
    }


def test_a_panel_scores_each_annotator_and_the_classifier_against_the_others_majority(tmp_path: Path) -> None:
    topics = load_topics(write_topics(tmp_path, "topics:\n  war:\n    phrases:\n      0.9: [attack]\n"))
    rows = {row.name: row for row in panel(_panel_sets(), topics)}
    # c alone put "Quiet day" on topic; for a and b that item's majority is 1 of 2 others: no topic
    assert rows["c.jsonl"].annotator.per_topic["war"].fp == 1
    assert rows["a.jsonl"].annotator.macro_f1 == 1.0
    assert rows["a.jsonl"].annotator.items == 3  # "w": no other set labelled it
    # the classifier calls the shark attack war, against every majority
    assert all(rows[n].classifier.per_topic["war"].fp == 1 for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    pooled = rows["pooled"]
    assert (pooled.annotator.per_topic["war"].tp, pooled.annotator.per_topic["war"].fp) == (3, 1)
    assert (pooled.classifier.per_topic["war"].tp, pooled.classifier.per_topic["war"].fp) == (3, 3)
    assert [m.id for m in pooled.classifier.mistakes] == ["z", "z", "z"]


def test_cli_panel_prints_a_row_per_set_and_needs_enough_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = write_topics(tmp_path, "topics:\n  war:\n    phrases:\n      0.9: [attack]\n")
    files = []
    for name, records in _panel_sets().items():
        files.append(tmp_path / name)
        files[-1].write_text("\n".join(json.dumps(r) for r in records))
    assert main([*map(str, files), "--panel", "--topics", str(topics)]) == 0
    out = capsys.readouterr().out
    assert "c.jsonl" in out and "pooled" in out and "[z] majority - got ['war']" in out
    assert main([*map(str, files[:2]), "--panel", "--topics", str(topics)]) == 2
    assert "--panel needs at least 3 label files" in capsys.readouterr().err


def test_cli_prints_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SMALL_EVAL), "--topics", str(TOPICS_FILE)]) == 0
    assert "macro-F1" in capsys.readouterr().out


def test_cli_names_an_unusable_labels_file_without_calling_it_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent, broken = tmp_path / "absent.jsonl", tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "title": "t", "topics": []}\nnot json\n')
    assert main([str(absent)]) == 2
    assert f"cannot use {absent}:\n  cannot read the file" in capsys.readouterr().err
    assert main([str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"cannot use {broken}:\n  line 2: not JSON" in err
    assert "configuration" not in err


def test_cli_scores_paragraph_labels_and_leaves_out_boilerplate_and_ambiguous_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An article's paragraphs labelled line by line: text without a title, and lines marked boilerplate
    or ambiguous, which are no labelled items."""
    labels = tmp_path / "paragraphs.jsonl"
    labels.write_text("\n".join(json.dumps(r) for r in [
        {"line": 1, "text": "Missile strike on a mall kills 18 civilians", "topics": ["strikes", "humanitarian"]},
        {"line": 2, "text": "Subscribe to our newsletter", "boilerplate": True},
        {"line": 3, "text": "Officials are weighing their options", "ambiguous": True},
        {"line": 4, "text": "The city council approved the new budget", "topics": []},
    ]))
    assert main([str(labels), "--topics", str(TOPICS_FILE)]) == 0
    out = capsys.readouterr().out
    assert "\n2 items, topics:" in "\n" + out
    assert "exact match: 2/2" in out
    # with a corpus for id-only labels too: an item with its own text is kept
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "x", "title": "unrelated"}))
    assert main([str(labels), "--topics", str(TOPICS_FILE), "--corpus", str(corpus)]) == 0
    assert "\n2 items, topics:" in "\n" + capsys.readouterr().out


# --- the indexed scan finds what the plain alternation finds ---------------------------------------


def _scan_texts() -> list[str]:
    titles = [json.loads(line)["title"] for line in SMALL_EVAL.read_text(encoding="utf-8").splitlines() if line]
    odd = [
        "Strik", "ceasef", "air-strike", "AIRSTRIKES on Kyiv", "Übergriff: Raketenangriff auf Kyjiw, missile strike",
        "shelling\u2019s toll", "peace talk", "x", "", "missile strikes" + "é", "talks\u00a0in Istanbul",
        "Zaporizhzhia nuclear plant shelled; IAEA warns", "evacuation corridor from Mariupol opened",
        # a later word of a phrase glued to the one before, or with a character that is not ASCII but matches
        # an ASCII letter (the Kelvin sign, a long s): no key at a word start stands for it
        "peacetalks resume", "peace-talks resume", "peace tal\u212as resume", "missile \u017ftrikes on Kyiv",
        "Russian troops \u017fhell Kharkiv", "ceasefire talks", "cease-fire TALKS", "talks' collapse",
    ]
    return titles + odd + [f"{a} {b}" for a, b in zip(titles, reversed(titles), strict=True)]


def test_every_scanner_finds_what_its_full_alternation_finds(tmp_path: Path) -> None:
    """A scanner tries, per word start, only the alternatives that can begin there (worker/scanning.py);
    a fresh topic set per pass, so the first pass fills every lookup cache and the second reads them."""
    fresh = load_topics(TOPICS_FILE)
    dispatch = fresh._dispatch
    assert any(s.indexed for s in dispatch.scanners)
    for _ in range(2):
        for text in _scan_texts():
            places = dispatch.places(text)
            for slot, scanner in enumerate(dispatch.scanners):
                expected = [(m.span(), m.lastgroup) for m in scanner.pattern.finditer(text)]
                found = [(m.span(), m.lastgroup) for m in scanner.scan(text, places, slot)]
                assert found == expected, (text, slot)


_ASCII_EDGES = [
    "", " ", "x", "a b", "a  b", "a, b", "--x", "x--", "a__b _c d_", "2022-03-01: 5,000 km", "a\nb\tc\r\n",
    "\"Peace talks\" (again)!", "U.S.-Russia talks?", "shell...", "A.B.C", "e-mail: x@y.z", "...",
]


@pytest.mark.parametrize("text", _ASCII_EDGES)
def test_ascii_word_starts_are_where_the_lookbehind_matches(text: str) -> None:
    """Places in ASCII text are found by splitting bytes (worker/scanning.py, word_starts), not by the regex
    "(?<!\\w)": the same positions, underscores and digits being word characters."""
    assert word_starts(text) == [m.start() for m in WORD_START.finditer(text)]


def test_ascii_places_are_those_the_general_walk_finds() -> None:
    """The ASCII path of ``places`` (split bytes, look keys up in bulk) against the walk used for other text."""
    fresh = load_topics(TOPICS_FILE)
    dispatch = fresh._dispatch
    texts = [t for t in [*_scan_texts(), *_ASCII_EDGES] if t.isascii()]
    for _ in range(2):  # the first pass fills the lookup cache, the second reads it
        for text in texts:
            places = dispatch.places(text)
            assert places.at == dispatch._places_any(text).at, text
            low = text.lower()
            assert places.keys == {low[m.start() : m.start() + 4] for m in WORD_START.finditer(text)}


def test_an_indexed_scanner_compiles_its_whole_alternation_only_when_asked() -> None:
    """Loading leaves the whole alternations uncompiled (a third of the load time): an indexed scanner tries its
    alternatives one by one. Asked for, the pattern is compiled once."""
    fresh = load_topics(TOPICS_FILE)
    scanners = [s for s in fresh._dispatch.scanners if s.indexed]
    assert scanners and all(s._pattern is None for s in scanners)
    pattern = scanners[0].pattern
    assert pattern is scanners[0].pattern and pattern.flags & re.IGNORECASE


def _required(regex: str) -> frozenset[str] | None:
    return Scanner([regex], 0)._requirement(0)


@pytest.mark.parametrize(("regex", "keys"), [
    (r"peace[\"']?[\s\-]+[\"']?talks?", {"talk"}),
    (r"peace[\s\-]+(?:talks|deal|plan)", {"talk", "deal", "plan"}),
    # the smallest set of keys found: each later word must be there
    (r"(?:russian|ukrainian)[\s\-]+(?:forces|troops)[\s\-]+shell\w*", {"shel"}),
    (r"cease\w*fire", None),  # "fire" may follow a word character: no word start there
    (r"air[\s\-]?strikes?", None),  # "airstrikes": the separator is optional
    (r"peace(?:[\s\-]+deal)?", None),  # the later word is optional
    (r"talks[\s\-]+in", None),  # the later word is shorter than a key
    (r"talks[\s\-]+(?:" + "|".join(f"w{n:03d}x" for n in range(40)) + ")", None),  # more keys than a look-up saves
])
def test_an_alternative_requires_the_keys_of_its_later_words(regex: str, keys: set[str] | None) -> None:
    """A scanner skips an alternative in a text without a word starting with one of these (worker/scanning.py,
    _requirement); a set too big is no requirement, so a wrong one would lose matches."""
    assert _required(regex) == (frozenset(keys) if keys is not None else None)


def test_the_topic_rules_have_requirements_that_skip_most_failing_tries() -> None:
    """The shipped rules: many alternatives have a requirement, and a text without their later words skips
    them (a scan still finds what the full alternation finds: the test above)."""
    fresh = load_topics(TOPICS_FILE)
    scanners = [s for s in fresh._dispatch.scanners if s.indexed]
    required = [s._requirement(i) for s in scanners for i in range(len(s.alternatives))]
    assert sum(r is not None for r in required) >= len(required) // 3
    assert all(len(r) <= 32 and all(len(k) == 4 for k in r) for r in required if r is not None)
    places = fresh._dispatch.places("Russian troops shell the city")
    assert places.keys is not None and {"russ", "troo", "shel", "the ", "city"} <= places.keys
    assert fresh._dispatch.places("Russian troops shell Kyjiw\u2019s centre").keys is None  # not ASCII: never skips


def test_a_town_turned_into_ruins_is_strikes(topics: TopicSet) -> None:
    """One word may stand between the verb and "into": the phrase's one-word wildcard, not a literal."""
    assert "strikes" in topics_of("Invaders turned Popasna into ruins, regional governor says", topics)


def test_talks_that_show_signs_of_progress_are_no_talk_show(topics: TopicSet) -> None:
    assert "talks" in topics_of("Moscow-Kyiv talks show signs of progress, envoys say", topics)


def test_how_the_talks_are_going_is_talks(topics: TopicSet) -> None:
    """Statements about the state of diplomacy: the guide's example of an item that is talks and strikes."""
    assert "talks" in topics_of("Signals from the talks are positive, but the explosions have not stopped", topics)


def test_civilians_escaping_a_besieged_city_are_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Families recount their escape from besieged Chernihiv", topics)


def test_a_strike_told_from_what_the_attackers_did_before_it_is_strikes(topics: TopicSet) -> None:
    title = "Russian forces waited until people arrived for work at the plant before striking it, the governor said"
    assert "strikes" in topics_of(title, topics)


def test_what_leaders_make_of_the_other_sides_offer_is_talks(topics: TopicSet) -> None:
    """A statement about the state of diplomacy, without the word "talks"."""
    assert "talks" in topics_of("Allies voice skepticism about Moscow's pledge to scale back near the capital", topics)


def test_a_civilian_kidnapped_and_killed_in_a_crisis_country_is_humanitarian(topics: TopicSet) -> None:
    """Abductions and civilians killed count outside Ukraine too, where a country is in crisis."""
    assert "humanitarian" in topics_of("Well-known teacher kidnapped, killed in western Afghanistan town", topics)


def test_a_girl_freed_by_prosecutors_after_killing_her_attacker_is_not_humanitarian(topics: TopicSet) -> None:
    title = "Somalia prosecutors order release of a girl who killed a driver who tried to rob her"
    assert "humanitarian" not in topics_of(title, topics)


def test_artillery_landing_next_to_a_vehicle_is_strikes(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Russian artillery lands next to a Ukrainian armoured car near Izium", topics)


def test_a_pilot_shot_down_in_a_past_war_is_not_strikes(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Navy pilot shot down over the Pacific in World War II is identified", topics)


def test_a_matter_discussed_with_another_sides_leader_is_talks(topics: TopicSet) -> None:
    title = "President says the border question is for Kyiv to settle after discussing the matter with Putin"
    assert "talks" in topics_of(title, topics)


def test_lawmakers_meeting_another_countrys_officials_are_talks_but_a_trade_mission_is_not(topics: TopicSet) -> None:
    assert "talks" in topics_of("Three US senators meet with top officials in Taiwan on surprise trip", topics)
    assert "talks" not in topics_of("Lawmakers meet with trade officials in Canada to discuss lumber tariffs", topics)


def test_a_leaders_visit_to_a_city_at_home_is_not_talks(topics: TopicSet) -> None:
    assert "talks" not in topics_of("Biden to visit factory town to talk jobs and infrastructure", topics)


def test_people_displaced_by_a_building_accident_are_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Dozens of families displaced after apartment building collapse", topics) == []


def test_one_persons_court_fight_against_deportation_is_not_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Chef fights deportation in court after visa mix-up", topics) == []
    assert "humanitarian" in topics_of("Occupying forces deported thousands of residents, mayor says", topics)


def test_a_battle_told_by_its_length_is_strikes(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Paratroopers from Lviv outlast the Pskov blue berets after a 14-hour battle", topics)
    assert "strikes" not in topics_of("Firefighters win 14-hour battle with warehouse blaze", topics)


def test_a_whole_unit_wiped_out_is_strikes(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Defenders wipe out almost the entire 4th guards tank army group", topics)


def test_the_enemys_equipment_destroyed_is_strikes_but_not_in_a_video_game(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Navy destroys a dozen enemy boats off the coast", topics)
    assert "strikes" not in topics_of("Gamer destroys enemy boats in new level of the video game", topics)


def test_a_killing_in_a_military_operation_is_strikes(topics: TopicSet) -> None:
    assert "strikes" in topics_of("US forces kill militant commander in military operation in Somalia", topics)


def test_a_strikes_aftermath_called_a_war_crime_is_strikes(topics: TopicSet) -> None:
    """The guide's own example: "strike on mall a war crime"."""
    assert "strikes" in topics_of("G7 says Putin will answer for the shopping mall 'war crime'", topics)


def test_helping_aim_strikes_is_the_story_not_the_strikes(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Woman detained for spotting artillery fire for the enemy in Kharkiv", topics)


def test_an_alliance_set_to_agree_at_its_summit_is_talks(topics: TopicSet) -> None:
    assert "talks" in topics_of("NATO set to agree new defence plan for its eastern flank", topics)


def test_the_geneva_conventions_and_captives_are_humanitarian(topics: TopicSet) -> None:
    title = "Moscow says Geneva Conventions would not cover captured foreign fighters"
    assert "humanitarian" in topics_of(title, topics)


def test_a_governments_peace_policy_is_not_talks(topics: TopicSet) -> None:
    title = "Austria keeps blocking arms exports to Ukraine under its new foreign 'peace' policy"
    assert "talks" not in topics_of(title, topics)


def test_people_giving_up_on_reaching_the_eu_are_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Hundreds of Syrians fly home from Belarus, giving up their bid to reach the EU",
                                       topics)


def test_a_plan_to_end_world_hunger_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("UN answers billionaire with a plan to tackle world hunger", topics)


def test_refuge_given_to_a_person_is_humanitarian_but_not_to_animals(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Former interpreter is given refuge in Spain", topics)
    assert topics_of("Rescued dogs given refuge at a farm sanctuary", topics) == []


def test_forces_bogged_down_where_they_fight_are_strikes(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Russian troops are bogged down near Izium, analysts say", topics)


def test_a_battlefield_told_by_the_armys_dead_is_strikes(topics: TopicSet) -> None:
    title = "The Kharkiv suburb has become a mass grave for the enemy army, commander says"
    assert "strikes" in topics_of(title, topics)


def test_food_dropped_for_disaster_victims_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Army helicopters drop food for Indian flood victims", topics)
    assert topics_of("Volunteers deliver meals to homeless people at Christmas", topics) == []


def test_someone_kidnapped_in_africa_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Wife of engineer kidnapped in Africa pleads for his release", topics)


def test_a_military_site_blown_up_or_bombed_is_strikes_but_not_a_plot_a_threat_or_a_dam(topics: TopicSet) -> None:
    """The guide: explosions at military sites, with or without a war around them."""
    assert "strikes" in topics_of("Agents blew up one of the most guarded nuclear facilities in the desert", topics)
    assert "strikes" in topics_of("Spies tricked engineers into helping bomb their own nuclear plant", topics)
    assert "strikes" not in topics_of("Minister threatens to have the enemy's nuclear plant bombed", topics)
    assert "strikes" not in topics_of("Teenager jailed for a plot to blow up a military base in a video game",
                                      topics)
    assert "strikes" not in topics_of("Town blew up an old hydro dam to bring the salmon back", topics)


def test_aid_told_from_the_foods_side_is_humanitarian_in_a_crisis_or_a_war_only(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Militiamen loot food sent to poor families in Yemen", topics)
    assert "humanitarian" in topics_of("Rebels seize medicine meant for the poorest village children", topics)
    assert "humanitarian" not in topics_of("Cafeteria food sent to students at an Ohio school goes cold", topics)
    assert "humanitarian" not in topics_of("Meals sent to families of a football club's staff", topics)


def test_a_statement_on_the_iran_nuclear_deal_is_talks_but_not_a_reactor_contract(topics: TopicSet) -> None:
    assert "talks" in topics_of("Gulf states say they will not accept a revived Iran nuclear deal", topics)
    assert "talks" not in topics_of("Utility signs nuclear deal to build two reactors in Poland", topics)


def test_many_people_missing_amid_armed_violence_is_humanitarian_but_not_money_or_a_disaster(
    topics: TopicSet,
) -> None:
    assert "humanitarian" in topics_of("Dozens go missing in northern Mali as jihadists raid villages", topics)
    assert "humanitarian" in topics_of("Hundreds of villagers missing after militants attack market", topics)
    assert "humanitarian" not in topics_of("Millions went missing from the state oil company, auditor says", topics)
    assert "humanitarian" not in topics_of("Hundreds missing after floods sweep through villages", topics)
    assert "humanitarian" not in topics_of("Dozens of soldiers missing after the battle for the bridge", topics)


def test_a_navys_firefight_with_pirates_is_strikes_but_not_a_navy_football_fight(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Italian navy kills three pirates in firefight off Somalia", topics)
    assert "strikes" in topics_of("Pirates exchange gunfire with a navy frigate in the Gulf of Aden", topics)
    assert "strikes" not in topics_of("Navy fighting for a bowl game after a late touchdown", topics)
    assert "strikes" not in topics_of("Navy divers practise a firefight drill in a harbour exercise", topics)


def test_eu_candidate_status_is_talks_but_not_moscows_warning_about_it(topics: TopicSet) -> None:
    assert "talks" in topics_of("EU summit grants Moldova candidate status", topics)
    assert "talks" not in topics_of("Kremlin warns candidate status for Georgia will have grave consequences", topics)


def test_families_selling_children_to_eat_is_humanitarian_but_not_a_trafficking_trial(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Parents in Yemen sell their daughters to buy food", topics)
    assert "humanitarian" in topics_of("Selling a baby to survive: a mother's choice in the famine", topics)
    assert "humanitarian" not in topics_of("Couple charged with trying to sell their baby online, police say", topics)
    assert "humanitarian" not in topics_of("Toy maker sold children's bikes with faulty brakes", topics)


def test_a_soldiers_toll_from_a_battle_is_strikes_but_a_toll_of_the_whole_war_is_not(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Ukrainian forces kill 80 Russian soldiers near Izium on Tuesday", topics)
    assert "strikes" in topics_of("Russian colonel killed near Kherson, officials confirm", topics)
    assert "strikes" not in topics_of("40,000 Russian soldiers have been killed in Ukraine, London estimates", topics)
    assert "strikes" not in topics_of("Russian troop deaths pass 50,000, analysts say", topics)
    assert "strikes" not in topics_of("Admiral replaced due to heavy losses in the Black Sea fleet", topics)


def test_people_sent_to_rwanda_under_the_uk_plan_is_humanitarian_but_not_a_trade_flight(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Channel arrivals could be flown to Rwanda within weeks, minister says", topics)
    assert "humanitarian" in topics_of("Court halts the first Rwanda deportation flight", topics)
    assert "humanitarian" not in topics_of("Airline adds direct flights to Rwanda for tourists this summer", topics)


def test_walking_out_of_a_security_council_meeting_is_talks_but_not_a_class_walkout(topics: TopicSet) -> None:
    assert "talks" in topics_of("Russia's ambassador walks out of a security council session", topics)
    assert "talks" in topics_of("Minister storms out of the peace talks in Geneva", topics)
    assert "talks" not in topics_of("Students walk out of class to protest the new dress code", topics)


def test_a_withdrawal_is_a_troop_movement_but_ground_retaken_in_a_battle_is_strikes(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Russia says it has withdrawn from the island as a goodwill gesture", topics)
    assert "strikes" not in topics_of("Ukraine's flag raised again on Snake Island, army says", topics)
    assert "strikes" in topics_of("Ukrainian forces retake Snake Island after days of shelling", topics)


def test_air_raid_sirens_are_a_warning_but_air_raids_are_strikes(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Thousands mourn the activist in Kyiv as air-raid sirens wail", topics)
    assert "strikes" not in topics_of("Lviv residents spend the night in air raid shelters", topics)
    assert "strikes" in topics_of("Air raids pound Kharkiv for a third night", topics)


def test_growing_partisan_activity_is_strikes_even_with_a_could_about_its_effect(topics: TopicSet) -> None:
    title = "Increased partisan activity in occupied Melitopol could force the Russians to pull back"
    assert "strikes" in topics_of(title, topics)
    assert "strikes" not in topics_of("Increased partisan activity in Congress stalls the budget", topics)
    assert "strikes" not in topics_of("Russians fear increased partisan activity if Kherson falls", topics)


def test_a_leader_on_the_battlefront_of_a_war_is_strikes_but_not_a_culture_war(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Prime minister joins troops on the battlefront of the civil war", topics)
    assert "strikes" not in topics_of("Governor on the battlefront of the culture war over books", topics)


def test_a_famine_only_foretold_is_not_humanitarian_but_a_famine_under_way_is(topics: TopicSet) -> None:
    assert "humanitarian" not in topics_of('Pundit says "now the famine will start and sanctions will go"', topics)
    assert "humanitarian" in topics_of("Famine spreads across the north as aid is blocked", topics)


def test_settlers_attacks_are_not_strikes_but_an_armys_attacks_are(topics: TopicSet) -> None:
    assert "strikes" not in topics_of("Minister says attacks by Israeli settlers on villages are terrorism", topics)
    assert "strikes" in topics_of("Israeli army attacks militant positions in Gaza overnight", topics)


def test_a_government_lobbying_or_a_leader_pressing_anothers_leader_is_talks(topics: TopicSet) -> None:
    assert "talks" in topics_of("Canadian government lobbies US officials over the detained pair", topics)
    assert "talks" in topics_of("Macron will press the German chancellor on gas", topics)
    assert "talks" not in topics_of("Drug makers lobby US officials on price caps", topics)
    assert "talks" not in topics_of("Tenants will press the landlord on repairs", topics)


def test_a_border_crisis_beside_a_troop_buildup_is_not_humanitarian_but_one_of_migrants_is(
    topics: TopicSet,
) -> None:
    assert "humanitarian" not in topics_of("Kremlin under pressure over Belarus border crisis and troop buildup",
                                           topics)
    assert "humanitarian" in topics_of("Poland says migrants pushed across in Belarus border crisis", topics)


def test_approving_the_immigration_of_a_community_is_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Cabinet approves immigration of 3,000 Ethiopian Jews", topics)
    assert "humanitarian" not in topics_of("Cabinet approves a new immigration office in the capital", topics)


def test_candidate_status_granted_by_leaders_is_talks_but_not_an_opinion_or_a_call_for_it(topics: TopicSet) -> None:
    assert "talks" in topics_of("EU leaders to grant Georgia candidate status", topics)
    assert "talks" not in topics_of("European Commission adopts an opinion on Georgia's candidate status", topics)
    assert "talks" not in topics_of("Prime minister calls for EU candidate status for three countries", topics)


def test_heavy_weapons_starting_to_tell_is_strikes_despite_an_if_in_another_clause(topics: TopicSet) -> None:
    title = "Kremlin says the West risks retribution if it arms Kyiv; heavy weapons start to have an impact"
    assert "strikes" in topics_of(title, topics)
    assert "strikes" not in topics_of("Heavy weapons could start to have an impact in the war, analysts hope",
                                      topics)


def test_residents_towns_wiped_off_the_map_is_humanitarian_but_not_a_storms(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Villagers say the shelling is wiping their homes off the map", topics)
    assert "humanitarian" not in topics_of("Residents say the hurricane wiped their town off the map", topics)


def test_a_parliaments_vote_on_membership_is_not_talks_but_governments_agreeing_is(topics: TopicSet) -> None:
    assert "talks" not in topics_of("European Parliament overwhelmingly approves EU candidacy for Georgia", topics)
    assert "talks" not in topics_of("Lawmakers approve Moldova's EU membership application", topics)
    assert "talks" in topics_of("EU leaders approve candidacy status for Georgia at the summit", topics)


def test_missiles_on_civilian_targets_are_strikes_but_casualties_are_humanitarian(topics: TopicSet) -> None:
    assert topics_of("Dozens of cruise missiles rain on civilian targets overnight", topics) == ["strikes"]
    assert "humanitarian" in topics_of("Shelling of the city causes heavy civilian casualties", topics)


def test_governments_telling_nato_together_what_to_do_is_talks_but_not_fans(topics: TopicSet) -> None:
    assert "talks" in topics_of("Russia and Iran tell NATO to halt its expansion eastwards", topics)
    assert "talks" not in topics_of("Fans tell the coach to stop the rotation", topics)


def test_people_killed_in_a_terror_attack_of_a_conflict_are_humanitarian_but_not_a_plot(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Hamas gunman wounds three in terror shooting near a West Bank bus stop",
                                       topics)
    assert "humanitarian" not in topics_of("Police foil terror attack plot in Gaza, two suspects held", topics)
    assert "humanitarian" not in topics_of("Two killed in shooting at a mall, police rule out terror attack", topics)


def test_a_genocide_probe_or_court_case_is_not_humanitarian_but_the_deportations_it_examines_are(
        topics: TopicSet) -> None:
    # Proceedings about a genocide are not what happens to civilians (guide; 1 label of 7 said humanitarian).
    assert "humanitarian" not in topics_of("Prosecutors open genocide probe into Russian forces", topics)
    assert "humanitarian" not in topics_of("Court in Buenos Aires to hear war genocide case", topics)
    assert "humanitarian" in topics_of("Investigators examine deportation of children from occupied towns", topics)


def test_an_effort_to_uncover_war_crimes_is_not_humanitarian_but_war_crimes_found_are(topics: TopicSet) -> None:
    assert "humanitarian" not in topics_of("Veteran prosecutor to head new team to investigate war crimes in Ukraine",
                                           topics)
    assert "humanitarian" in topics_of("Investigators say they have evidence of hundreds of war crimes in Ukraine",
                                       topics)


# --- traps QA found in the thirty-fifth session (headlines written for the tests) -------------------


@pytest.mark.parametrize(
    "title",
    [
        "Bomb threat forces evacuation of school in Texas",
        "Storm forces evacuation of coastal towns in Florida",
        "Wildfire forces evacuation of thousands in California",
        "Government forces evacuation of flood-hit villages in Pakistan",
    ],
)
def test_a_hazard_that_forces_an_evacuation_is_neither_strikes_nor_humanitarian(topics: TopicSet, title: str) -> None:
    """"forces" the verb read as armed forces, "storm" as storming a town, "flood-hit" as a hit."""
    assert topics_of(title, topics) == []


def test_an_evacuation_forced_by_shelling_is_still_humanitarian(topics: TopicSet) -> None:
    assert "humanitarian" in topics_of("Russian shelling forces evacuation of civilians from Kharkiv suburbs", topics)


@pytest.mark.parametrize(
    "title",
    [
        "Anti-war protesters attack government's budget",
        "Election rivals attack each other over war record in TV debate",
    ],
)
def test_attacks_in_words_near_the_word_war_are_not_strikes(topics: TopicSet, title: str) -> None:
    assert topics_of(title, topics) == []


@pytest.mark.parametrize(
    "title",
    [
        "Zelensky says Russia will launch new offensive in the spring",
        "Ukraine braces for Russian attack on Independence Day",
        "Russia says it will strike Western arms shipments",
        "Missile strike on Dnipro feared as air raid sirens sound",
    ],
)
def test_an_attack_announced_braced_for_or_feared_is_not_strikes(topics: TopicSet, title: str) -> None:
    assert "strikes" not in topics_of(title, topics)


def test_an_attack_that_happened_is_strikes_beside_the_ones_foretold(topics: TopicSet) -> None:
    assert "strikes" in topics_of("Russian missiles hit Dnipro as air raid sirens sound", topics)
    assert "strikes" in topics_of("Dozens feared dead after missile strike on Dnipro", topics)


@pytest.mark.parametrize("title", ["Russian forces shell Kharkiv suburbs", "Russian troops shell Kharkiv overnight"])
def test_shell_the_verb_after_armed_forces_is_strikes_but_not_the_oil_company(topics: TopicSet, title: str) -> None:
    assert "strikes" in topics_of(title, topics)
    assert topics_of("Ukraine war: Shell to stop buying Russian oil", topics) == []
