"""`python -m saga_ops`: the operator's command line (rich tables; progress for long operations).

    python -m saga_ops list [--status COMPENSATION_FAILED]
    python -m saga_ops show <saga-id>
    python -m saga_ops stuck [--reports]
    python -m saga_ops dlq list
    python -m saga_ops dlq redrive [QUEUE]
    python -m saga_ops resume <saga-id> --retry --reason "carrier API is back" [--by alice]   # what is pending
    python -m saga_ops resume <saga-id> --resolve --reason "refunded by hand, ticket 4711" [--by alice]

AWS or the local runtime: the same commands; set AWS_ENDPOINT_URL (or --endpoint-url) for a local moto server.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import boto3
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra import constants
from saga_ops.deployment import Deployment, StackUnreachable
from saga_ops.operations import OperatorError, SagaOperator
from saga_records import IN_FLIGHT_STATUSES, PARKED_STATUSES, SagaStatus

STATUS_COLOURS = {"COMPLETED": "green", "FAILED": "yellow", "RESOLVED": "cyan", "COMPENSATING": "magenta"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m saga_ops", description="Operate sagas: inspect, redrive, resume.")
    parser.add_argument("--stack", default=constants.STACK_NAME, help="CloudFormation stack name")
    parser.add_argument("--endpoint-url", help="AWS endpoint (a local moto server); default: AWS_ENDPOINT_URL or AWS")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="local runtime clock (deadlines of `stuck`); 1 on AWS"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="sagas by status (newest first)")
    listing.add_argument("--status", choices=[status.value for status in SagaStatus], action="append")
    listing.add_argument("--limit", type=int, default=50)

    show = commands.add_parser("show", help="a saga's record, steps, operator actions and execution history")
    show.add_argument("saga_id")
    show.add_argument("--history", type=int, default=25, help="last N execution history events")

    stuck = commands.add_parser("stuck", help="sagas past their deadline or parked")
    stuck.add_argument("--reports", action="store_true", help="also take the reports waiting in the stuck-sagas queue")

    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="dlq_command", required=True)
    dlq.add_parser("list", help="every DLQ's depth and first messages")
    redrive = dlq.add_parser("redrive", help="move dead letters back to their queue")
    redrive.add_argument("queue", nargs="?", help="part of a DLQ name (default: every DLQ with messages)")

    resume = commands.add_parser("resume", help="finish a parked saga: re-run what is pending, or resolve by hand")
    how = resume.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--retry",
        action="store_true",
        help="re-run what is pending: the failed compensation and the earlier ones, or (FORWARD_RECOVERY_FAILED) "
        "the stalled step and the ones after it",
    )
    how.add_argument("--resolve", action="store_true", help="mark it resolved by hand")
    resume.add_argument("saga_id")
    resume.add_argument("--reason", required=True, help="why (kept on the saga record)")
    resume.add_argument("--by", help="who (default: your AWS identity)")
    resume.add_argument("--wait-seconds", type=float, default=300, help="longest wait for each step")
    return parser


def main(argv: list[str] | None = None, *, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console()
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    try:
        operator = SagaOperator(Deployment.load(args.stack))
        return COMMANDS[args.command](operator, args, console)
    except (OperatorError, StackUnreachable) as error:
        console.print(f"[red]✗ {error}")
        return 2
    except KeyboardInterrupt:  # Ctrl-C while waiting on a resumed saga: it goes on without the CLI watching
        console.print("[yellow]interrupted[/]: what was already asked of the saga goes on; `show` follows it")
        return 130


def _list(operator: SagaOperator, args: argparse.Namespace, console: Console) -> int:
    statuses = [SagaStatus(s) for s in args.status] if args.status else [*IN_FLIGHT_STATUSES, *sorted(PARKED_STATUSES)]
    table = Table(title=f"Sagas ({', '.join(statuses)})")
    for column in ("saga", "type", "status", "step", "created", "updated"):
        table.add_column(column)
    for status in statuses:
        for record in operator.list_sagas(status, limit=args.limit):
            table.add_row(
                record["saga_id"],
                record.get("saga_type", ""),
                _status(record["status"]),
                record.get("failed_step") or record.get("current_step") or "",
                record["created_at"],
                record["updated_at"],
            )
    console.print(table)
    return 0


def _show(operator: SagaOperator, args: argparse.Namespace, console: Console) -> int:
    record, history = operator.show(args.saga_id)
    record = {**record, "pending": operator.pending(record)}
    console.print(saga_table(record))
    console.print(steps_table(record))
    if record.get("operator_actions"):
        console.print(operator_actions_table(record))
    events = Table(title=f"Execution history (last {min(args.history, len(history))} of {len(history)} events)")
    for column in ("#", "time", "event", "state"):
        events.add_column(column)
    for event in history[-args.history :]:
        state = (event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}).get("name", "")
        events.add_row(str(event["id"]), event["timestamp"].strftime("%H:%M:%S.%f")[:-3], event["type"], state)
    console.print(events)
    return 0


def saga_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"Saga {record['saga_id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field in (
        "saga_type",
        "status",
        "current_step",
        "failed_step",
        "error",
        "cause",
        "compensation_error",
        "compensation_cause",
        "pending",
        "execution_arn",
        "created_at",
        "updated_at",
        "reported_incident",
    ):
        if record.get(field):
            table.add_row(field, _shown(field, record[field]))
    return table


def _shown(field: str, value: Any) -> str:
    if field == "status":
        return _status(value)
    if field == "pending":  # in the order a resume runs them
        return ", then ".join(f"{item['step']} ({item['kind']})" for item in value)
    return str(value)


def steps_table(record: dict[str, Any]) -> Table:
    table = Table(title="Steps")
    for column in ("step", "status", "finished", "error"):
        table.add_column(column)
    for name, state in record.get("steps", {}).items():
        table.add_row(name, _status(state.get("status", "")), state.get("finished_at", ""), state.get("error", ""))
    return table


def operator_actions_table(record: dict[str, Any]) -> Table:
    table = Table(title="Operator actions (audit trail)")
    for column in ("at", "by", "action", "reason", "details"):
        table.add_column(column, no_wrap=column in ("at", "action"))
    for entry in record.get("operator_actions", []):
        details = {k: v for k, v in entry.items() if k not in ("at", "by", "action", "reason")}
        table.add_row(
            entry["at"],
            entry["by"],
            entry["action"],
            entry["reason"],
            "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in details.items()),
        )
    return table


def stuck_table(stuck: list[Any]) -> Table:
    table = Table(title=f"Stuck sagas ({len(stuck)})")
    for column in ("saga", "status", "reason", "step", "error", "since"):
        table.add_column(column)
    for saga in stuck:
        table.add_row(saga.saga_id, _status(saga.status), saga.reason, saga.step, saga.error, saga.updated_at)
    return table


def reports_table(reports: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Stuck-sagas queue: {len(reports)} report(s) taken")
    for column in ("saga", "status", "step", "error", "execution"):
        table.add_column(column)
    for report in reports:
        table.add_row(
            report["saga_id"],
            _status(report["status"]),
            report["step"],
            report["error"],
            report["execution_arn"].rsplit(":", 2)[-1],
        )
    return table


def _stuck(operator: SagaOperator, args: argparse.Namespace, console: Console) -> int:
    console.print(stuck_table(operator.stuck(time_scale=args.time_scale)))
    if args.reports:
        console.print(reports_table(operator.take_stuck_reports()))
    return 0


def _dlq(operator: SagaOperator, args: argparse.Namespace, console: Console) -> int:
    if args.dlq_command == "list":
        queues = Table(title="Dead-letter queues")
        messages = Table(title="Dead letters (identifiers only)")
        for column in ("queue", "depth", "redrives to"):
            queues.add_column(column)
        for column in ("queue", "saga", "step", "kind", "command", "receives"):
            messages.add_column(column)
        for queue, depth, peeked in operator.dead_letters():
            source = queue.source_url.rsplit("/", 1)[-1] if queue.source_url else "(Lambda / EventBridge DLQ)"
            queues.add_row(queue.label, f"[red]{depth}" if depth else "0", source)
            for message in peeked:
                messages.add_row(
                    queue.label,
                    message["saga_id"],
                    message["step"],
                    message["kind"],
                    message["command"],
                    message["receives"],
                )
        console.print(queues)
        console.print(messages)
        return 0
    wanted = [
        queue
        for queue, depth, _ in operator.dead_letters(max_messages=1)
        if depth and queue.source_url and (args.queue is None or args.queue.lower() in queue.label.lower())
    ]
    if not wanted:
        console.print("Nothing to redrive.")
        return 0
    with _progress(console) as progress:
        for queue in wanted:
            task = progress.add_task(queue.label, total=None)
            outcome = operator.redrive(
                queue,
                progress=lambda _label, done, total, task=task: progress.update(task, completed=done, total=total),
            )
            console.print(f"[green]✓[/] {outcome.moved} message(s) moved back from {queue.label}")
    return 0


def _resume(operator: SagaOperator, args: argparse.Namespace, console: Console) -> int:
    by = args.by or _caller_identity()
    if args.resolve:
        record = operator.resolve(args.saga_id, reason=args.reason, by=by)
        console.print(f"[green]✓[/] saga {args.saga_id} {_status(record['status'])} by {by}")
        console.print(operator_actions_table(record))
        return 0
    with _progress(console) as progress:
        task = progress.add_task("resuming", total=None)
        outcome = operator.resume(
            args.saga_id,
            reason=args.reason,
            by=by,
            wait_seconds=args.wait_seconds,
            progress=lambda step, done, total: progress.update(
                task, description=step, completed=done, total=max(total, 1)
            ),
        )
    record, _ = operator.show(args.saga_id)
    console.print(steps_table(record))
    console.print(operator_actions_table(record))
    if not outcome.finished:
        console.print(f"[red]✗ saga {args.saga_id} parked again at {outcome.failed_step}: {outcome.error}")
        return 1
    how = "completed" if outcome.status == SagaStatus.COMPLETED else "compensated"
    console.print(f"[green]✓[/] saga {args.saga_id} {how} ({', '.join(outcome.done)}): now {_status(outcome.status)}")
    return 0


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _caller_identity() -> str:
    return boto3.client("sts").get_caller_identity()["Arn"]


def _status(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "red" if status.endswith("FAILED") else "white")
    return f"[{colour}]{status}[/]"


COMMANDS = {"list": _list, "show": _show, "stuck": _stuck, "dlq": _dlq, "resume": _resume}


if __name__ == "__main__":
    sys.exit(main())
