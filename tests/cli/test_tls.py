"""`looper --tls-ca`: the operator's commands reach a Trainer that serves TLS, and a bearer
token is never sent in the clear beyond loopback."""

from __future__ import annotations

from typer.testing import CliRunner

from services.cli import app
from services.launcher import start_looper
from tests.conftest import SIMPLE_BLUEPRINT
from tests.contract.test_access import certificates  # noqa: F401 (a fixture: a CA and a server certificate)


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env={"LOOPER_TOKEN": None, "LOOPER_TOKEN_FILE": None, **(env or {})})


def test_the_commands_reach_a_tls_trainer_with_its_ca(tmp_path, certificates):  # noqa: F811
    server = start_looper(tmp_path / "data", "trainer", args=["--tls-cert", str(certificates / "server.pem"),
                                                              "--tls-key", str(certificates / "server.key")])
    try:
        (tmp_path / "blueprint.yaml").write_text(SIMPLE_BLUEPRINT)
        common = ["--trainer", server.addresses["trainer"], "--token-file", str(server.token_file)]
        applied = run("apply", str(tmp_path / "blueprint.yaml"), *common, "--tls-ca", str(certificates / "ca.pem"))
        assert applied.exit_code == 0 and "contract_test: applied as new version 1" in applied.stdout, applied.stderr
        listed = run("use-cases", *common, env={"LOOPER_TLS_CA": str(certificates / "ca.pem")})
        assert listed.exit_code == 0 and "contract_test" in listed.stdout, listed.stderr
        plain = run("use-cases", *common)  # no CA: the client speaks plaintext to a TLS port
        assert plain.exit_code == 1 and plain.stderr.startswith("looper: UNAVAILABLE: Trainer service at ")
    finally:
        server.stop()


def test_a_token_is_not_sent_in_the_clear_beyond_loopback():
    refused = run("use-cases", "--trainer", "10.1.2.3:50053", env={"LOOPER_TOKEN": "lpr_x"})
    assert refused.exit_code == 2
    assert "refusing to send a bearer token without TLS to 10.1.2.3:50053" in words(refused.stderr)
    missing = run("use-cases", "--tls-ca", "no/such/ca.pem", env={"LOOPER_TOKEN": "lpr_x"})
    assert missing.exit_code == 2 and "no/such/ca.pem" in words(missing.stderr)


def words(boxed: str) -> str:
    """A usage error's text without the box Rich draws around it and its line breaks."""
    return " ".join(boxed.replace("│", " ").split())
