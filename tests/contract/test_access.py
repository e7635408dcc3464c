"""Who may call what, through the real servers: a caller without credentials gets nothing,
each role reaches exactly its RPCs in its use cases, revocation and rotation take effect
without a restart, administrative actions are audited, and TLS (and mutual TLS) work."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from looper import LooperClient, LooperError, decide_request, outcome_event
from looperpb.v1 import access_pb2, decision_pb2, feedback_pb2, trainer_pb2

from services.launcher import start_looper
from services.platform.audit import AuditLog
from services.platform.data_dir import DataDir
from tests.conftest import SIMPLE_BLUEPRINT

DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
OTHER = SIMPLE_BLUEPRINT.replace("name: contract_test", "name: other_case")

# One representative call per RPC, in contract_test; the role it needs (None: cluster admin).
CALLS = {
    "Decide": ("decision", decide_request("contract_test", "acc-1", {"user_id": "u"}), "decide"),
    "DecideBatch": ("decision", decision_pb2.DecideBatchRequest(requests=[
        decide_request("contract_test", "acc-2", {"user_id": "u"})]), "decide"),
    "GetDecision": ("decision", decision_pb2.GetDecisionRequest(use_case="contract_test", decision_id="acc-1"),
                    "read"),
    "LogFeedback": ("feedback", feedback_pb2.LogFeedbackRequest(
        event=outcome_event("contract_test", "acc-1", "clicked", event_id="acc-e1")), "decide"),
    "LogFeedbackBatch": ("feedback", feedback_pb2.LogFeedbackBatchRequest(
        events=[outcome_event("contract_test", "acc-1", "clicked", event_id="acc-e2")]), "decide"),
    "GetLabel": ("feedback", feedback_pb2.GetLabelRequest(use_case="contract_test", decision_id="acc-1"), "read"),
    "GetJoinStats": ("feedback", feedback_pb2.GetJoinStatsRequest(use_case="contract_test"), "read"),
    "ApplyBlueprint": ("trainer", trainer_pb2.ApplyBlueprintRequest(spec_yaml=SIMPLE_BLUEPRINT), "admin"),
    "GetBlueprint": ("trainer", trainer_pb2.GetBlueprintRequest(use_case="contract_test"), "read"),
    "ListBlueprints": ("trainer", trainer_pb2.ListBlueprintsRequest(), "any"),
    "ListUseCases": ("trainer", trainer_pb2.ListUseCasesRequest(), "any"),
    "StartTrainingRun": ("trainer", trainer_pb2.StartTrainingRunRequest(use_case="contract_test"), "admin"),
    "GetTrainingRun": ("trainer", None, "read"),  # a real run of contract_test, started by the fixture
    "ListTrainingRuns": ("trainer", trainer_pb2.ListTrainingRunsRequest(use_case="contract_test"), "read"),
    "ListModels": ("trainer", trainer_pb2.ListModelsRequest(use_case="contract_test"), "read"),
    "PromoteModel": ("trainer", trainer_pb2.PromoteModelRequest(use_case="contract_test", model_version="m000001"),
                     "admin"),
    "RollbackModel": ("trainer", trainer_pb2.RollbackModelRequest(use_case="contract_test"), "admin"),
    "PauseUseCase": ("trainer", trainer_pb2.PauseUseCaseRequest(use_case="other_case"), "admin-other"),
    "ResumeUseCase": ("trainer", trainer_pb2.ResumeUseCaseRequest(use_case="other_case"), "admin-other"),
    "GetExperimentReport": ("trainer", trainer_pb2.GetExperimentReportRequest(use_case="contract_test"), "read"),
    "DeleteUseCase": ("trainer", trainer_pb2.DeleteUseCaseRequest(use_case="no_such_case"), None),
    "DeleteSubjectData": ("trainer", trainer_pb2.DeleteSubjectDataRequest(
        use_case="contract_test", subject={"user_id": "nobody"}, request_id="acc-delete"), "admin"),
    "GetDeletion": ("trainer", None, "admin"),  # a real deletion in contract_test, made by the fixture
    "CreateCredential": ("access", access_pb2.CreateCredentialRequest(name="x"), None),
    "ListCredentials": ("access", access_pb2.ListCredentialsRequest(), None),
    "RotateCredential": ("access", access_pb2.RotateCredentialRequest(credential_id="cred-000000000000"), None),
    "RevokeCredential": ("access", access_pb2.RevokeCredentialRequest(credential_id="cred-000000000000"), None),
}
ROLES = {"decide": access_pb2.ROLE_DECIDE, "read": access_pb2.ROLE_READ, "admin": access_pb2.ROLE_ADMIN}


def allowed(granted: str, needed: str | None) -> bool:
    """Whether a credential with ``granted`` in contract_test may make a call needing ``needed``."""
    if granted == "cluster":
        return True
    if needed is None:
        return False  # cluster administrators only
    if needed == "any":
        return True  # any credential with a grant; the listing shows only what it may read
    if needed == "admin-other":  # an administrator's call in other_case, where only "elsewhere" has roles
        return granted == "elsewhere"
    if granted == "elsewhere":
        return False  # its grants are in another use case
    return granted == needed or (granted == "admin" and needed == "read")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    server = start_looper(tmp_path_factory.mktemp("access") / "data")
    with server.client() as admin:
        admin.apply_blueprint(SIMPLE_BLUEPRINT)
        admin.apply_blueprint(OTHER)
        run = admin.start_training_run("contract_test")
        CALLS["GetTrainingRun"] = ("trainer", trainer_pb2.GetTrainingRunRequest(run_id=run.run_id), "read")
        deletion = admin.delete_subject_data("contract_test", {"user_id": "someone"})
        CALLS["GetDeletion"] = ("trainer", trainer_pb2.GetDeletionRequest(deletion_id=deletion.deletion_id), "admin")
        tokens = {"cluster": server.token_file.read_text().strip()}
        for role in ("decide", "read", "admin"):
            tokens[role] = create(admin, role, [access_pb2.Grant(use_case="contract_test", roles=[ROLES[role]])])
        tokens["elsewhere"] = create(admin, "elsewhere", [access_pb2.Grant(use_case="other_case",
                                                                          roles=list(ROLES.values()))])
    yield server, tokens
    server.stop()


def create(admin: LooperClient, name: str, grants) -> str:
    return admin.access.CreateCredential(access_pb2.CreateCredentialRequest(name=name, grants=grants)).token


def call(server, token: str | None, rpc: str) -> grpc.StatusCode:
    service, request, _ = CALLS[rpc]
    with server.client(token=token, token_file=None, max_attempts=1) as client:
        stub = {"decision": client.decision, "feedback": client.feedback, "trainer": client.trainer,
                "access": client.access}[service]
        try:
            getattr(stub, rpc)(request, timeout=10)
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("rpc", sorted(CALLS))
def test_a_caller_without_credentials_gets_nothing(stack, rpc, monkeypatch):
    server, _ = stack
    monkeypatch.delenv("LOOPER_TOKEN", raising=False)
    assert call(server, None, rpc) == grpc.StatusCode.UNAUTHENTICATED
    assert call(server, "lpr_not-a-token", rpc) == grpc.StatusCode.UNAUTHENTICATED


def test_health_checking_stays_open(stack):
    server, _ = stack
    for address in server.addresses.values():
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("granted", ["decide", "read", "admin", "elsewhere", "cluster"])
def test_each_role_reaches_exactly_its_rpcs(stack, granted):
    server, tokens = stack
    wrong = []
    for rpc, (_, _, needed) in sorted(CALLS.items()):
        code = call(server, tokens[granted], rpc)
        if (code not in DENIED) != allowed(granted, needed):
            wrong.append(f"{rpc}: {code.name}")
    assert wrong == [], f"a credential with {granted} got unexpected answers"


def test_listing_shows_only_the_use_cases_a_caller_may_read(stack):
    server, tokens = stack
    with server.client(token=tokens["read"], token_file=None) as reader:
        names = [b.use_case for b in reader.trainer.ListBlueprints(trainer_pb2.ListBlueprintsRequest()).blueprints]
        use_cases = [u.use_case for u in reader.trainer.ListUseCases(trainer_pb2.ListUseCasesRequest()).use_cases]
    assert names == use_cases == ["contract_test"]


def test_a_new_use_case_needs_a_cluster_administrator(stack):
    server, tokens = stack
    new = SIMPLE_BLUEPRINT.replace("name: contract_test", "name: brand_new")
    with server.client(token=tokens["admin"], token_file=None) as admin_of_one:
        with pytest.raises(LooperError) as raised:
            admin_of_one.apply_blueprint(new)
    assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_revocation_and_rotation_take_effect_without_a_restart(stack):
    server, tokens = stack
    with server.client() as admin:
        made = admin.access.CreateCredential(access_pb2.CreateCredentialRequest(
            name="rotating", grants=[access_pb2.Grant(use_case="contract_test", roles=[access_pb2.ROLE_READ])]))
        assert call(server, made.token, "GetJoinStats") == grpc.StatusCode.OK
        rotated = admin.access.RotateCredential(access_pb2.RotateCredentialRequest(
            credential_id=made.credential.credential_id))
        assert call(server, made.token, "GetJoinStats") == grpc.StatusCode.UNAUTHENTICATED
        assert call(server, rotated.token, "GetJoinStats") == grpc.StatusCode.OK
        admin.access.RevokeCredential(access_pb2.RevokeCredentialRequest(credential_id=made.credential.credential_id))
        assert call(server, rotated.token, "GetJoinStats") == grpc.StatusCode.UNAUTHENTICATED
        listed = admin.access.ListCredentials(access_pb2.ListCredentialsRequest()).credentials
    assert made.credential.credential_id not in {c.credential_id for c in listed}
    assert all(not hasattr(c, "token") for c in listed)


def test_administrative_actions_are_audited(stack):
    server, tokens = stack
    with server.client(token=tokens["admin"], token_file=None) as admin:
        blueprint, created = admin.apply_blueprint(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2",
                                                                            "exploration_rate: 0.3"))
    assert created
    entries = AuditLog(DataDir(server.data_dir).access.audit).entries()
    applied = [e for e in entries if e["action"] == "apply_blueprint" and e["blueprint_version"] == blueprint.version
               and e["use_case"] == "contract_test"]
    assert len(applied) == 1 and applied[0]["caller"] == "admin"
    assert {"create_credential"} <= {e["action"] for e in entries}


def test_deletions_are_audited_without_the_subjects_values(stack):
    server, tokens = stack
    with server.client(token=tokens["admin"], token_file=None) as admin:
        deletion = admin.delete_subject_data("contract_test", {"user_id": "secret-user-42"}, request_id="audit-1")
        again = admin.delete_subject_data("contract_test", {"user_id": "secret-user-42"}, request_id="audit-1")
    assert again.deletion_id == deletion.deletion_id and deletion.requested_by == "admin"
    audit = DataDir(server.data_dir).access.audit
    entries = [e for e in AuditLog(audit).entries() if e.get("deletion_id") == deletion.deletion_id]
    assert [(e["action"], e["created"], e["caller"]) for e in entries] == [
        ("delete_subject_data", True, "admin"), ("delete_subject_data", False, "admin")]
    assert entries[0]["entities"] == ["user_id"] and "secret-user-42" not in audit.read_text()


def test_a_token_is_never_sent_in_the_clear_to_another_host():
    with pytest.raises(ValueError, match="without TLS"):
        LooperClient("10.1.2.3:50051", "10.1.2.3:50052", "10.1.2.3:50053", token="lpr_x")


def test_serving_beyond_loopback_without_tls_is_refused(tmp_path):
    ran = subprocess.run([sys.executable, "-m", "services.cli", "serve", "decision", "--data-dir", str(tmp_path),
                          "--host", "0.0.0.0", "--decision-port", "0"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2 and "without TLS" in ran.stderr


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate for `checkout-backend`."""
    folder = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=looper-test-ca", cwd=folder)
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                            ("client", "extendedKeyUsage=clientAuth")):
        subject = "/CN=127.0.0.1" if name == "server" else "/CN=checkout-backend"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=folder)
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=folder)
    return folder


