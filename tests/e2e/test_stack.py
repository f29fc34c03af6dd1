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
DEFAULT_IDENTITY = "127.0.0.1:50051"
DEFAULT_PARTNER = "127.0.0.1:50052"
DEFAULT_FLEET = "127.0.0.1:50053"
DEFAULT_INVENTORY = "127.0.0.1:50054"
DEFAULT_SHIPMENT = "127.0.0.1:50055"


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free now. All are bound at once: picked one at a time, each socket
    closed before the next bind, the system may hand the same port out twice (it did: shipment's
    metrics and partner's got one port, and shipment could not start)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


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
        services = ("identity", "partner", "fleet", "inventory", "shipment")
        ports = iter(free_ports(2 * len(services)))
        cls.addr = f"127.0.0.1:{next(ports)}"
        cls.partner_addr = f"127.0.0.1:{next(ports)}"
        cls.fleet_addr = f"127.0.0.1:{next(ports)}"
        cls.inventory_addr = f"127.0.0.1:{next(ports)}"
        cls.shipment_addr = f"127.0.0.1:{next(ports)}"
        cls.metrics = {name: f"127.0.0.1:{next(ports)}" for name in services}
        cls.database = f"logistics_e2e_{suffix}"
        cls.env = dict(
            os.environ,
            STACK_DIR=str(REPO / ".local" / f"stack-e2e-{suffix}"),
            STACK_DATABASE=cls.database,
            IDENTITY_ADDR=cls.addr,
            PARTNER_ADDR=cls.partner_addr,
            FLEET_ADDR=cls.fleet_addr,
            INVENTORY_ADDR=cls.inventory_addr,
            SHIPMENT_ADDR=cls.shipment_addr,
            **{f"{name.upper()}_METRICS_ADDR": addr for name, addr in cls.metrics.items()},
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

    def moved(self, line: str) -> str:
        """A README line with the default addresses replaced by this test's."""
        return (line.replace(DEFAULT_IDENTITY, self.addr).replace(DEFAULT_PARTNER, self.partner_addr)
                .replace(DEFAULT_FLEET, self.fleet_addr).replace(DEFAULT_INVENTORY, self.inventory_addr)
                .replace(DEFAULT_SHIPMENT, self.shipment_addr))

    def test_the_readme_calls_are_the_ones_the_stack_prints(self):
        printed = [line for line in self.stack_output.splitlines() if re.match(r"(source |grpcurl |[A-Z_]+=)", line)]
        expected = [self.moved(line) for line in readme_calls()]
        self.assertEqual(printed, expected)

    def test_the_readme_calls_log_in_create_a_partner_idempotently_and_deliver_a_shipment(self):
        lines = [self.moved(line) for line in readme_calls()]
        create = next(line for line in lines if "CreatePartner" in line)
        # The CreatePartner call runs twice: its request_id makes the second a replay.
        script = "set -euo pipefail\n" + "\n".join(lines + [create])
        done = subprocess.run(["bash", "-c", script], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn('"email": "admin@demo.example"', done.stdout)
        self.assertIn("logistics.identity.v1.IdentityService", done.stdout)
        self.assertIn('"displayName": "Acme Logistics"', done.stdout)
        ids = re.findall(r'"id": "([0-9a-f-]+)",\s*"kind": "PARTNER_KIND_ORGANIZATION"', done.stdout)
        self.assertEqual(len(ids), 3, done.stdout)  # created, listed, replayed
        self.assertEqual(len(set(ids)), 1, "the replayed CreatePartner made a second partner")
        # The truck just created is free and big enough for the window asked about.
        trucks = re.findall(r'"plate": "B-LX 1024"', done.stdout)
        self.assertEqual(len(trucks), 2, done.stdout)  # created, found available
        self.assertIn('"value": "24000"', done.stdout)
        # The material is created, and the new tenant's books check out.
        self.assertIn('"sku": "STEEL-ROD-12"', done.stdout)
        self.assertNotIn('"mismatches"', done.stdout)
        # The shipment walk-through: planned with the truck, dispatched, on the road, delivered,
        # and the event stream replays its whole life in order.
        for status in ("PLANNED", "DISPATCHED", "IN_TRANSIT", "DELIVERED"):
            self.assertIn(f'"status": "SHIPMENT_STATUS_{status}"', done.stdout)
        self.assertIn('"recipientName": "Erika Mustermann"', done.stdout)
        self.assertIn('"kind": "TRACKING_EVENT_KIND_DEPARTED"', done.stdout)
        events = re.findall(r'"type": "SHIPMENT_EVENT_TYPE_([A-Z_]+)"', done.stdout)
        self.assertEqual(events, ["CREATED", "UPDATED", "PLANNED", "DISPATCHED", "TRACKED", "DELIVERED"],
                         done.stdout)
        # Each service's Prometheus endpoint counted the calls just made, by method and code.
        import urllib.request
        with urllib.request.urlopen(f"http://{self.metrics['shipment']}/metrics", timeout=10) as response:
            scrape = response.read().decode()
        self.assertIn('rpc_calls_total{service="logistics.shipment.v1.ShipmentService",method="PlanShipment",'
                      'code="Ok"} 1', scrape)
        self.assertIn('db_pool_connections{pool="shipment",state="idle"}', scrape)
        with urllib.request.urlopen(f"http://{self.metrics['inventory']}/metrics", timeout=10) as response:
            scrape = response.read().decode()
        self.assertIn('method="ReserveStock",code="Ok"} 1', scrape)

    def test_a_generated_python_client_logs_in_reads_error_details_and_creates_a_partner(self):
        import grpc
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        with tempfile.TemporaryDirectory() as out:
            subprocess.run([str(REPO / "scripts" / "gen-python.sh"), out], check=True, capture_output=True)
            sys.path.insert(0, out)
            try:
                from logistics.identity.v1 import identity_pb2, identity_pb2_grpc, resources_pb2
                from logistics.partner.v1 import partner_pb2, partner_pb2_grpc
                from logistics.partner.v1 import resources_pb2 as partner_resources
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

            with grpc.insecure_channel(self.partner_addr) as channel:
                partners = partner_pb2_grpc.PartnerServiceStub(channel)
                created = partners.CreatePartner(partner_pb2.CreatePartnerRequest(
                    request_id=str(uuid.uuid4()),
                    partner=partner_resources.Partner(
                        kind=partner_resources.PARTNER_KIND_PERSON,
                        legal_name="Grace Hopper", display_name="Grace Hopper",
                        tax_id="US 123-45-6789", country_code="US", default_currency_code="USD",
                    ),
                    roles=[partner_resources.PARTNER_ROLE_SUPPLIER],
                ), metadata=auth, timeout=10).partner
                self.assertEqual(created.tax_id, "US123456789")
                read = partners.GetPartner(partner_pb2.GetPartnerRequest(id=created.id), metadata=auth, timeout=10)
                self.assertEqual(read.partner, created)
                self.assertEqual(list(read.partner.roles), [partner_resources.PARTNER_ROLE_SUPPLIER])
                found = partners.LookupPartnerByTaxId(partner_pb2.LookupPartnerByTaxIdRequest(
                    country_code="US", tax_id="us123456789"), metadata=auth, timeout=10)
                self.assertEqual(found.partner.id, created.id)


if __name__ == "__main__":
    unittest.main()
