"""Text-CNN training jobs: one epoch per batch, on the fine-tuning jobs' machinery (the
trainer's checkpoint/resume, cancel between steps, history and curves in the job). The
last epoch scores the model on the held-out texts and publishes it, content-addressed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lookalike.retrieval.text.classifier import EncodedTexts, TextClassifier
from lookalike.retrieval.text.corpus import LabelledTexts
from lookalike.retrieval.text.metrics import accuracy, macro_f1
from lookalike.retrieval.text.tokenizer import TextTokenizer
from lookalike.retrieval.text.training import (
    accuracy_validator,
    build_model,
    build_tokenizer,
    predicted,
    trainer_config,
)
from lookalike.retrieval.training.trainer import fit
from lookalike.services.catalog import textmodels
from lookalike.services.catalog.documents import TextTrainParams
from lookalike.services.catalog.models import Job
from lookalike.services.errors import InvalidRequest
from lookalike.services.ingest.fence import check_under_roots
from lookalike.services.jobs.finetune import cancel_watch, patch_result, record_history
from lookalike.services.runtime import Runtime
from lookalike.services.text.corpus import split_texts
from lookalike.services.text.request import TextTrainRequest
from lookalike.services.text.store import store_classifier

log = logging.getLogger(__name__)


def check_request(runtime: Runtime, request: TextTrainRequest, *,
                  roots: list[Path] | None = None) -> None:
    """Refuse at submit time a taken name, or a source that is missing (or, over HTTP,
    outside the ingest roots)."""
    with runtime.read_session() as session:
        if textmodels.get_text_model(session=session, name=request.name) is not None:
            raise InvalidRequest(f"text model '{request.name}' already exists; pick another "
                                 "name")
    if request.source is not None:
        source = Path(request.source)
        if roots is not None:
            check_under_roots(source, roots)
        if not source.exists():
            raise InvalidRequest(f"corpus {source} does not exist; give a folder of "
                                 "CLASS/*.txt or a .csv with text and label columns")


def _tokenizer(train: LabelledTexts, request: TextTrainRequest, workdir: Path) -> TextTokenizer:
    """The tokenizer learnt from the training texts, once; kept in workdir/tokenizer.json."""
    path = workdir / "tokenizer.json"
    settings = request.settings()
    if path.is_file():
        return TextTokenizer.from_json(path.read_text(encoding="utf-8"),
                                       max_length=settings.max_length,
                                       min_length=max(settings.widths))
    tokenizer = build_tokenizer(train.texts, settings)
    path.write_text(tokenizer.to_json(), encoding="utf-8")
    return tokenizer


def run_epoch(runtime: Runtime, job: Job, epoch: int) -> None:
    """Train epoch `epoch` of a text-CNN job from its checkpoint and record it; the last
    epoch also scores and publishes the model. Cancelling stops between steps."""
    assert isinstance(job.params, TextTrainParams), f"job {job.id} is not a text-train job"
    request = TextTrainRequest.model_validate(job.params.text_request)
    workdir = runtime.settings.layout.job(job.id)
    train, val = split_texts(runtime, request, workdir)
    tokenizer = _tokenizer(train, request, workdir)
    train_set = EncodedTexts(tokenizer, train.texts, train.labels)
    val_set = EncodedTexts(tokenizer, val.texts, val.labels)
    model = build_model(tokenizer, len(train.classes), request.settings())
    if epoch == 0:
        patch_result(runtime, job.id, {"train_images": len(train.texts),
                                       "val_images": len(val.texts), "classes": train.classes})
    records = fit(model, train_set, config=trainer_config(request.settings()),
                  checkpoint=workdir / "checkpoint.pt", validate=accuracy_validator(val_set),
                  until_epoch=epoch + 1, should_stop=cancel_watch(runtime, job.id))
    record_history(runtime, job.id, records, title=f"text-CNN '{request.name}'",
                   metric="held-out accuracy")
    if epoch + 1 == request.epochs:
        classifier = TextClassifier(tokenizer, model, train.classes)
        figures = score(classifier, val, train_seconds=sum(r.seconds for r in records))
        _publish(runtime, job.id, request, classifier, figures)


def score(classifier: TextClassifier, held_out: LabelledTexts, *,
          train_seconds: float) -> dict[str, float | int]:
    """Accuracy and macro-F1 on the held-out texts, texts/s at inference, parameters."""
    started = time.perf_counter()
    found = predicted(classifier.model, EncodedTexts(classifier.tokenizer, held_out.texts,
                                                     held_out.labels))
    seconds = time.perf_counter() - started
    return {"accuracy": round(accuracy(held_out.labels, found), 4),
            "macro_f1": round(macro_f1(held_out.labels, found), 4),
            "train_seconds": round(train_seconds, 1),
            "texts_per_s": round(len(held_out.texts) / max(seconds, 1e-9), 1),
            "parameters": classifier.model.parameter_count(),
            "held_out": len(held_out.texts)}


def _publish(runtime: Runtime, job_id: int, request: TextTrainRequest,
             classifier: TextClassifier, figures: dict[str, float | int]) -> None:
    """Write the model file and its catalog row, once: a rerun of the last epoch finds the
    model this job made and records that one."""
    with runtime.session() as session:
        existing = textmodels.get_text_model(session=session, name=request.name)
        if existing is not None and existing.trained_by_job != job_id:
            raise InvalidRequest(f"text model '{request.name}' was made meanwhile by another "
                                 f"run; retry under another name")
        if existing is None:
            path, sha = store_classifier(classifier, settings=runtime.settings)
            existing = textmodels.add_text_model(
                session=session, name=request.name, sha256=sha,
                path=runtime.settings.layout.stored(path),
                classes=classifier.classes, figures=dict(figures),
                make_default=request.make_default, trained_by_job=job_id)
            session.commit()
            log.info("text-train job %d published text model %s", job_id, request.name)
        values = {"text_model": existing.name, "weights_sha256": existing.sha256,
                  "weights_file": existing.path, "figures": existing.figures}
    patch_result(runtime, job_id, values)


def job_params(request: TextTrainRequest) -> TextTrainParams:
    return TextTrainParams(text_request=request.model_dump(mode="json"),
                           batch_sizes=[1] * request.epochs)

