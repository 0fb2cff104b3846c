"""pgBackRest's state as Prometheus text (node_exporter's textfile collector).

    pgbackrest --stanza=S --output=json info | status.py STANZA [TYPE RESULT DURATION]

TYPE, RESULT (1 or 0) and DURATION describe the run that just ended; without
them only the repository's state is written.
"""

import json
import sys
import time


def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float | int]]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        number = int(value) if float(value).is_integer() else float(value)
        out.append(f"{name}{{{text}}} {number}")
    return out


def main() -> None:
    stanza = sys.argv[1]
    run = sys.argv[2:5] if len(sys.argv) >= 5 and sys.argv[2] else None
    try:
        info = json.load(sys.stdin)[0]
        backups = info.get("backup", [])
        status = info.get("status", {}).get("code", 99)
    except (ValueError, IndexError, KeyError, AttributeError):
        backups, status = [], 99
    s = {"stanza": stanza}
    lines = metric("pgbackrest_stanza_status", "gauge", "pgBackRest's stanza status code (0 is ok).", [(s, status)])
    lines += metric("pgbackrest_backups", "gauge", "Backups in the repository.", [(s, len(backups))])
    if backups:
        newest = backups[-1]
        typed = {**s, "type": newest["type"]}
        lines += metric(
            "pgbackrest_backup_newest_completion_timestamp_seconds",
            "gauge",
            "When the newest backup in the repository finished.",
            [(typed, newest["timestamp"]["stop"])],
        )
        lines += metric(
            "pgbackrest_backup_newest_repository_bytes",
            "gauge",
            "What the newest backup added to the repository (compressed, encrypted).",
            [(typed, newest["info"]["repository"]["delta"])],
        )
        lines += metric(
            "pgbackrest_backup_newest_database_bytes",
            "gauge",
            "Size of the database the newest backup restores.",
            [(typed, newest["info"]["size"])],
        )
    if run:
        kind, result, duration = run
        typed = {**s, "type": kind}
        lines += metric(
            "pgbackrest_backup_last_run_success",
            "gauge",
            "Whether the last backup run of this type succeeded.",
            [(typed, int(result))],
        )
        lines += metric(
            "pgbackrest_backup_last_run_timestamp_seconds",
            "gauge",
            "When the last backup run of this type ended.",
            [(typed, int(time.time()))],
        )
        lines += metric(
            "pgbackrest_backup_last_run_duration_seconds",
            "gauge",
            "How long the last backup run of this type took.",
            [(typed, int(duration))],
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
