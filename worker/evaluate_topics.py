"""Evaluate the topic classifier against labelled items.

Labelled items are JSON lines ``{"id": ..., "title": ..., "text": ..., "topics": [...]}``; ``text`` is
optional. A label file may also hold only ``{"id", "topics"}`` and take its text from a corpus of
headlines (``--corpus``, JSON lines with ``id`` and ``title``), so that labels can live in the repo
without the headlines they describe.

Usage::

    python -m worker.evaluate_topics FILE [FILE ...] [--topics config/topics.yaml] [--corpus headlines.jsonl]
    python -m worker.evaluate_topics FILE FILE FILE ... --panel [--min-others 2] [--corpus headlines.jsonl]

Several files are scored as one pooled set. With ``--panel`` each file is one annotator's labels: each
annotator, and the classifier, is scored against the majority of the *other* files' labels of the same
items, which says how close the classifier comes to a careful human reader of the guide.

``evaluate`` is pure (records in, report out); ``format_report`` renders it; ``main`` is the CLI shell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, Field

from livebrief.errors import BadLineError, DataFileError, LivebriefError
from livebrief.jsonlines import numbered_lines, optional_string, parse_object, string_list
from worker.classify import TopicSet, classify, load_topics

__all__ = [
    "EvalReport",
    "LabelledItem",
    "PanelRow",
    "evaluate",
    "panel",
    "format_report",
    "join_corpus",
    "load_records",
    "main",
]

log = structlog.get_logger(__name__)

DEFAULT_TOPICS = Path(__file__).resolve().parent.parent / "config" / "topics.yaml"
_CALIBRATION_EDGES = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001)


class LabelledItem(BaseModel):
    id: str = ""
    title: str
    text: str = ""
    topics: list[str] = Field(default_factory=list)


class TopicScores(BaseModel):
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: bool, predicted: bool) -> None:
        if expected and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif expected:
            self.fn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


class Mistake(BaseModel):
    id: str
    title: str
    expected: list[str]
    predicted: list[str]
    scores: dict[str, float]
    evidence: dict[str, list[str]]


class CalibrationBin(BaseModel):
    low: float
    high: float
    count: int = 0
    positives: int = 0
    mean_score: float = 0.0


class EvalReport(BaseModel):
    items: int
    topics: list[str]
    per_topic: dict[str, TopicScores]
    none_items: int
    none_correct: int
    exact_matches: int
    mistakes: list[Mistake]
    calibration: list[CalibrationBin]
    # Topics the classifier assigned that were not scored (no label uses them, or not chosen), and to how many
    # items: shown, so that its false positives there are not hidden.
    unscored: dict[str, int] = {}

    @property
    def macro_f1(self) -> float:
        if not self.per_topic:
            return 0.0
        return sum(s.f1 for s in self.per_topic.values()) / len(self.per_topic)

    @property
    def none_accuracy(self) -> float:
        return self.none_correct / self.none_items if self.none_items else 1.0


# --- loading ---------------------------------------------------------------------------------------


def load_records(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines; blank lines are skipped. Raises ``DataFileError`` naming every bad line."""
    records, problems = _numbered_records(path)
    if problems:
        raise _bad_lines(path, problems)
    return [record for _, record in records]


def _numbered_records(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, str]]:
    """``(line number, object)`` per line that is not blank, and the problem of each line that is no JSON
    object, by line number (every one of them, so that a file is fixed in one pass). Raises
    ``DataFileError`` if the file cannot be read."""
    records: list[tuple[int, dict[str, Any]]] = []
    problems: dict[int, str] = {}
    try:
        with path.open("rb") as lines:
            for number, raw in numbered_lines(lines):
                try:
                    records.append((number, parse_object(raw)))
                except BadLineError as exc:
                    problems[number] = exc.message
    except OSError as exc:
        raise DataFileError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return records, problems


def _bad_lines(path: Path, problems: dict[int, str]) -> DataFileError:
    return DataFileError(str(path), [f"line {number}: {problem}" for number, problem in sorted(problems.items())])


def _unlabelled(record: Mapping[str, Any]) -> bool:
    # Lines marked boilerplate or ambiguous (as in the seed article's paragraph labels) are no labelled
    # items: the annotation guide leaves ambiguous items out of evaluation sets.
    return bool(record.get("boilerplate") or record.get("ambiguous"))


