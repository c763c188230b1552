"""What the suite breaks, each a separate OS process it starts, kills and restarts itself, on ports of its own:
a single-node Kafka (deploy/kafka/kafka.sh) or the three-broker cluster (deploy/kafka/cluster.sh), Redis
(deploy/redis.sh), the mail sink (services.notifications.mailsink) and the four services (bench.stack.Services).
Everything lives under ``var/chaos/`` (logs in ``var/chaos/log/``); :meth:`Stack.close` stops all of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.stack import ROOT, SERVICES, ServiceCommand, Services, Space, free_port
from chaos.waiting import until
from shared.settings import KafkaSettings

VAR = ROOT / "var" / "chaos"
LOG = VAR / "log"
CLUSTER_SCRIPT = ROOT / "deploy" / "kafka" / "cluster.sh"


def say(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie (killed, not yet reaped by its parent) is not alive
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def kill9(pid: int | None) -> None:
    if pid is not None and alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGCONT)  # a stopped process dies on SIGKILL too, but say it plainly
            os.kill(pid, signal.SIGKILL)


async def wait_dead(pid: int | None, what: str) -> None:
    await until(lambda: not alive(pid), what=f"{what} (pid {pid}) to be gone", timeout_s=30, interval_s=0.1)


class ScriptProcess:
    """A server started by one of the project's deploy scripts, found by the pid file the script writes."""

    def __init__(self, name: str, script: Path, env: dict[str, str], pidfile: Path) -> None:
        self.name, self.script, self.env, self.pidfile = name, script, env, pidfile

    def run(self, command: str) -> None:
        env = {**os.environ, **self.env}
        with (LOG / f"{self.name}-script.log").open("ab") as out:
            subprocess.run([str(self.script), command], env=env, check=True, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.pidfile.read_text().strip())
        return None

    async def start(self) -> None:
        await asyncio.to_thread(self.run, "start")
        await asyncio.to_thread(self.run, "wait")

    async def kill9(self) -> None:
        pid = self.pid
        kill9(pid)
        await wait_dead(pid, self.name)

    def pause(self) -> None:
        if (pid := self.pid) is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        if (pid := self.pid) is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("stop")


class SingleKafka(ScriptProcess):
    """One broker+controller; the script's default flushes every write before acknowledging it."""

    def __init__(self) -> None:
        self.port, self.controller_port = free_port(), free_port()
        env = {"KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.controller_port), "VAR_DIR": str(VAR)}
        super().__init__("kafka", ROOT / "deploy/kafka/kafka.sh", env, VAR / "run" / "kafka.pid")

    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=f"127.0.0.1:{self.port}")

    def service_env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.port}"}


class Redis(ScriptProcess):
    """deploy/redis.sh's Redis: ``--appendonly yes --appendfsync everysec``. Every write is in the append-only
    file (the OS's page cache) before its reply, so a kill -9 of the process loses nothing; only a crash of the
    machine can lose the last second, which is what everysec trades for speed."""

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(
            "redis",
            ROOT / "deploy/redis.sh",
            {"REDIS_PORT": str(self.port), "VAR_DIR": str(VAR)},
            VAR / "run" / "redis.pid",
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def config(self, *names: str) -> dict[str, str]:
        """Redis's own answer to CONFIG GET, so the report says what it really ran with."""
        found = {}
        for name in names:
            out = subprocess.run(
                ["redis-cli", "-p", str(self.port), "config", "get", name], capture_output=True, text=True, check=False
            ).stdout.split()
            found[name] = out[1] if len(out) > 1 else "?"
        return found

    def flushall(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True, capture_output=True)


class Cluster:
    """deploy/kafka/cluster.sh's three brokers (replication 3, min.insync.replicas=2, SASL/SCRAM) under
    ``var/chaos/cluster``. The services connect as the superuser kafka-admin (``cluster.sh env``): the scenario is
    about replicas, not access rules, which tests/ops/test_kafka_access.py covers."""

    NODES = (1, 2, 3)

    def __init__(self) -> None:
        self.dir = VAR / "cluster"
        # cluster.sh runs `python -m shared.kafka_access apply` with the checkout's .venv, else the python3 on PATH:
        # the interpreter running the suite comes first on PATH
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        self.env = {"CLUSTER_DIR": str(self.dir), "PATH": path}

    def run(self, command: str) -> str:
        with (LOG / "cluster-script.log").open("ab") as out:
            result = subprocess.run(
                [str(CLUSTER_SCRIPT), command],
                env={**os.environ, **self.env},
                check=True,
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                timeout=300,
            )
        return result.stdout

    def admin_env(self) -> dict[str, str]:
        words = [w for w in shlex.split(self.run("env")) if w != "export"]
        return dict(word.split("=", 1) for word in words)

    def settings(self) -> KafkaSettings:
        return KafkaSettings(**{k.removeprefix("KAFKA_").lower(): v for k, v in self.admin_env().items()})

    def service_env(self) -> dict[str, str]:
        return self.admin_env()

    def pid(self, node: int) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.dir / "run" / f"node-{node}.pid").read_text().strip())
        return None

    async def up(self) -> None:
        await asyncio.to_thread(self.run, "up")

    async def kill9(self, node: int) -> None:
        pid = self.pid(node)
        kill9(pid)
        await wait_dead(pid, f"broker {node}")

    def down(self) -> None:
        for node in self.NODES:
            with contextlib.suppress(OSError):
                if (pid := self.pid(node)) is not None:
                    os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(subprocess.SubprocessError):
            self.run("down")


