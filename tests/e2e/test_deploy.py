"""The deploy/ manifests agree with the binaries they run, so they cannot drift.

For every service under services/ there is deploy/k8s/<service>.yaml, and:
- the Deployment serves on the port the binary listens on by default, behind a Service of that
  port, with a gRPC readiness probe (health is NOT_SERVING while the database is unreachable),
  and announces its metrics port to Prometheus;
- every variable the manifest sets is one the binary reads (a typo would be silently ignored);
- every variable `serve` requires is set, and the init container sets what `migrate` requires;
- secrets come from Secret references, never literal values;
- pods run as non-root with a read-only root filesystem.

The schedules of `ops` (deploy/k8s/ops.yaml, deploy/systemd/) agree with the binary the same way:
every CronJob and every unit runs a command `ops` accepts, sets only variables that command
reads, takes secrets from Secrets (the systemd example has none), runs unprivileged, and the
backups never start together; where systemd-analyze is installed, both say the same times.

Run through scripts/test.sh (it builds nothing itself: `cargo build` of the binaries is cached).
"""

import datetime
import functools
import os
import re
import shlex
import shutil
import subprocess
import unittest
import urllib.parse
import zoneinfo
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# Also what ops and pgBackRest take: IMPORT_TARGET_(OWNER_)URL, S3 key secrets, cipher passes.
SECRET_NAMES = re.compile(r"(DATABASE_URL|TARGET(_OWNER)?_URL|_KEYS?|_SECRET|PASSWORD|_PASS)$")


def services() -> list[str]:
    return sorted(p.name for p in (REPO / "services").iterdir() if (p / "Cargo.toml").is_file())


def binary(service: str) -> Path:
    subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", service, "--bin", service],
                   cwd=REPO, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          check=True, capture_output=True, text=True).stdout
    target = yaml.safe_load(meta)["target_directory"]
    return Path(target) / "debug" / service


def help_text(exe: Path, command: str) -> str:
    return subprocess.run([str(exe), command, "--help"], check=True, capture_output=True,
                          text=True).stdout


def env_names(help_output: str) -> set[str]:
    return set(re.findall(r"\[env: ([A-Z0-9_]+)", help_output))


def required_env(exe: Path, command: str) -> set[str]:
    """What clap names as missing when `command` runs with an empty environment."""
    done = subprocess.run([str(exe), command], env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, f"{exe.name} {command} started with no configuration"
    flags = re.findall(r"--([a-z0-9-]+) <", done.stderr)
    return {flag.replace("-", "_").upper() for flag in flags}


def container_env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


class DeployTest(unittest.TestCase):
    def test_every_service_has_a_manifest_that_matches_its_binary(self):
        for service in services():
            with self.subTest(service=service):
                path = REPO / "deploy" / "k8s" / f"{service}.yaml"
                self.assertTrue(path.is_file(), f"{path} is missing")
                docs = {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text())}
                exe = binary(service)
                serve_help = help_text(exe, "serve")

                pod = docs["Deployment"]["spec"]["template"]["spec"]
                (main,) = [c for c in pod["containers"] if c["name"] == service]
                self.assertEqual(main["args"], ["serve"])
                default_port = int(re.search(r"\[default: [0-9.]+:(\d+)\]", serve_help).group(1))
                ports = {p["name"]: p["containerPort"] for p in main["ports"]}
                self.assertEqual(ports["grpc"], default_port)
                # Prometheus scrapes the metrics port the pod announces, where METRICS_ADDR listens.
                metrics_port = int(container_env(main)["METRICS_ADDR"]["value"].rsplit(":", 1)[1])
                self.assertEqual(ports["metrics"], metrics_port)
                annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
                self.assertEqual(annotations["prometheus.io/port"], str(metrics_port))
                self.assertEqual(main["readinessProbe"]["grpc"]["port"], default_port)
                service_ports = [p["port"] for p in docs["Service"]["spec"]["ports"]]
                self.assertEqual(service_ports, [default_port])

                env = container_env(main)
                unknown = set(env) - env_names(serve_help)
                self.assertFalse(unknown, f"{service} serve does not read {sorted(unknown)}")
                missing = required_env(exe, "serve") - set(env)
                self.assertFalse(missing, f"{service} serve requires {sorted(missing)}")
                for name, item in env.items():
                    if SECRET_NAMES.search(name):
                        self.assertIn("secretKeyRef", item.get("valueFrom", {}),
                                      f"{service}: {name} must come from a Secret")

                (migrate,) = pod["initContainers"]
                self.assertEqual(migrate["args"], ["migrate"])
                migrate_env = container_env(migrate)
                self.assertLessEqual(required_env(exe, "migrate"), set(migrate_env))
                self.assertLessEqual(set(migrate_env), env_names(help_text(exe, "migrate")))

                self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                for container in [main, migrate]:
                    self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
                    self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])


