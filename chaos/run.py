"""``python -m chaos.run`` (``make chaos``): the fault suite of issue 15.

Starts its own Kafka, Redis, OIDC issuer and mail sink (ports of its own, data under ``var/chaos/``), then for each
scenario: the four services on a fresh topic prefix, Redis key prefix and consumer groups; the load; the fault
part-way through; recovery; quiescence; the invariants. Prints the table and, last,
``scenarios=<n> accepted=<n> lost=<n> duplicate_mails=<n> duplicate_org_events=<n> unexpected_dlq=<n>
max_recovery_s=<n>``; exits 1 when an invariant failed. Everything it started is stopped at the end, on failure
and on Ctrl-C too."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import time
import traceback

from bench.stack import SERVICES, Space, free_port
from chaos import observe, report
from chaos.invariants import Outcome, event_duplicates, mail_findings, unrouted
from chaos.issuer import IssuerServer, Person
from chaos.load import Load
from chaos.scenarios import SCENARIOS, Scenario
from chaos.scene import Options, Scene
from chaos.stack import LOG, VAR, Cluster, MailSink, Platform, Redis, SingleKafka, say
from chaos.waiting import Timeout, until

SERVICE_SETTINGS = {
    "INTAKE_RATE_LIMIT_PER_MINUTE": str(10**9),  # one person submits once; the limit is not what is tested
    "INTAKE_SMTP_ENABLED": "false",
    "LOG_LEVEL": "INFO",
}


def arguments(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default=",".join(names), help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--ideas", type=int, default=2000, help="ideas per scenario, each by its own person")
    parser.add_argument("--rate", type=float, default=40.0, help="ideas per second (open loop)")
    parser.add_argument("--smtp-down-s", type=float, default=60.0, help="how long the mail sink is down")
    parser.add_argument("--stall-s", type=float, default=16.0, help="how long Kafka is stopped (SIGSTOP)")
    parser.add_argument("--quiescence-s", type=float, default=300.0, help="deadline of the wait for quiescence")
    parser.add_argument("--skip-cluster", action="store_true", help="leave out the three-broker scenario")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(names)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    options = Options(
        ideas=args.ideas,
        rate=args.rate,
        smtp_down_s=args.smtp_down_s,
        stall_s=args.stall_s,
        quiescence_s=args.quiescence_s,
    )
    return args, options


async def recovery(scene: Scene) -> float:
    """Seconds from the restore until every service is ready and the consumers are draining again (their committed
    offsets grew, or nothing is left to consume)."""
    assert scene.restored_at is not None
    start = await observe.committed_total(scene.kafka_settings, scene.platform.space, SERVICES)

    async def draining() -> bool:
        if not await scene.platform.all_ready():
            return False
        space, kafka = scene.platform.space, scene.kafka_settings
        if await observe.committed_total(kafka, space, SERVICES) > start:
            return True
        return not await observe.consumer_lag(kafka, space, SERVICES)

    await until(draining, what="every service ready and the consumers draining again", timeout_s=300, interval_s=0.5)
    return time.monotonic() - scene.restored_at


async def quiescence(scene: Scene) -> None:
    """Everything acknowledged has gone everywhere: no lag, every idea in analytics, every submitter's mail."""
    accepted = scene.load.accepted_ideas()
    submitters = {person.email for person in accepted.values()}
    space, kafka = scene.platform.space, scene.kafka_settings
    missing = set(accepted)

    async def settled() -> bool:
        nonlocal missing
        if await observe.consumer_lag(kafka, space, SERVICES):
            return False
        missing = await observe.missing_from_analytics(scene.platform.url("analytics"), missing)
        if missing:
            return False
        mails = mail_findings(observe.read_mails(scene.sink.directory), submitters)
        return not mails.without_routed

    await until(
        settled,
        what="quiescence: no consumer lag, every acknowledged idea in analytics, every submitter's routed mail",
        timeout_s=scene.options.quiescence_s,
        interval_s=2.0,
    )


async def verdict(scene: Scene, recovery_s: float) -> Outcome:
    load, space, kafka = scene.load, scene.platform.space, scene.kafka_settings
    accepted = load.accepted_ideas()
    outcome = Outcome(
        scenario=scene.name,
        rate=round(load.achieved_rate, 1) if load.achieved_rate else None,
        accepted=len(accepted),
        unavailable=load.unavailable,
        gave_up=len(load.gave_up),
        recovery_s=recovery_s,
    )
    outcome.lost = len(await observe.missing_from_analytics(scene.platform.url("analytics"), set(accepted)))
    topics = await observe.topics_of(kafka, space.topic_prefix)
    routed_names = observe.routed_topics(topics, space.topic_prefix)
    records = [observe.as_routed(r) for r in await observe.read_committed(kafka, routed_names)]
    duplicates = event_duplicates(records)
    outcome.duplicate_org_events = duplicates.same_decision
    outcome.duplicate_event_ids = duplicates.same_event_id
    routed_topic = {t for t in routed_names if ".ideas.routed." in f".{t.removeprefix(space.topic_prefix)}"}
    outcome.unrouted = len(unrouted(accepted, records, routed_topic))
    mails = mail_findings(observe.read_mails(scene.sink.directory), {p.email for p in accepted.values()})
    outcome.duplicate_mails = mails.duplicates
    outcome.missing_mails = len(mails.without_routed)
    dlq = await observe.dead_letters(kafka, space.topic_prefix)
    outcome.unexpected_dlq = sum(dlq.values())
    outcome.lag = sum((await observe.consumer_lag(kafka, space, SERVICES)).values())
    record = scene.platform.record
    outcome.restarts = str(sum(record.planned_restarts.values()))
    outcome.check()
    if duplicates.by_topic:
        outcome.problems.append("repeated on: " + ", ".join(f"{t}: {n}" for t, n in duplicates.by_topic.items()))
    if dlq:
        outcome.problems.append("dead letters: " + ", ".join(f"{t}: {n}" for t, n in dlq.items()))
    for name, code in scene.platform.exited().items():
        outcome.problems.append(f"{name} exited by itself (code {code}): a restart the scenario did not do")
    for submission in load.gave_up[:3]:
        scene.notes.append(f"{submission.person.username} gave up: {submission.refusal}")
    return outcome