class MailSink:
    """``python -m services.notifications.mailsink``: one .eml file per mail and recipient in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with (LOG / "mailsink.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.notifications.mailsink",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.directory),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait(self) -> None:
        async def answers() -> bool:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.close()
            return True

        await until(answers, what=f"the mail sink on 127.0.0.1:{self.port}", timeout_s=30)

    async def kill9(self) -> None:
        if self.process is not None:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Starts:
    """How often the suite started each service, and which exits it caused: anything else is a crash."""

    starts: dict[str, int] = field(default_factory=dict)
    planned_restarts: dict[str, int] = field(default_factory=dict)


class Platform:
    """The four services of one scenario (their own topic prefix, Redis prefix and consumer groups), each startable,
    killable (kill -9) and restartable alone."""

    def __init__(self, space: Space, smtp_port: int, env: dict[str, str]) -> None:
        self.space = space
        self.services = Services(space, LOG, smtp_port, ServiceCommand(env=tuple(env.items())))
        self.env = env
        self.record = Starts()

    @property
    def ports(self) -> dict[str, int]:
        return self.services.ports

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, *names: str) -> None:
        names = names or SERVICES
        self.services.start(*names)
        for name in names:
            self.record.starts[name] = self.record.starts.get(name, 0) + 1

    async def wait_ready(self, *names: str, timeout_s: float = 120) -> None:
        await self.services.wait_ready(*(names or SERVICES), timeout_s=timeout_s)

    async def kill9(self, name: str) -> None:
        process = self.services.running[name].process
        process.kill()
        await asyncio.to_thread(process.wait)

    async def restart(self, name: str) -> None:
        """Start ``name`` again (after the scenario killed or stopped it): a restart the scenario planned."""
        self.record.planned_restarts[name] = self.record.planned_restarts.get(name, 0) + 1
        self.start(name)

    def exited(self) -> dict[str, int]:
        """Services whose process is gone though nothing of the suite stopped it, with their exit code."""
        return {
            name: proc.process.returncode
            for name, proc in self.services.running.items()
            if proc.process.poll() is not None
        }

    def environment(self) -> dict[str, str]:
        return self.services.environment()

    async def all_ready(self) -> bool:
        async with httpx.AsyncClient(timeout=3) as http:
            for name in SERVICES:
                answer = await http.get(f"{self.url(name)}/readyz")
                if answer.status_code != 200:
                    return False
        return True

    def stop(self) -> None:
        self.services.stop()


def rebuild(platform: Platform, service: str) -> float:
    """``python -m services.<service>.rebuild`` in the scenario's environment; its seconds. Output to the log."""
    started = time.monotonic()
    with (LOG / f"{platform.space.name}-{service}-rebuild.log").open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", f"services.{service}.rebuild", "--no-progress"],
            cwd=ROOT,
            env=platform.environment(),
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    return time.monotonic() - started