def load_labels(path: Path, topics: TopicSet | None, keep_unlabelled: bool = False) -> list[dict[str, Any]]:
    """A label file's items, each checked: ``id`` a string or number, ``title`` and ``text`` strings,
    ``topics`` a list of names (of ``topics`` when given). Lines marked boilerplate or ambiguous need no
    ``topics`` and are left out unless ``keep_unlabelled``. Raises ``DataFileError`` listing every bad line,
    or saying the file holds no labelled item: figures from part of a file, or from none, would mislead."""
    numbered, problems = _numbered_records(path)
    records: list[dict[str, Any]] = []
    for number, record in numbered:
        try:
            _check_label(record, topics)
        except BadLineError as exc:
            problems[number] = exc.message
            continue
        if keep_unlabelled or not _unlabelled(record):
            records.append(record)
    if problems:
        raise _bad_lines(path, problems)
    if all(_unlabelled(r) for r in records):
        raise DataFileError(str(path), ["no labelled items (JSON lines of 'id', 'title' or 'text', and 'topics')"])
    return records


def _check_label(record: Mapping[str, Any], topics: TopicSet | None) -> None:
    """Raise ``BadLineError`` unless ``record`` is a label line; its topics must be of ``topics`` if given."""
    item_id = record.get("id")
    if item_id is not None and (isinstance(item_id, bool) or not isinstance(item_id, str | int)):
        raise BadLineError("'id' must be a string or a number")
    optional_string(record, "title")
    optional_string(record, "text")
    if _unlabelled(record) and "topics" not in record:
        return
    labels = string_list(record, "topics")
    unknown = [t for t in labels if t not in topics.names] if topics is not None else []
    if topics is not None and unknown:
        raise BadLineError(f"no topic {', '.join(map(repr, unknown))} in {topics.source} "
                           f"(its topics: {', '.join(topics.names)})")