async def run_scenario(
    scenario: Scenario,
    options: Options,
    run: str,
    kafka: SingleKafka | Cluster,
    redis: Redis,
    tokens: dict[int, str],
    issuer_url: str,
) -> Outcome:
    space = Space(run, scenario.name)
    kafka_settings = kafka.settings()
    say(f"scenario {scenario.name}: {scenario.what}; topics {space.topic_prefix}*, Redis keys {space.redis_prefix}:*")
    await space.create_topics(kafka_settings)
    sink = MailSink(VAR / "mail" / scenario.name)
    sink.start()
    env = {**kafka.service_env(), "REDIS_URL": redis.url, "OIDC_ISSUER_URL": issuer_url, **SERVICE_SETTINGS}
    platform = Platform(space, sink.port, env)
    try:
        await sink.wait()
        platform.start()
        await platform.wait_ready()
        load = Load(
            platform.url("intake"),
            tokens,
            ideas=options.ideas,
            rate=options.rate,
            retry_cap_s=options.retry_cap_s,
            patience_s=options.patience_s,
        )
        scene = Scene(scenario.name, options, kafka, kafka_settings, redis, sink, platform, load.state)
        scene.progress("services ready; load started")
        loading = asyncio.create_task(load.run())
        ticker = asyncio.create_task(tick(scene))
        try:
            at = int(options.ideas * options.fault_at)
            await until(lambda: scene.load.sent >= at or loading.done(), what=f"{at} ideas sent", timeout_s=3600)
            await scenario.fault(scene)
            recovery_s = await recovery(scene)
            scene.progress(f"recovered in {recovery_s:.1f} s; finishing the load")
            await loading
            scene.progress("load finished; waiting for quiescence")
            problems = []
            settling = time.monotonic()
            try:
                await quiescence(scene)
                scene.notes.append(f"quiescence {time.monotonic() - settling:.0f} s after the load")
            except Timeout as exc:
                problems.append(str(exc))
        finally:
            ticker.cancel()
            if not loading.done():
                loading.cancel()
        scene.progress("checking the invariants")
        outcome = await verdict(scene, recovery_s)
        outcome.problems.extend(problems)
        for note in scene.notes:
            say(f"scenario {scenario.name}: {note}")
        return outcome
    finally:
        platform.stop()
        sink.stop()


async def tick(scene: Scene) -> None:
    while True:
        await asyncio.sleep(5)
        scene.progress()


async def suite(args: argparse.Namespace, options: Options, outcomes: list[Outcome]) -> None:
    """Run the chosen scenarios, appending each one's outcome as it finishes (kept if the run is interrupted)."""
    chosen = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    if args.skip_cluster:
        chosen = [s for s in chosen if not s.cluster]
    for stale in ("kafka", "redis", "mail", "cluster", "run"):
        shutil.rmtree(VAR / stale, ignore_errors=True)  # a fresh run: only the suite's own directory
    LOG.mkdir(parents=True, exist_ok=True)
    run = f"chaos{int(time.time()) % 100000}"
    kafka, redis, cluster = SingleKafka(), Redis(), Cluster()
    with IssuerServer(free_port()) as issuer:
        try:
            say(f"minting {options.ideas} people's tokens at the local issuer {issuer.url}")
            tokens = {n: issuer.token(Person(n)) for n in range(1, options.ideas + 1)}
            say(f"starting Redis on 127.0.0.1:{redis.port} under {VAR}")
            await redis.start()
            say(f"Redis persistence: {redis.config('appendonly', 'appendfsync')}")
            if any(not s.cluster for s in chosen):
                say(f"starting Kafka on 127.0.0.1:{kafka.port} under {VAR} (flushes every write)")
                await kafka.start()
            for scenario in chosen:
                target = cluster if scenario.cluster else kafka
                if scenario.cluster:
                    say("starting the three-broker cluster (deploy/kafka/cluster.sh up)")
                    await cluster.up()
                try:
                    outcome = await run_scenario(scenario, options, run, target, redis, tokens, issuer.url)
                except Exception as exc:
                    say(f"scenario {scenario.name} could not complete: {type(exc).__name__}: {exc}")
                    with (LOG / "harness.log").open("a") as out:
                        traceback.print_exc(file=out)
                    outcome = Outcome(scenario=scenario.name, problems=[f"{type(exc).__name__}: {exc}"[:500]])
                verdict_text = "passed" if outcome.passed else "FAILED: " + "; ".join(outcome.problems)
                say(f"scenario {scenario.name}: {verdict_text}")
                outcomes.append(outcome)
        finally:
            say("stopping everything the suite started")
            kafka.stop()
            redis.stop()
            cluster.down()


def main(argv: list[str] | None = None) -> int:
    args, options = arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        asyncio.run(suite(args, options, outcomes))
    except KeyboardInterrupt:
        say(f"interrupted: {len(outcomes)} scenario(s) finished")
        if not outcomes:
            return 130
    say(f"the whole run took {time.monotonic() - started:.0f} s")
    print(report.table(outcomes))
    print(report.last_line(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
