"""Unit tests of the checks `Stack.start`/`modelfleet up` make before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services import cli
from services.stack import AlreadyRunningError, PortInUseError, procs, runfiles
from services.stack.component import ComponentFailed
from services.stack.llm import LlamaServer, model_file
from services.stack.registry import ServiceSpec, service_processes
from services.stack.runfiles import RunRecord
from services.stack.service import ServiceProcess
from services.stack.supervisor import Stack
from services.stack.testing import free_port, settings_for_tests
from services.stack.triton import list_models


def test_port_in_use_detects_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert procs.port_in_use("127.0.0.1", sock.getsockname()[1])
    assert not procs.port_in_use("127.0.0.1", free_port())


def test_start_refuses_a_taken_port_and_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        settings = settings_for_tests(tmp_path, nats_port=sock.getsockname()[1])
        with pytest.raises(PortInUseError) as caught:
            Stack(settings).start(["nats"])
    message = str(caught.value)
    assert str(settings.nats_port) in message
    assert "MODELFLEET_NATS_PORT" in message
    assert not (tmp_path / "run" / "nats.json").exists()


def test_start_refuses_when_already_running(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path)
    me = procs.os.getpid()
    info = procs.proc_info(me)
    assert info is not None
    record = RunRecord(
        name="nats",
        pid=me,
        pgid=me,
        url=settings.nats_url,
        started_at=runfiles.now_iso(),
        log_file="x",
        start_ticks=info.start_ticks,
    )
    runfiles.write(settings.paths.run, record)
    stack = Stack(settings)
    assert [r.name for r in stack.running()] == ["nats"]
    with pytest.raises(AlreadyRunningError, match="nats"):
        stack.start(["postgres", "nats"])
    assert not (tmp_path / "postgres").exists()  # nothing was started


def test_unknown_component_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="redis"):
        Stack(settings_for_tests(tmp_path)).start(["redis"])


def test_registry_skips_services_that_are_not_importable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    specs = (
        ServiceSpec(
            name="ghost", app="services.no_such_service.app:create_app", port_setting="chatbot_port"
        ),
        ServiceSpec(name="cli", app="services.cli:main", port_setting="backend_port"),
    )
    settings = settings_for_tests(tmp_path)
    with caplog.at_level("INFO", logger="modelfleet.stack"):
        processes = service_processes(settings, specs)
    assert [p.name for p in processes] == ["cli"]
    assert processes[0].port == settings.backend_port
    assert processes[0].url == f"http://127.0.0.1:{settings.backend_port}"
    assert "ghost" in caplog.text
    env = processes[0].environment()
    assert env["DATABASE_URL"] == settings.database_url
    assert env["TRITON_GRPC_URL"] == settings.triton_grpc_url
    assert "--factory" in processes[0].command()


def test_list_models_needs_a_config(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.pbtxt").write_text("")
    (tmp_path / "b").mkdir()
    assert list_models(tmp_path) == ["a"]
    assert list_models(tmp_path / "missing") == []


def test_cli_status_fails_when_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--home", str(tmp_path), "status", "--json"]) == 1
    out = capsys.readouterr().out
    assert '"ready": false' in out and '"name": "postgres"' in out


def test_cli_down_with_nothing_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--home", str(tmp_path), "down"]) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_postgres_retries_only_on_the_lock_file_error(tmp_path: Path) -> None:
    from services.stack.postgres import LOCK_FILE_ERROR, Postgres

    pg = Postgres(settings_for_tests(tmp_path))
    pg.log_path.parent.mkdir(parents=True)
    pg.log_path.write_text(f"FATAL:  {LOCK_FILE_ERROR}\nHINT:  Is another postmaster running?\n")
    assert pg.on_early_exit(1)
    pg.log_path.write_text("FATAL:  data directory has wrong ownership\n")
    assert not pg.on_early_exit(1)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def test_up_cleans_run_files_whose_processes_are_gone_and_refuses_live_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for_tests(tmp_path)
    dead = _dead_pid()
    for name in ("nats", "supervisor", "retired-service"):
        runfiles.write(
            settings.paths.run,
            RunRecord(name=name, pid=dead, pgid=dead, url="-", started_at="t", log_file="x"),
        )
    stack = Stack(settings)
    assert stack.running() == []
    assert sorted(stack.clean_stale()) == ["nats", "retired-service", "supervisor"]
    assert runfiles.read_all(settings.paths.run) == []

    me = os.getpid()
    info = procs.proc_info(me)
    assert info is not None
    live = RunRecord(
        name="supervisor", pid=me, pgid=me, url="-", started_at="t", log_file="x",
        start_ticks=info.start_ticks,
    )  # fmt: skip
    runfiles.write(settings.paths.run, live)
    assert cli.main(["--home", str(tmp_path), "up", "--no-build"]) == 1
    err = capsys.readouterr().err
    assert f"supervisor (pid {me})" in err
    assert "`modelfleet status`" in err and "`modelfleet down`" in err
    assert runfiles.read(settings.paths.run, "supervisor") == live  # left alone


def test_the_local_llm_is_opt_in_and_the_chatbot_generates_with_it(tmp_path: Path) -> None:
    assert "llm" not in Stack(settings_for_tests(tmp_path)).names
    model = tmp_path / "instruct.gguf"
    model.write_bytes(b"GGUF")
    settings = settings_for_tests(tmp_path, llm=True, llm_model=model, llm_threads=2)
    stack = Stack(settings)
    assert stack.names.index("llm") < stack.names.index("chatbot")
    llm = stack.component("llm")
    assert isinstance(llm, LlamaServer)
    argv = llm.command()
    assert argv[argv.index("--model") + 1] == str(model)
    assert argv[argv.index("--port") + 1] == str(settings.llm_port)
    # by default llama_cpp.server ends a streamed answer when another request waits
    assert argv[argv.index("--interrupt_requests") + 1] == "False"
    # ... and keeps every prompt token's logits unless told not to (twice the first token's time)
    assert argv[argv.index("--logits_all") + 1] == "False"
    assert argv[argv.index("--n_threads") + 1] == "2"
    chatbot = stack.component("chatbot")
    assert isinstance(chatbot, ServiceProcess)
    env = chatbot.environment()
    assert env["CHATBOT_GENERATION"] == "openai"
    assert env["CHATBOT_OPENAI_BASE_URL"] == f"http://127.0.0.1:{settings.llm_port}/v1"
    assert env["CHATBOT_OPENAI_MODEL"] == settings.llm_alias


def test_a_missing_llm_model_file_fails_before_a_start(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path, llm=True, llm_model=tmp_path / "nowhere.gguf")
    with pytest.raises(ComponentFailed, match=r"nowhere\.gguf"):
        model_file(settings)