def join_corpus(
    records: Iterable[Mapping[str, Any]], corpus: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Fill in ``title`` from ``corpus`` (id -> title) where a record has none.

    Returns the joined records and the ids that were not found (those records are dropped, unless they
    carry a text of their own).
    """
    joined: list[dict[str, Any]] = []
    missing: list[str] = []
    for record in records:
        if record.get("title"):
            joined.append(dict(record))
        elif str(record.get("id")) in corpus:
            joined.append({**record, "title": corpus[str(record["id"])]})
        elif record.get("text"):
            joined.append(dict(record))
        else:
            missing.append(str(record.get("id")))
    return joined, missing


def _load_corpus(path: Path) -> dict[str, str]:
    corpus: dict[str, str] = {}
    numbered, problems = _numbered_records(path)
    for number, record in numbered:
        try:
            if "id" in record:
                corpus[str(record["id"])] = optional_string(record, "title")
        except BadLineError as exc:
            problems[number] = exc.message
    if problems:
        raise _bad_lines(path, problems)
    return corpus


# --- evaluation ------------------------------------------------------------------------------------


def _as_items(path_or_records: Path | str | Iterable[Mapping[str, Any]]) -> list[LabelledItem]:
    if isinstance(path_or_records, str | Path):
        records: Iterable[Mapping[str, Any]] = load_records(Path(path_or_records))
    else:
        records = path_or_records
    items = []
    for record in records:
        items.append(
            LabelledItem(
                id=str(record.get("id", "")),
                title=str(record.get("title", "")),
                text=str(record.get("text") or ""),
                topics=list(record.get("topics") or []),
            )
        )
    return items


class _Tally:
    """Counts shared by both comparisons: per-topic tp/fp/fn, no-topic accuracy, exact matches."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.per_topic = {name: TopicScores() for name in names}
        self.none_items = self.none_correct = self.exact = 0
        self.mistakes: list[Mistake] = []

    def add(self, expected: set[str], predicted: set[str]) -> bool:
        """Count one item; True when the labels match exactly (otherwise the caller records the mistake)."""
        for name, counts in self.per_topic.items():
            counts.add(name in expected, name in predicted)
        if not expected:
            self.none_items += 1
            self.none_correct += not predicted
        if expected == predicted:
            self.exact += 1
            return True
        return False

    def report(self, items: int, calibration: list[CalibrationBin]) -> EvalReport:
        return EvalReport(items=items, topics=self.names, per_topic=self.per_topic, none_items=self.none_items,
                          none_correct=self.none_correct, exact_matches=self.exact, mistakes=self.mistakes,
                          calibration=calibration)


def evaluate(
    path_or_records: Path | str | Iterable[Mapping[str, Any]],
    topics: TopicSet,
    only: list[str] | None = None,
) -> EvalReport:
    """Classify every labelled item and compare with its labels.

    Scores the topics in ``only`` if given, else every topic of ``topics`` that the labels mention
    (a topic a user added but never labelled would otherwise read as F1 = 0). Items with a title of
    their own are required; join ids to a corpus first with ``join_corpus``.
    """
    items = _as_items(path_or_records)
    labelled = {t for item in items for t in item.topics}
    names = only or [t for t in topics.names if t in labelled] or topics.names
    tally = _Tally(names)
    unscored: dict[str, int] = {}
    bins = [
        CalibrationBin(low=lo, high=min(hi, 1.0))
        for lo, hi in zip(_CALIBRATION_EDGES, _CALIBRATION_EDGES[1:], strict=False)
    ]
    score_sums = [0.0] * len(bins)
    for item in items:
        result = classify(item.title, item.text, topics)
        for name in result.topics:
            if name not in tally.per_topic:
                unscored[name] = unscored.get(name, 0) + 1
        expected = {t for t in item.topics if t in tally.per_topic}
        predicted = {t for t in result.topics if t in tally.per_topic}
        for name in names:
            score = result.scores.get(name, 0.0)
            k = next(i for i, hi in enumerate(_CALIBRATION_EDGES[1:]) if score < hi)
            bins[k].count += 1
            bins[k].positives += name in expected
            score_sums[k] += score
        if not tally.add(expected, predicted):
            tally.mistakes.append(
                Mistake(
                    id=item.id,
                    title=item.title,
                    expected=sorted(expected),
                    predicted=sorted(predicted),
                    scores={n: result.scores.get(n, 0.0) for n in names},
                    evidence={n: e for n, e in result.evidence.items() if n in tally.per_topic},
                )
            )
    for b, total in zip(bins, score_sums, strict=True):
        b.mean_score = round(total / b.count, 3) if b.count else 0.0
    return tally.report(len(items), bins).model_copy(update={"unscored": dict(sorted(unscored.items()))})


def compare_labels(reference: Iterable[Mapping[str, Any]], other: Iterable[Mapping[str, Any]]) -> EvalReport:
    """Score a second annotator's labels (``other``) against ``reference`` on the ids both labelled, as
    if they were a classifier's: the agreement that bounds what any classifier can show on such labels."""
    others = {str(r["id"]): set(r.get("topics", [])) for r in other}
    pairs = [(r, others[str(r["id"])]) for r in reference if str(r.get("id")) in others]
    names = sorted({t for r, theirs in pairs for t in (*r.get("topics", []), *theirs)})
    tally = _Tally(names)
    for record, predicted in pairs:
        expected = set(record.get("topics", []))
        if not tally.add(expected, predicted):
            tally.mistakes.append(Mistake(id=str(record["id"]), title=str(record.get("title", "")),
                                          expected=sorted(expected), predicted=sorted(predicted), scores={},
                                          evidence={}))
    return tally.report(len(pairs), [])


class PanelRow(BaseModel):
    """One label set (or the pool of all of them, ``name`` "pooled") against the other sets' majority."""

    name: str
    annotator: EvalReport
    classifier: EvalReport


def panel(
    label_sets: Mapping[str, Sequence[Mapping[str, Any]]],
    topics: TopicSet,
    min_others: int = 2,
) -> list[PanelRow]:
    """Score each label set, and the classifier, against the majority of the other sets' labels.

    ``label_sets`` maps a name to one annotator's records (each with a ``title`` or ``text``, joined to a
    corpus first). An item counts for a set when at least ``min_others`` other sets labelled it; a topic
    is the majority's when more than half of those others gave it. The last row pools every set. Both
    sides are scored on exactly the same items and expectations, so their macro-F1 compare directly.
    """
    votes: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for name, records in label_sets.items():
        for record in records:
            votes.setdefault(str(record.get("id")), []).append((name, frozenset(record.get("topics") or [])))
    labelled = {t for vs in votes.values() for _, given in vs for t in given}
    names = [t for t in topics.names if t in labelled] or topics.names
    pooled_annotator, pooled_classifier = _Tally(names), _Tally(names)
    rows: list[PanelRow] = []
    predictions: dict[str, set[str]] = {}
    for set_name, records in label_sets.items():
        annotator, classifier = _Tally(names), _Tally(names)
        scored = 0
        for record in records:
            item_id = str(record.get("id"))
            others = [given for who, given in votes[item_id] if who != set_name]
            if len(others) < min_others:
                continue
            majority = {t for t in names if 2 * sum(t in given for given in others) > len(others)}
            mine = {t for t in record.get("topics") or [] if t in names}
            if item_id not in predictions:
                result = classify(str(record.get("title") or ""), str(record.get("text") or ""), topics)
                predictions[item_id] = {t for t in result.topics if t in names}
            predicted = predictions[item_id]
            scored += 1
            for tally in (annotator, pooled_annotator):
                tally.add(majority, mine)
            classifier.add(majority, predicted)
            if not pooled_classifier.add(majority, predicted):
                pooled_classifier.mistakes.append(Mistake(
                    id=item_id, title=str(record.get("title") or record.get("text") or ""),
                    expected=sorted(majority), predicted=sorted(predicted), scores={}, evidence={},
                ))
        rows.append(PanelRow(name=set_name, annotator=annotator.report(scored, []),
                             classifier=classifier.report(scored, [])))
    total = sum(row.annotator.items for row in rows)
    rows.append(PanelRow(name="pooled", annotator=pooled_annotator.report(total, []),
                         classifier=pooled_classifier.report(total, [])))
    return rows


def format_panel(rows: list[PanelRow], min_others: int, max_mistakes: int | None = None) -> str:
    """Render ``panel``'s rows: per set, items and both macro-F1; then the classifier's pooled mistakes."""
    width = max(len(r.name) for r in rows)
    lines = [
        f"each set's labels, and the classifier, against the majority of the other sets' labels "
        f"(items at least {min_others} other sets labelled)",
        "",
        f"{'set':<{width}}  {'items':>6}  {'annotator macro-F1':>18}  {'classifier macro-F1':>19}",
    ]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.annotator.items:>6}  {r.annotator.macro_f1:>18.3f}  "
                     f"{r.classifier.macro_f1:>19.3f}")
    mistakes = rows[-1].classifier.mistakes
    shown = mistakes if max_mistakes is None else mistakes[:max_mistakes]
    lines += ["", f"classifier against the majority, misclassified (counted once per set that has the item): "
                  f"{len(mistakes)}"]
    lines += [f"- [{m.id}] majority {m.expected or '-'} got {m.predicted or '-'}: {m.title[:160]}" for m in shown]
    if len(shown) < len(mistakes):
        lines.append(f"  ... {len(mistakes) - len(shown)} more")
    return "\n".join(lines)


