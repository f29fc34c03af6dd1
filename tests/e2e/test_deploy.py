"""The deploy/ manifests agree with the binaries they run, so they cannot drift.

For every service under services/ there is deploy/k8s/<service>.yaml, and:
- the Deployment serves on the port the binary listens on by default, behind a Service of that
  port, with a gRPC readiness probe (health is NOT_SERVING while the database is unreachable),
  and announces its metrics port to Prometheus;
- every variable the manifest sets is one the binary reads (a typo would be silently ignored);
- every variable `serve` requires is set, and the init container sets what `migrate` requires;
- secrets come from Secret references, never literal values;
- pods run as non-root with a read-only root filesystem.

Run through scripts/test.sh (it builds nothing itself: `cargo build` of the binaries is cached).
"""

import os
import re
import subprocess
import unittest
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET_NAMES = re.compile(r"(DATABASE_URL|_KEYS?|PASSWORD)$")


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


if __name__ == "__main__":
    unittest.main()
