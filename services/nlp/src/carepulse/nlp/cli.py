"""``carepulse nlp``: look at what the NLP pipeline finds, code phrases, evaluate assertion.

    carepulse nlp "No fever. Possible UTI. Mother had breast cancer."
    carepulse nlp normalize "heart attack"
    carepulse nlp eval-assertion tests/data/notes/negex_dev.tsv
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from carepulse.nlp.settings import NlpSettings


class _DefaultToText(TyperGroup):
    """Anything that is not a sub-command is the free text to analyse (``carepulse nlp "…"``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["text", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultToText, help="Clinical NLP: findings, ICD-10-CM coding, assertion evaluation.",
                  no_args_is_help=True)
console = Console()


async def _with_normaliser(settings: NlpSettings, embeddings: bool, work: Any) -> Any:
    from carepulse.nlp.service import build_normaliser
    from carepulse.nlp.terminology import Lexicon
    from carepulse.shared.inference.client import InferenceClient

    lexicon = Lexicon.load()
    if not embeddings:
        return await work(lexicon, build_normaliser(settings, lexicon, None))
    async with InferenceClient.from_settings(settings) as client:
        return await work(lexicon, build_normaliser(settings, lexicon, client))


@app.command("text", hidden=True)
def text_cmd(
    text: Annotated[str, typer.Argument(help="Clinical text to analyse")],
    embeddings: Annotated[bool, typer.Option(help="Code unmatched mentions via the inference service")] = True,
) -> None:
    """Print the findings of a piece of clinical text as a table."""
    from carepulse.nlp.deidentify import deidentify
    from carepulse.nlp.findings import group
    from carepulse.nlp.service import build_pipeline

    async def work(lexicon: Any, normaliser: Any) -> None:
        mentions = build_pipeline(lexicon).extract(deidentify(text))
        concepts = await normaliser.normalise_many([m.text for m in mentions])
        table = Table("finding", "status", "ICD-10-CM", "description", "confidence", "section", "sentence")
        for f in group(mentions, concepts):
            m = f.mentions[0]
            table.add_row(m.text, f.status.value, f.concept.code or "-", f.concept.display or "-",
                          f"{f.concept.confidence:.2f} ({f.concept.method.value})", m.section or "-",
                          m.sentence[:80])
        console.print(table)

    asyncio.run(_with_normaliser(NlpSettings(), embeddings, work))


@app.command("normalize")
def normalize_cmd(
    phrase: Annotated[str, typer.Argument(help="Condition phrase")],
    embeddings: Annotated[bool, typer.Option(help="Use the embedding step (inference service)")] = True,
) -> None:
    """Print the best ICD-10-CM code for a phrase and its confidence."""
    async def work(lexicon: Any, normaliser: Any) -> Any:
        return await normaliser.normalise(phrase)

    r = asyncio.run(_with_normaliser(NlpSettings(), embeddings, work))
    if r.code is None:
        console.print(f"no code (best similarity {r.confidence:.3f} is under the threshold)")
        raise typer.Exit(1)
    typer.echo(f"{r.code}\t{r.display}\tconfidence={r.confidence:.3f}\tmethod={r.method.value}")


@app.command("eval-assertion")
def eval_assertion_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TSV: report, concept, sentence, label")],
    baselines: Annotated[bool, typer.Option(help="Also run medspaCy default rules and classic NegEx")] = True,
) -> None:
    """Negation accuracy/P/R/F1 on a NegEx-format file; the last line is CarePulse's."""
    from carepulse.nlp.assertion_eval import SYSTEMS, evaluate, load_examples
    from carepulse.nlp.service import quiet_pyrush

    quiet_pyrush()
    examples, missing = load_examples(file)
    systems = SYSTEMS if baselines else ("carepulse",)
    results = evaluate(examples, systems)
    table = Table("system", "n", "accuracy", "neg. precision", "neg. recall", "neg. F1", "seconds")
    for s in results:
        table.add_row(s.system, str(s.n), f"{s.accuracy:.4f}", f"{s.negated_precision:.4f}",
                      f"{s.negated_recall:.4f}", f"{s.negated_f1:.4f}", f"{s.seconds:.1f}")
    console.print(table)
    if missing:
        console.print(f"{missing} row(s) skipped: concept not found in its sentence")
    typer.echo(next(s for s in results if s.system == "carepulse").line())


async def _offline(settings: NlpSettings, work: Any) -> Any:
    """Like ``_with_normaliser`` with embeddings, but the model runs in-process (needs the train extra)."""
    from carepulse.nlp.embeddings import EmbeddingIndex
    from carepulse.nlp.index_build import OnnxEmbedder
    from carepulse.nlp.normalise import Normaliser
    from carepulse.nlp.terminology import CodeDescriptions, Lexicon

    lexicon = Lexicon.load()
    normaliser = Normaliser(lexicon, CodeDescriptions(), OnnxEmbedder(settings.nlp_tokenizer_path.parent),
                            EmbeddingIndex.load(settings.nlp_index_path), settings.nlp_min_similarity)
    return await work(lexicon, normaliser)


@app.command("eval-normalize")
def eval_normalize_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="TSV: phrase, category")],
    offline: Annotated[bool, typer.Option(help="Run the embedding model in-process, not via the inference "
                                               "service (needs the train extra)")] = False,
) -> None:
    """Top-1 ICD-10-CM category accuracy, exact matching alone and with embeddings."""
    from carepulse.nlp.gold_eval import evaluate_gold, load_gold

    gold = load_gold(file)
    settings = NlpSettings()
    table = Table("setting", "n", "top-1 category accuracy", "coded", "by method")
    for setting, embeddings in (("exact/synonym", False), ("exact + embedding", True)):
        async def work(lexicon: Any, normaliser: Any, setting: str = setting) -> Any:
            return await evaluate_gold(gold, normaliser, setting)
        if embeddings and offline:
            s = asyncio.run(_offline(settings, work))
        else:
            s = asyncio.run(_with_normaliser(settings, embeddings, work))
        table.add_row(s.setting, str(s.n), f"{s.accuracy:.3f}", str(s.coded),
                      ", ".join(f"{k}={v}" for k, v in s.by_method.items()))
    console.print(table)