def format_report(report: EvalReport, max_mistakes: int | None = None) -> str:
    """Render a report as plain text: per-topic table, summary figures, calibration, mistakes."""
    lines = [f"{report.items} items, topics: {', '.join(report.topics)}", ""]
    lines.append(f"{'topic':<16}{'prec':>7}{'recall':>8}{'F1':>7}{'tp':>6}{'fp':>5}{'fn':>5}")
    for name, s in report.per_topic.items():
        lines.append(f"{name:<16}{s.precision:>7.3f}{s.recall:>8.3f}{s.f1:>7.3f}{s.tp:>6}{s.fp:>5}{s.fn:>5}")
    lines += [
        "",
        f"macro-F1: {report.macro_f1:.3f}",
        f"no-topic accuracy: {report.none_accuracy:.3f} ({report.none_correct}/{report.none_items})",
        f"exact match: {report.exact_matches}/{report.items}",
    ]
    if report.unscored:
        assigned = ", ".join(f"{name} to {count} item{'s' if count > 1 else ''}"
                             for name, count in report.unscored.items())
        lines.append(f"not scored (no label uses them; choose with --score): assigned {assigned}")
    lines += [
        "",
        "calibration (score bin: item-topic pairs, share truly on topic, mean score):",
    ]
    for b in report.calibration:
        if b.count:
            share = b.positives / b.count
            lines.append(f"  [{b.low:.1f}, {b.high:.1f}): {b.count:>6}  {share:6.3f}  {b.mean_score:6.3f}")
    shown = report.mistakes if max_mistakes is None else report.mistakes[:max_mistakes]
    lines += ["", f"misclassified: {len(report.mistakes)}"]
    for m in shown:
        lines.append(f"- [{m.id}] expected {m.expected or '-'} got {m.predicted or '-'}: {m.title[:160]}")
        for name, evidence in m.evidence.items():
            lines.append(f"    {name} {m.scores.get(name, 0.0):.2f}: {'; '.join(evidence)}")
    if len(shown) < len(report.mistakes):
        lines.append(f"  ... {len(report.mistakes) - len(shown)} more")
    return "\n".join(lines)


