"""End-to-end tests over the real local stack, from outside the Rust code.

- The README's grpcurl lines are run as written (only the address is moved to a free port),
  and must equal what `scripts/stack.sh up` prints, so the README cannot drift.
- A Python client generated from proto/ with grpcio-tools logs in, lists users, and reads the
  rich error details (google.rpc.BadRequest) of a rejected call.

Run through scripts/test.sh, which installs the tools and starts PostgreSQL:
    .tools/venv/bin/python -m unittest discover -s tests/e2e -v
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import unittest
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ADDR = "127.0.0.1:50051"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_calls() -> list[str]:
    """The lines of the README's fenced block that follows the `stack calls` marker."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- stack calls -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    if not match:
        raise AssertionError("README.md has no fenced block after <!-- stack calls -->")
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


class StackTest(unittest.TestCase):
    stack_output = ""

    @classmethod
    def setUpClass(cls):
        suffix = uuid.uuid4().hex[:10]
        cls.addr = f"127.0.0.1:{free_port()}"
        cls.database = f"logistics_e2e_{suffix}"
        cls.env = dict(
            os.environ,
            STACK_DIR=str(REPO / ".local" / f"stack-e2e-{suffix}"),
            STACK_DATABASE=cls.database,
            IDENTITY_ADDR=cls.addr,
        )
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "stack.sh"), "up"],
            cwd=REPO, env=cls.env, capture_output=True, text=True, timeout=900,
        )
        if done.returncode != 0:
            raise AssertionError(f"stack.sh up failed:\n{done.stdout}\n{done.stderr}")
        cls.stack_output = done.stdout

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "down"], cwd=REPO, env=cls.env,
                       capture_output=True, timeout=60)
        admin = subprocess.run([str(REPO / "scripts" / "ensure-postgres.sh")], capture_output=True,
                               text=True, check=True).stdout.strip()
        subprocess.run(["psql", "-X", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {cls.database} WITH (FORCE)"],
                       capture_output=True)
        subprocess.run(["rm", "-rf", cls.env["STACK_DIR"]])

    def test_the_readme_calls_are_the_ones_the_stack_prints(self):
        printed = [line for line in self.stack_output.splitlines() if line.startswith(("source ", "TOKEN=", "grpcurl "))]
        expected = [line.replace(DEFAULT_ADDR, self.addr) for line in readme_calls()]
        self.assertEqual(printed, expected)

    def test_the_readme_calls_log_in_and_list_users(self):
        script = "set -euo pipefail\n" + "\n".join(line.replace(DEFAULT_ADDR, self.addr) for line in readme_calls())
        done = subprocess.run(["bash", "-c", script], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn('"email": "admin@demo.example"', done.stdout)
        self.assertIn("logistics.identity.v1.IdentityService", done.stdout)

    def test_a_generated_python_client_logs_in_lists_users_and_reads_error_details(self):
        import grpc
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        with tempfile.TemporaryDirectory() as out:
            subprocess.run([str(REPO / "scripts" / "gen-python.sh"), out], check=True, capture_output=True)
            sys.path.insert(0, out)
            try:
                from logistics.identity.v1 import identity_pb2, identity_pb2_grpc, resources_pb2
            finally:
                sys.path.remove(out)

            with grpc.insecure_channel(self.addr) as channel:
                stub = identity_pb2_grpc.IdentityServiceStub(channel)
                login = stub.Login(identity_pb2.LoginRequest(
                    tenant_id="01930000-0000-7000-8000-000000000001",
                    email="admin@demo.example",
                    password="demo-admin-password",
                ), timeout=10)
                self.assertTrue(login.tokens.access_token.startswith("ey"))
                auth = (("authorization", f"Bearer {login.tokens.access_token}"),)

                users = stub.ListUsers(identity_pb2.ListUsersRequest(page_size=10), metadata=auth, timeout=10)
                self.assertIn("admin@demo.example", [u.email for u in users.users])
                self.assertIn(resources_pb2.ROLE_ADMIN, users.users[0].roles)

                with self.assertRaises(grpc.RpcError) as raised:
                    stub.CreateUser(identity_pb2.CreateUserRequest(
                        email="not-an-email", display_name="", password="short",
                    ), metadata=auth, timeout=10)
                self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                status = rpc_status.from_call(raised.exception)
                fields = []
                for detail in status.details:
                    if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                        bad = error_details_pb2.BadRequest()
                        detail.Unpack(bad)
                        fields = [v.field for v in bad.field_violations]
                self.assertEqual(fields, ["email", "display_name", "password"])

                with self.assertRaises(grpc.RpcError) as unauthenticated:
                    stub.ListUsers(identity_pb2.ListUsersRequest(), timeout=10)
                self.assertEqual(unauthenticated.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main()