def test_mutual_tls_identifies_the_caller_by_its_certificate(tmp_path, certificates):
    data = tmp_path / "data"
    server = start_looper(data, "trainer", args=["--tls-cert", str(certificates / "server.pem"),
                                                 "--tls-key", str(certificates / "server.key"),
                                                 "--tls-client-ca", str(certificates / "ca.pem")])
    try:
        ca, key, chain = ((certificates / n).read_bytes() for n in ("ca.pem", "client.key", "client.pem"))
        tls = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)
        address = server.addresses["trainer"]
        with LooperClient(trainer=address, credentials=tls, token_file=server.token_file) as admin:
            admin.apply_blueprint(SIMPLE_BLUEPRINT)  # an administrator's token over mutual TLS
            admin.access.CreateCredential(access_pb2.CreateCredentialRequest(
                name="checkout-backend", certificate_subject="checkout-backend",
                grants=[access_pb2.Grant(use_case="contract_test", roles=[access_pb2.ROLE_READ])]))
        with LooperClient(trainer=address, credentials=tls, token=None, token_file=None) as by_certificate:
            assert by_certificate.list_models("contract_test") == []  # read, with no token at all
            with pytest.raises(LooperError) as raised:
                by_certificate.start_training_run("contract_test")
            assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED
        with LooperClient(trainer=address, token_file=server.token_file) as plain:
            with pytest.raises(LooperError) as raised:
                plain.list_models("contract_test")
            assert raised.value.code == grpc.StatusCode.UNAVAILABLE  # no plaintext on a TLS port
    finally:
        server.stop()


def test_every_rpc_has_an_access_check(stack):
    from looperpb.v1 import access_pb2 as a, decision_pb2 as d, feedback_pb2 as f, trainer_pb2 as t

    rpcs = {m.name for p in (a, d, f, t) for s in p.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert rpcs == set(CALLS)