# --- CLI -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.evaluate_topics FILE [FILE ...] [--topics PATH] [--score TOPICS] [--corpus PATH]
    [--agreement OTHER] [--panel [--min-others N]]``; exit 0, or 2 on error."""
    parser = argparse.ArgumentParser(
        prog="python -m worker.evaluate_topics", description="Evaluate the topic classifier."
    )
    parser.add_argument("file", type=Path, nargs="+",
                        help="labelled JSON lines: id, title and/or text, topics (several files: pooled)")
    parser.add_argument("--topics", type=Path, default=DEFAULT_TOPICS, help="topic definitions")
    parser.add_argument("--corpus", type=Path, help="JSON lines of id and title, for label files that hold only ids")
    parser.add_argument("--max-mistakes", type=int, default=None, help="list at most N mistakes")
    parser.add_argument("--score", metavar="TOPIC[,TOPIC...]",
                        help="the topics to score (default: those the labels use); an item labelled without one "
                             "of them is then a false positive where the classifier assigns it")
    parser.add_argument("--agreement", type=Path, metavar="OTHER",
                        help="instead of classifying, score another annotator's labels of the same ids against FILE")
    parser.add_argument("--panel", action="store_true",
                        help="each FILE is one annotator's labels: score each, and the classifier, against the "
                             "majority of the other files' labels of the same items")
    parser.add_argument("--min-others", type=int, default=2,
                        help="with --panel: items at least this many other files labelled (default 2)")
    args = parser.parse_args(argv)
    if len({path.name for path in args.file}) < len(args.file):
        print("the same file name twice: each file must be a different label set", file=sys.stderr)
        return 2
    try:
        # Two annotators' labels are compared without the classifier, so without its topics.
        topics = load_topics(args.topics) if args.agreement is None else None
        unusable: list[DataFileError] = []

        def labels(path: Path, keep_unlabelled: bool = False) -> list[dict[str, Any]]:
            try:
                return load_labels(path, topics, keep_unlabelled)
            except DataFileError as exc:
                unusable.append(exc)
                return []

        sets = {path.name: labels(path) for path in args.file}
        other = labels(args.agreement, keep_unlabelled=True) if args.agreement is not None else []
        if unusable:  # every file's every bad line at once, and no figures from the rest
            print("\n".join(exc.message for exc in unusable), file=sys.stderr)
            return 2
        if args.corpus is not None:
            corpus = _load_corpus(args.corpus)
            for name, labelled in sets.items():
                sets[name], missing = join_corpus(labelled, corpus)
                if missing:
                    log.warning("labels_not_in_corpus", file=name, count=len(missing), first=missing[:5])
        records = [r for labelled in sets.values() for r in labelled]
        if topics is None:
            agreement = compare_labels(records, other)
            if not agreement.items:
                print(f"{args.agreement} labels none of the ids the other files label", file=sys.stderr)
                return 2
            print(format_report(agreement, args.max_mistakes))
            return 0
        textless = [str(r.get("id")) for r in records if not r.get("title") and not r.get("text")]
        if textless:
            print(
                f"{len(textless)} labelled items have neither title nor text; pass --corpus to look them up",
                file=sys.stderr,
            )
            return 2
        if not records:
            print(f"no labelled item is left: none of their ids is in {args.corpus}", file=sys.stderr)
            return 2
        if args.panel:
            if len(sets) < args.min_others + 1:
                print(f"--panel needs at least {args.min_others + 1} label files (--min-others {args.min_others})",
                      file=sys.stderr)
                return 2
            rows = panel(sets, topics, args.min_others)
            if not rows[-1].annotator.items:
                print(f"no item was labelled in at least {args.min_others + 1} of the files", file=sys.stderr)
                return 2
            print(format_panel(rows, args.min_others, args.max_mistakes))
            return 0
        only = [name.strip() for name in args.score.split(",") if name.strip()] if args.score else None
        unknown = [name for name in only or [] if name not in topics.names]
        if unknown:
            print(f"--score: {', '.join(unknown)} is not a topic of {args.topics} (its topics: "
                  f"{', '.join(topics.names)})", file=sys.stderr)
            return 2
        report = evaluate(records, topics, only)
    except LivebriefError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    print(format_report(report, args.max_mistakes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