# ---------------------------------------------------------------------------------------------
# ops: deploy/k8s/ops.yaml and deploy/systemd/
# ---------------------------------------------------------------------------------------------

OPS_K8S = REPO / "deploy" / "k8s" / "ops.yaml"
SYSTEMD = REPO / "deploy" / "systemd"
OPS_EXE = "/usr/local/bin/ops"  # where the units expect the binary
OPS_ENV_FILE = "/etc/logistics/ops.env"  # installed from deploy/systemd/ops.env.example
# Commands that run pgBackRest on the repository (backups, verify, setup): one at a time.
LOCKING_COMMANDS = {"backup", "setup", "restore"}
# Variables naming a directory the command writes: it must be writable where the command runs.
WRITTEN_DIRS = ("BACKUP_DIR", "BACKUP_REPO_PATH", "ARCHIVE_DIR")
# Monday 00:00 UTC: the week over which schedules are expanded and compared.
WEEK_START = datetime.datetime(2026, 1, 5, tzinfo=datetime.timezone.utc)


@functools.cache
def ops_binary() -> Path:
    return binary("ops")


@functools.cache
def ops_help(args: tuple[str, ...]) -> str:
    """`ops <args> --help`, which clap answers only when every argument before it is valid."""
    done = subprocess.run([str(ops_binary()), *args, "--help"], env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"`ops {shlex.join(args)}` is not an ops command:\n{done.stderr}"
    return done.stdout


def under(path: str, directory: str) -> bool:
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


# --- cron (Kubernetes CronJob schedules: five fields) -----------------------------------------

CRON_FIELDS = [("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
               ("month", 1, 12, {m: i + 1 for i, m in enumerate(
                   "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
               ("day of week", 0, 7, {d: i for i, d in enumerate(
                   "sun mon tue wed thu fri sat".split())})]


def cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    def number(raw: str) -> int:
        value = names.get(raw.lower()) if raw.lower() in names else int(raw)
        if not low <= value <= high:
            raise ValueError(f"{name} {raw} is outside {low}-{high}")
        return value

    found: set[int] = set()
    for item in text.split(","):
        match = re.fullmatch(r"(\*|[0-9a-zA-Z]+(?:-[0-9a-zA-Z]+)?)(?:/([0-9]+))?", item)
        if not match:
            raise ValueError(f"{name}: {item!r} is not a cron field")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise ValueError(f"{name}: step {step}")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (number(part) for part in span.split("-"))
            if first > last:
                raise ValueError(f"{name}: range {span} runs backwards")
        else:
            first = number(span)
            last = high if match.group(2) else first
        found.update(range(first, last + 1, step))
    return found


def cron_schedule(schedule: str) -> list[set[int]]:
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"{schedule!r} has {len(fields)} fields, not 5")
    parsed = [cron_field(text, *spec) for text, spec in zip(fields, CRON_FIELDS)]
    if 7 in parsed[4]:
        parsed[4] = (parsed[4] - {7}) | {0}
    return parsed


def cron_week(schedule: str, zone: str) -> set[datetime.datetime]:
    """The instants (UTC) in the week from WEEK_START at which `schedule` fires in `zone`."""
    minutes, hours, days, months, weekdays = cron_schedule(schedule)
    fields = schedule.split()
    days_any, weekdays_any = fields[2].startswith("*"), fields[4].startswith("*")
    tz = datetime.timezone.utc if zone in ("UTC", "Etc/UTC") else zoneinfo.ZoneInfo(zone)
    fired = set()
    for offset in range(7 * 24 * 60):
        instant = WEEK_START + datetime.timedelta(minutes=offset)
        local = instant.astimezone(tz)
        day_ok = local.day in days
        weekday_ok = (local.isoweekday() % 7) in weekdays
        # cron: when both day fields are restricted, either one matching is enough.
        if days_any or weekdays_any:
            date_ok = day_ok and weekday_ok
        else:
            date_ok = day_ok or weekday_ok
        if local.minute in minutes and local.hour in hours and local.month in months and date_ok:
            fired.add(instant)
    return fired


def calendar_week(spec: str) -> set[datetime.datetime]:
    """The instants (UTC) in the week from WEEK_START at which systemd's OnCalendar=spec elapses."""
    base = WEEK_START - datetime.timedelta(seconds=1)
    done = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=500",
         f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", spec],
        env={"PATH": os.environ["PATH"], "TZ": "UTC"}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"OnCalendar={spec} is not a calendar event: {done.stderr}"
    instants = {
        datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc)
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", done.stdout)
    }
    end = WEEK_START + datetime.timedelta(days=7)
    return {instant for instant in instants if instant < end}


# --- systemd ----------------------------------------------------------------------------------

def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    lines = iter(path.read_text().splitlines())
    for line in lines:
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines, "")
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(sections: dict, section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def env_file(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip().strip('"')
    return entries


def resolve_unit(name: str) -> tuple[Path, str]:
    """The file defining the unit `name` in deploy/systemd, and its instance ('' if none)."""
    if (SYSTEMD / name).is_file():
        return SYSTEMD / name, ""
    match = re.fullmatch(r"([^@]+)@([^.]*)\.(\w+)", name)
    template = match and SYSTEMD / f"{match.group(1)}@.{match.group(3)}"
    assert match and match.group(2) and template.is_file(), f"no unit file for {name} in {SYSTEMD}"
    return template, match.group(2)


def exec_start(service: Path, instance: str) -> tuple[list[str], list[str]]:
    """(what runs before ops, ops's arguments) of the service's ExecStart, instance substituted."""
    sections = unit_file(service)
    (line,) = values(sections, "Service", "ExecStart")
    line = line.lstrip("-@:+!")
    line = line.replace("%%", "\0").replace("%i", instance).replace("%I", instance)
    assert "%" not in line, f"{service.name}: specifier left in {line!r}"
    words = shlex.split(line.replace("\0", "%"))
    assert OPS_EXE in words, f"{service.name}: ExecStart does not run {OPS_EXE}"
    at = words.index(OPS_EXE)
    return words[:at], words[at + 1:]


def timers() -> dict[Path, tuple[Path, str]]:
    """Every timer in deploy/systemd with the service file and instance it activates."""
    found = {}
    for timer in sorted(SYSTEMD.glob("*.timer")):
        (unit,) = values(unit_file(timer), "Timer", "Unit") or [timer.stem + ".service"]
        found[timer] = resolve_unit(unit)
    return found


# --- Kubernetes -------------------------------------------------------------------------------

def cronjobs() -> list[dict]:
    docs = [doc for doc in yaml.safe_load_all(OPS_K8S.read_text()) if doc]
    return [doc for doc in docs if doc["kind"] == "CronJob"]


def job_pod(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def job_container(cronjob: dict) -> dict:
    (container,) = job_pod(cronjob)["containers"]
    return container


def writable_mounts(pod: dict, container: dict) -> list[str]:
    read_only_claims = {v["name"] for v in pod.get("volumes", [])
                        if v.get("persistentVolumeClaim", {}).get("readOnly")
                        or "secret" in v or "configMap" in v}
    return [m["mountPath"] for m in container.get("volumeMounts", [])
            if not m.get("readOnly") and m["name"] not in read_only_claims]


class OpsScheduleTest(unittest.TestCase):
    def test_cronjobs_run_ops_commands_that_read_what_they_are_given(self):
        jobs = cronjobs()
        names = {job["metadata"]["name"] for job in jobs}
        self.assertLessEqual({"ops-maintain", "ops-backup-full", "ops-backup-diff",
                              "ops-backup-incr", "ops-backup-verify"}, names)
        containerfile = (REPO / "deploy" / "Containerfile").read_text().replace("\\\n", " ")
        postgres_uid = int(re.search(r"useradd [^;&\n]*--uid (\d+)[^;&\n]* postgres\b",
                                     containerfile).group(1))
        locking = {}
        for job in jobs:
            name = job["metadata"]["name"]
            with self.subTest(cronjob=name):
                spec = job["spec"]
                try:
                    cron_schedule(spec["schedule"])
                except ValueError as err:
                    self.fail(f"{name}: schedule {spec['schedule']!r}: {err}")
                self.assertIn("timeZone", spec, "say which zone the schedule is in")
                self.assertGreater(spec["startingDeadlineSeconds"], 0)
                self.assertIn("successfulJobsHistoryLimit", spec)
                self.assertIn("failedJobsHistoryLimit", spec)
                self.assertIn("backoffLimit", spec["jobTemplate"]["spec"])

                pod = job_pod(job)
                container = job_container(job)
                self.assertTrue(container["image"].startswith("logistics/ops"), container["image"])
                self.assertNotIn("command", container, "the image's entrypoint is ops")
                args = tuple(container["args"])
                help_output = ops_help(args)
                env = container_env(container)
                unknown = set(env) - env_names(help_output)
                self.assertFalse(unknown, f"ops {shlex.join(args)} does not read {sorted(unknown)}")
                for var, item in env.items():
                    if SECRET_NAMES.search(var):
                        self.assertIn("secretKeyRef", item.get("valueFrom", {}),
                                      f"{name}: {var} must come from a Secret")
                # Directories it writes are writable volumes: the root file system is read-only.
                writable = writable_mounts(pod, container)
                self.assertTrue(any(under("/tmp", m) for m in writable), f"{name}: no /tmp")
                for var in WRITTEN_DIRS:
                    if var in env:
                        path = env[var]["value"]
                        self.assertTrue(any(under(path, m) for m in writable),
                                        f"{name}: {var}={path} is on no writable volume")

                self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                self.assertNotEqual(pod["securityContext"].get("runAsUser", 0), 0)
                for c in pod["containers"] + pod.get("initContainers", []):
                    context = c["securityContext"]
                    self.assertTrue(context["readOnlyRootFilesystem"])
                    self.assertFalse(context["allowPrivilegeEscalation"])
                    self.assertFalse(context.get("privileged", False))
                    self.assertIn("ALL", context["capabilities"]["drop"])
                    self.assertFalse(context["capabilities"].get("add"))

                if args[0] in LOCKING_COMMANDS:
                    self.assertEqual(spec["concurrencyPolicy"], "Forbid")
                    # pgBackRest runs as the owner of the data directory, on its node, and no
                    # fsGroup rewrites the modes of the data volume (PostgreSQL would refuse it).
                    self.assertEqual(pod["securityContext"]["runAsUser"], postgres_uid)
                    self.assertNotIn("fsGroup", pod["securityContext"])
                    affinity = pod["affinity"]["podAffinity"][
                        "requiredDuringSchedulingIgnoredDuringExecution"]
                    self.assertEqual(affinity[0]["topologyKey"], "kubernetes.io/hostname")
                    locking[name] = (spec, env, container["volumeMounts"], pod["volumes"])

        with self.subTest("the backup jobs share one configuration"):
            settings = {name: ({k: env[k].get("value") for k in ("BACKUP_DIR", "BACKUP_STANZA")},
                               mounts, volumes)
                        for name, (_, env, mounts, volumes) in locking.items()}
            first = next(iter(settings.values()))
            for name, setting in settings.items():
                self.assertEqual(setting, first, f"{name} differs from the other backup jobs")

        with self.subTest("no two backups start together"):
            fired: dict[datetime.datetime, str] = {}
            for name, (spec, *_rest) in locking.items():
                if spec.get("suspend"):
                    continue
                for instant in cron_week(spec["schedule"], spec["timeZone"]):
                    self.assertNotIn(instant, fired,
                                     f"{name} and {fired.get(instant)} both start at {instant}")
                    fired[instant] = name

    def test_systemd_units_run_ops_commands_that_read_what_they_are_given(self):
        env_example = env_file(SYSTEMD / "ops.env.example")
        found = timers()
        self.assertTrue(found, f"no timers in {SYSTEMD}")
        services = {path for path, _ in found.values()}
        every_service = set(SYSTEMD.glob("*.service"))
        self.assertEqual(every_service, services, "every service unit has a timer")
        read_by_some_command: set[str] = set()
        locks = set()
        for timer, (service, instance) in found.items():
            with self.subTest(timer=timer.name):
                self.assertTrue(service.is_file(), f"{timer.name}: {service.name} is missing")
                timer_sections = unit_file(timer)
                self.assertEqual(values(timer_sections, "Timer", "Persistent"), ["true"])
                self.assertTrue(values(timer_sections, "Timer", "OnCalendar"))
                self.assertEqual(values(timer_sections, "Install", "WantedBy"), ["timers.target"])

                before, args = exec_start(service, instance)
                help_output = ops_help(tuple(args))
                read = env_names(help_output)
                read_by_some_command |= read
                sections = unit_file(service)
                self.assertEqual(values(sections, "Service", "User"), ["postgres"])
                self.assertEqual(values(sections, "Service", "NoNewPrivileges"), ["yes"])
                self.assertEqual(values(sections, "Service", "ProtectSystem"), ["strict"])
                self.assertEqual([f.lstrip("-") for f in values(sections, "Service",
                                                                "EnvironmentFile")], [OPS_ENV_FILE])
                for assignment in values(sections, "Service", "Environment"):
                    for word in shlex.split(assignment):
                        var = word.partition("=")[0]
                        self.assertIn(var, read, f"{service.name}: ops {shlex.join(args)} "
                                                 f"does not read {var}")
                writable = [p.lstrip("-") for line in values(sections, "Service", "ReadWritePaths")
                            for p in line.split()]
                for var in WRITTEN_DIRS:
                    if var in read and var in env_example:
                        self.assertTrue(any(under(env_example[var], p) for p in writable),
                                        f"{service.name}: {var}={env_example[var]} is not in "
                                        f"ReadWritePaths={' '.join(writable)}")
                if args[0] in LOCKING_COMMANDS:
                    self.assertEqual(before[:1], ["/usr/bin/flock"],
                                     f"{service.name}: backups run under the one lock")
                    locks.add(before[-1])
                else:
                    self.assertEqual(before, [])
        self.assertEqual(len(locks), 1, f"the backup units take different locks: {locks}")

        with self.subTest("ops.env.example"):
            unknown = set(env_example) - read_by_some_command
            self.assertFalse(unknown, f"no scheduled ops command reads {sorted(unknown)}")
            for var, value in env_example.items():
                if SECRET_NAMES.search(var):
                    self.assertIsNone(urllib.parse.urlsplit(value).password,
                                      f"{var} holds a password: the example has no secrets")

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_systemd_timers_and_cronjobs_keep_the_same_times(self):
        k8s = {}
        for job in cronjobs():
            if not job["spec"].get("suspend"):
                args = tuple(job_container(job)["args"])
                k8s[args] = cron_week(job["spec"]["schedule"], job["spec"]["timeZone"])
        systemd = {}
        for timer, (service, instance) in timers().items():
            (spec,) = values(unit_file(timer), "Timer", "OnCalendar")
            systemd[tuple(exec_start(service, instance)[1])] = calendar_week(spec)
        self.assertEqual(set(k8s), set(systemd), "the same commands are scheduled in both")
        for args, instants in k8s.items():
            with self.subTest(command=shlex.join(args)):
                self.assertTrue(instants, "never runs")
                self.assertEqual(sorted(systemd[args]), sorted(instants))


if __name__ == "__main__":
    unittest.main()
